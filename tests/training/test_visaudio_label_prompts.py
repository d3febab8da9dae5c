"""``label_prompts``: each clip's class labels become its text prompt (MMAudio trains VGGSound with the label
as text); a network without a text stream refuses the option."""

from __future__ import annotations

import pytest
import torch

import spatialgen.models.visaudio.pipeline as visaudio_pipeline
from tests.training.test_visaudio_module import batch, module, visaudio_synthetic_root  # noqa: F401


def test_labels_become_the_text_condition(batch, monkeypatch):  # noqa: F811
    seen = []

    def fake_text_tower(prompt, batch_size, *, width, device=None, encoder="clip_text_h14_384"):
        seen.append(list(prompt))  # the published DFN5B tower is not available offline
        if not any(prompt):
            return None
        return torch.stack([torch.full((4, width), float(len(p))) for p in prompt]).to(device)

    monkeypatch.setattr(visaudio_pipeline, "prompt_features", fake_text_tower)
    m = module(label_prompts=True)
    feats = m.batch_features(batch)
    want = [", ".join(labels) for labels in batch["labels"]]
    assert seen == [want] and all(want)
    assert torch.equal(feats["text"][:, 0, 0], torch.tensor([float(len(p)) for p in want]))
    given = torch.randn(len(want), 4, 16)  # precomputed prompt features win over labels
    assert torch.equal(m.batch_features({**batch, "text_features": given})["text"], given)
    off = module().batch_features(batch)  # default: no text from labels (the network's empty prompt)
    assert "text" not in off and len(seen) == 1
    loss = m.training_step(batch, 0)
    assert torch.isfinite(loss) and len(seen) == 2


def test_label_prompts_need_a_text_stream():
    with pytest.raises(ValueError, match="label_prompts: this ViSAudio network has no text stream"):
        module(label_prompts=True, config_overrides={"text_len": 0})
