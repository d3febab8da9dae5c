"""A small ViSAGe trained on one fixed token clip reproduces it exactly under greedy decoding."""

import torch

from spatialgen.models.visage import ViSAGe, generate, get_config, stream_cross_entropy

from .conftest import make_inputs


def test_overfit_one_clip_then_greedy_reproduces_it():
    torch.manual_seed(0)
    cfg = get_config("visage_tiny", decoder_layers=2, dropout=0.0)
    model = ViSAGe(cfg)
    visual, energy, direction, codes = make_inputs(cfg, 1, seed=7)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(300):
        loss, per_stream = stream_cross_entropy(model(visual, codes, energy, direction).logits, codes)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if per_stream.max() < 0.02:
            break
    assert per_stream.max() < 0.02
    model.eval()
    assert torch.equal(generate(model, visual, energy, direction, guidance="none", do_sample=False), codes)
    # An untrained model does not reproduce the clip (the check can fail).
    fresh = ViSAGe(cfg).eval()
    assert not torch.equal(
        generate(fresh, visual, energy, direction, guidance="none", do_sample=False), codes
    )
