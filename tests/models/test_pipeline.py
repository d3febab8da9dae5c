"""The pipeline base: abstract interface and registry dispatch."""

import json
import subprocess
import sys

import pytest
import torch

from spatialgen.models.pipeline import PIPELINES, GenerationPipeline, build_pipeline, register_pipeline
from spatialgen.registry import UnknownNameError


class _Constant(GenerationPipeline):
    kind = "test-constant"
    output_format = "binaural"

    def __init__(self, level: float) -> None:
        super().__init__()
        self.level = torch.nn.Parameter(torch.tensor(level))

    sample_rate = 100
    clip_seconds = 0.5
    frame_rates = {"tiny": 8.0}  # noqa: RUF012 (read-only class constant)

    def generate(self, frames, *, camera_direction=None, seed=None, **sampling):
        batch = next(iter(frames.values())).shape[0]
        return self.level.detach() * torch.ones(batch, self.num_channels, 50)

    def pipeline_config(self):
        return {"kind": self.kind, "level": float(self.level)}

    @classmethod
    def from_pipeline_config(cls, config):
        return cls(config["level"])


def test_build_pipeline_round_trips_config() -> None:
    if "test-constant" not in PIPELINES:
        register_pipeline(_Constant)
    pipe = build_pipeline(_Constant(0.25).pipeline_config())
    assert isinstance(pipe, _Constant) and pipe.num_channels == 2
    out = pipe.generate({"tiny": torch.zeros(3, 4, 3, 8, 8, dtype=torch.uint8)})
    assert out.shape == (3, 2, 50) and torch.all(out == 0.25)


def test_errors() -> None:
    with pytest.raises(TypeError, match="abstract"):
        GenerationPipeline()
    with pytest.raises(ValueError, match="no 'kind'"):
        build_pipeline({})
    with pytest.raises(UnknownNameError, match="unknown pipeline kind"):
        build_pipeline({"kind": "nope"})


def test_builtin_kinds_are_imported_on_demand() -> None:
    """build_pipeline({"kind": "visage", ...}) works in a fresh process that never imported the model."""
    from spatialgen.models.visage.pipeline import ViSAGePipeline

    config = ViSAGePipeline(
        "visage_small",
        encoder="tiny",
        encoder_kwargs={"fps": 4.0, "input_size": (56, 56)},
        encoder_pretrained=False,
        codec_pretrained=False,
    )
    code = (
        "import json, sys; from spatialgen.models.pipeline import build_pipeline; "
        "print(type(build_pipeline(json.loads(sys.argv[1]))).__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(config.pipeline_config())],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "ViSAGePipeline"
