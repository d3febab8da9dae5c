"""The zoo's entries: official ViSAGe weights, models trained by ``make demo``, tiny debug models, towers.

* ``visage-ytambigen`` / ``visage-vggsound-mono``: the authors' release on the Hub
  (``jaeyeonkim99/visage``, its released checkpoints), converted exactly by :mod:`spatialgen.hub.official`.
* ``visage-synthetic`` / ``visaudio-synthetic``: the exports ``make demo`` writes
  (``<demo_out>/export/<name>``; ``SPATIALGEN_DEMO_OUT`` overrides ``demo_out``).
* ``visage-debug`` / ``visaudio-debug``: tiny random pipelines built locally from a fixed seed; no
  download, a 1 s window at 16 kHz, usable end to end (tests, examples, CI).
* ``visaudio-mmaudio-{s-16k,s-44k,m-44k,l-44k,l-44k-v2}``: ViSAudio initialised from each network MMAudio
  released (``hkchengrex/MMAudio``), converted on load (:mod:`zoo.mmaudio`); the start of ViSAudio training.
* ``dac-44khz`` / ``clip-vit-b32``: the towers of the released ViSAGe, from the codec/encoder registries
  (:func:`spatialgen.codecs.list_codecs`, :func:`spatialgen.encoders.list_encoders` list the rest).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from spatialgen.hub.card import CITATIONS
from spatialgen.hub.official import OFFICIAL_REPO
from spatialgen.weights import WeightsNotFoundError
from zoo.mmaudio import MMAUDIO_ENTRIES, MMAUDIO_EXACT, MMAUDIO_LICENCE, mmaudio_card, mmaudio_loader
from zoo.registry import ZooEntry, load_folder, register_pretrained

__all__ = [
    "DEBUG_SEED",
    "VISAGE_DEBUG",
    "VISAUDIO_DEBUG",
    "build_visage_debug",
    "build_visaudio_debug",
    "demo_export_dir",
]

DEBUG_SEED = 0
#: Official repo revision the ViSAGe entries resolve (the release has no tags; pin a commit with revision=).
OFFICIAL_REVISION = "main"
_OFFICIAL_PATTERNS = ["*config.json", "*pytorch_model.bin", "*model.safetensors", "*.yaml"]
_OFFICIAL_LICENCE = "as published by the ViSAGe authors at huggingface.co/jaeyeonkim99/visage (not stated in the code release)"

#: ``visage-debug``: the ViSAGe code at a tiny size, 1 s windows of 16 kHz FOA from 4 fps video.
VISAGE_DEBUG: dict[str, Any] = {
    "config": "visage_tiny",
    "config_overrides": {
        "codec": "dac_synthetic",
        "codebook_size": 1024,
        "codec_hop_length": 320,
        "clip_seconds": 1.0,
        "visual_fps": 4.0,
        "max_target_length": 2 * 50 + 1,
    },
    "encoder": "tiny",
    "encoder_kwargs": {"embed_dim": 16, "input_size": [56, 56], "fps": 4.0},
    "codec": "dac_synthetic",
}
#: ``visaudio-debug``: the ViSAudio code at a tiny size, 1 s windows of 16 kHz binaural from 4 fps video.
VISAUDIO_DEBUG: dict[str, Any] = {
    "config": "tiny",
    "codec": "stft",
    "codec_kwargs": {"sample_rate": 16000, "n_fft": 256, "hop_length": 128},
    "encoder_kwargs": {"tiny": {"embed_dim": 16, "input_size": [32, 32], "fps": 4.0}},
    "clip_seconds": 1.0,
    "sampling": {"cfg_scale": 2.0, "steps": 8, "method": "euler"},
}


def _perturb(module: torch.nn.Module, scale: float) -> None:
    """Add seeded noise to every parameter: zero-initialised output layers would make the model ignore the video."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * scale)


def build_visage_debug(seed: int = DEBUG_SEED, device: str | torch.device = "cpu") -> Any:
    """The ``visage-debug`` pipeline: random weights from ``seed`` (the same on every machine)."""
    from spatialgen.models.visage.config import get_config
    from spatialgen.models.visage.pipeline import ViSAGePipeline

    spec = VISAGE_DEBUG
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pipe = ViSAGePipeline(
            get_config(spec["config"], **spec["config_overrides"]),
            encoder=spec["encoder"],
            encoder_kwargs=spec["encoder_kwargs"],
            encoder_pretrained=False,
            codec_pretrained=False,
        )
    return pipe.to(device).eval()


def build_visaudio_debug(seed: int = DEBUG_SEED, device: str | torch.device = "cpu") -> Any:
    """The ``visaudio-debug`` pipeline: random weights from ``seed`` (the same on every machine)."""
    from spatialgen.models.visaudio.pipeline import ViSAudioPipeline

    spec = VISAUDIO_DEBUG
    pipe = ViSAudioPipeline.build(
        spec["config"],
        codec_name=spec["codec"],
        codec_kwargs=spec["codec_kwargs"],
        encoder_kwargs=spec["encoder_kwargs"],
        encoder_pretrained=False,
        clip_seconds=spec["clip_seconds"],
        seed=seed,
        sampling=spec["sampling"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        _perturb(pipe.network, 0.05)
    return pipe.to(device).eval()


def demo_export_dir(name: str) -> Path:
    """Where ``make demo`` writes the export ``name``: ``$SPATIALGEN_DEMO_OUT/export/<name>``, else
    ``demo_out/export/<name>`` in the working directory, else in the repository checkout."""
    env = os.environ.get("SPATIALGEN_DEMO_OUT")
    roots = (
        [Path(env)] if env else [Path.cwd() / "demo_out", Path(__file__).resolve().parent.parent / "demo_out"]
    )
    candidates = [root / "export" / name for root in roots]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def _demo_loader(name: str):
    def load(**overrides: Any) -> Any:
        folder = demo_export_dir(name)
        if not (folder / "model.safetensors").is_file():
            raise WeightsNotFoundError(
                f"{name}: no export at {folder}; run `make demo` first (it trains this model on the "
                "synthetic data and exports it there), or set SPATIALGEN_DEMO_OUT to its output folder"
            )
        return load_folder(folder, **overrides)

    return load


def _official_loader(channels: int):
    def load(revision: str | None = None, cache_dir: str | None = None, **overrides: Any) -> Any:
        from spatialgen.hub.load import snapshot

        folder = snapshot(
            OFFICIAL_REPO,
            revision=revision or OFFICIAL_REVISION,
            cache_dir=cache_dir,
            allow_patterns=_OFFICIAL_PATTERNS,
        )
        return load_folder(folder, channels=channels, **overrides)

    return load


def _tower(kind: str, name: str):
    def load(**kwargs: Any) -> Any:
        if kind == "codec":
            from spatialgen.codecs import create_codec

            return create_codec(name, pretrained=True, **kwargs)
        from spatialgen.encoders import create_encoder

        return create_encoder(name, pretrained=True, **kwargs)

    return load


def _released_architecture() -> dict[str, Any]:
    from spatialgen.models.visage.config import ViSAGeConfig

    return {
        "kind": "visage",
        "network": ViSAGeConfig().to_dict(),
        "encoder": {"name": "clip_vit_b32", "pretrained": True},
        "codec": {"name": "dac_44khz", "pretrained": True},
    }


def _demo_entries() -> list[ZooEntry]:
    """Both models' ``make demo`` entries, then both seeded debug entries (same fields, per-model values)."""
    models = (
        # key, label, output format, format in words, demo dataset, debug builder, debug architecture
        ("visage", "ViSAGe", "foa", "FOA", "synthetic 360° dataset", build_visage_debug, VISAGE_DEBUG),
        (
            "visaudio",
            "ViSAudio",
            "binaural",
            "binaural",
            "synthetic dataset",
            build_visaudio_debug,
            VISAUDIO_DEBUG,
        ),
    )
    trained = [
        ZooEntry(
            f"{key}-synthetic",
            _demo_loader(f"{key}-synthetic"),
            f"{label} (small) trained by `make demo` on the {data} (recipes/{key}_synthetic.yaml)",
            kind=key,
            output_format=fmt,
            sample_rate=16000,
            architecture={"recipe": f"recipes/{key}_synthetic.yaml"},
            weights=f"demo_out/export/{key}-synthetic (written by `make demo`)",
            licence="mit",
            citation=CITATIONS[key],
            tags=("trained-here", fmt),
        )
        for key, label, fmt, _, data, _, _ in models
    ]
    debug = [
        ZooEntry(
            f"{key}-debug",
            build,
            f"tiny random {label} (seeded, no download): 1 s of 16 kHz {words} per window, for tests and examples",
            kind=key,
            output_format=fmt,
            sample_rate=16000,
            architecture=arch,
            weights=f"none: random init from seed {DEBUG_SEED} (pass seed=)",
            licence="mit",
            citation=CITATIONS[key],
            tags=("debug", fmt),
        )
        for key, label, fmt, words, _, build, arch in models
    ]
    return trained + debug


def _register_all() -> None:
    visage_cite, visaudio_cite = CITATIONS["visage"], CITATIONS["visaudio"]
    entries = [
        ZooEntry(
            "visage-ytambigen",
            _official_loader(4),
            "ViSAGe (ICLR 2025) fine-tuned on YT-Ambigen: 5 s of FOA from perspective video + camera direction",
            kind="visage",
            output_format="foa",
            sample_rate=44100,
            architecture=_released_architecture(),
            weights=f"hf://{OFFICIAL_REPO}@{OFFICIAL_REVISION} (official release, converted exactly)",
            licence=_OFFICIAL_LICENCE,
            citation=visage_cite,
            tags=("official", "foa"),
        ),
        ZooEntry(
            "visage-vggsound-mono",
            _official_loader(1),
            "ViSAGe stage 1 (VGGSound, mono, 9 streams): the bare network that initialises FOA fine-tuning",
            kind="visage-network",
            output_format="",
            sample_rate=44100,
            architecture={"network": "visage_mono"},
            weights=f"hf://{OFFICIAL_REPO}@{OFFICIAL_REVISION} (official release, if published; converted)",
            licence=_OFFICIAL_LICENCE,
            citation=visage_cite,
            tags=("official", "mono", "init"),
        ),
        *_demo_entries(),
        ZooEntry(
            "dac-44khz",
            _tower("codec", "dac_44khz"),
            "Descript Audio Codec 44.1 kHz (9 codebooks): the ViSAGe codec, official weights",
            kind="codec",
            sample_rate=44100,
            architecture={"codec": "dac_44khz"},
            weights="official DAC release, resolved by the codec registry (spatialgen.codecs)",
            licence="mit",
            tags=("codec", "official"),
        ),
        ZooEntry(
            "clip-vit-b32",
            _tower("encoder", "clip_vit_b32"),
            "OpenAI CLIP ViT-B/32 image tower: the ViSAGe visual encoder (7x7 patches for the energy map)",
            kind="encoder",
            architecture={"encoder": "clip_vit_b32"},
            weights="OpenAI CLIP weights via timm, resolved by the encoder registry (spatialgen.encoders)",
            licence="mit",
            tags=("encoder", "official"),
        ),
    ]
    entries += [
        ZooEntry(
            size.name,
            mmaudio_loader(size),
            f"ViSAudio {size.label} initialised from MMAudio's {size.filename} (exact per ear; spatial path "
            "at zero: the start of binaural fine-tuning), text prompt optional",
            kind="visaudio",
            output_format="binaural",
            sample_rate=size.sample_rate,
            architecture={
                "config": size.config,
                "config_overrides": MMAUDIO_EXACT,
                **size.build_kwargs(),
                "init_mmaudio": size.weights_spec,
            },
            weights=f"{size.weights_spec} (MMAudio's release, converted on load)",
            licence=MMAUDIO_LICENCE,
            citation=visaudio_cite,
            tags=("mmaudio", "init", "binaural", "text"),
            card=mmaudio_card(size),
        )
        for size in MMAUDIO_ENTRIES
    ]
    for entry in entries:
        register_pretrained(entry, overwrite=True)


_register_all()
