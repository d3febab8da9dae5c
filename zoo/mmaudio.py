"""Zoo entries ``visaudio-mmaudio-*``: ViSAudio initialised from each network MMAudio released.

MMAudio (Cheng et al., CVPR 2025) published five networks on the Hub (``hkchengrex/MMAudio``, folder
``weights/``): small 16 kHz, small / medium / large 44.1 kHz and large 44.1 kHz v2. Each entry builds the
ViSAudio pipeline of that size in MMAudio's latent space (its mel-VAE and BigVGAN vocoder, codecs
``mmaudio_vae_16k`` / ``mmaudio_vae_44k``), with MMAudio's encoders (DFN5B CLIP ViT-H/14-384, Synchformer)
plus the Perception Encoder of ViSAudio's spatial path, and converts the MMAudio file on load
(:func:`spatialgen.models.visaudio.convert.load_mmaudio_weights`, MMAudio's latent statistics included)
under :func:`~spatialgen.models.visaudio.convert.config_from_mmaudio`'s options, so each ear reproduces
MMAudio's own velocity exactly. The spatial (PE) path starts at zero: these are the *starting point* of
ViSAudio training (``recipes/visaudio_finetune.yaml``), generating MMAudio's mono audio on both ears, with
an optional text prompt, until fine-tuned on binaural data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spatialgen.hub.card import CITATIONS, CardInfo
from spatialgen.models.visaudio.config import ViSAudioConfig
from spatialgen.weights import WeightsNotFoundError

__all__ = [
    "MMAUDIO_ENTRIES",
    "MMAUDIO_EXACT",
    "MMAUDIO_REPO",
    "MMAudioSize",
    "mmaudio_card",
    "mmaudio_loader",
]

MMAUDIO_REPO = "hkchengrex/MMAudio"
#: ViSAudio options under which the converted network reproduces MMAudio per ear (L = R).
MMAUDIO_EXACT: dict[str, str] = {
    "sync_align": "index",
    "ear_attention": "joint_offset",
    "final_cond": "global",
}
#: MMAudio's sampler defaults (its ``eval_utils.py`` / demo: 25 Euler steps, CFG 4.5) and 8 s windows.
_SAMPLING = {"cfg_scale": 4.5, "steps": 25, "method": "euler"}
_CLIP_SECONDS = 8.0
MMAUDIO_LICENCE = "cc-by-nc-4.0"  # MMAudio's README: code MIT, checkpoints CC-BY-NC 4.0
MMAUDIO_CITATION = """@inproceedings{cheng2025mmaudio,
  title     = {{MMAudio}: Taming Multimodal Joint Training for High-Quality Video-to-Audio Synthesis},
  author    = {Cheng, Ho Kei and Ishii, Masato and Hayakawa, Akio and Shibuya, Takashi and Schwing, Alexander
               and Mitsufuji, Yuki},
  booktitle = {Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2025}
}"""


@dataclass(frozen=True)
class MMAudioSize:
    """One released MMAudio network and the ViSAudio size that holds it."""

    name: str  # zoo name
    config: str | ViSAudioConfig  # ViSAudio config name (or a config)
    filename: str  # file in the Hub repo
    codec: str  # MMAudio latent space
    sample_rate: int
    label: str  # human-readable size

    @property
    def weights_spec(self) -> str:
        return f"hf://{MMAUDIO_REPO}/{self.filename}"

    def build_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`ViSAudioPipeline.build` (published towers, MMAudio's sampler)."""
        return {
            "codec_name": self.codec,
            "codec_pretrained": True,
            "clip_encoder": "clip_vit_h14_384",
            "sync_encoder": "synchformer",
            "pe_encoder": "pe_spatial",
            "encoder_pretrained": True,
            "clip_seconds": _CLIP_SECONDS,
            "seed": 0,
            "sampling": dict(_SAMPLING),
        }


MMAUDIO_ENTRIES: tuple[MMAudioSize, ...] = (
    MMAudioSize("visaudio-mmaudio-s-16k", "S_16k", "weights/mmaudio_small_16k.pth", "mmaudio_vae_16k", 16000, "S, 16 kHz"),
    MMAudioSize("visaudio-mmaudio-s-44k", "S_44k", "weights/mmaudio_small_44k.pth", "mmaudio_vae_44k", 44100, "S, 44.1 kHz"),
    MMAudioSize("visaudio-mmaudio-m-44k", "M_44k", "weights/mmaudio_medium_44k.pth", "mmaudio_vae_44k", 44100, "M, 44.1 kHz"),
    MMAudioSize("visaudio-mmaudio-l-44k", "L_44k", "weights/mmaudio_large_44k.pth", "mmaudio_vae_44k", 44100, "L, 44.1 kHz"),
    MMAudioSize("visaudio-mmaudio-l-44k-v2", "L_44k_v2", "weights/mmaudio_large_44k_v2.pth", "mmaudio_vae_44k", 44100, "L, 44.1 kHz, v2"),
)  # fmt: skip


def mmaudio_loader(size: MMAudioSize):
    """``load(weights=None, device="cpu")``: the pipeline with the MMAudio file converted in.

    ``weights`` replaces the Hub file with a local path / spec of the same network; ``build_overrides``
    replace :meth:`MMAudioSize.build_kwargs` entries (e.g. towers from local files). Every missing file
    (network, VAE, vocoder, encoders) is named in one :class:`WeightsNotFoundError`.
    """

    def load(weights: str | None = None, device: str = "cpu", **build_overrides: Any) -> Any:
        from spatialgen.models.visaudio.convert import load_mmaudio_state, load_mmaudio_weights
        from spatialgen.models.visaudio.pipeline import ViSAudioPipeline
        from spatialgen.models.visaudio.weights_check import all_missing_weights

        spec = weights or size.weights_spec
        build = {**size.build_kwargs(), **build_overrides}
        try:
            state = load_mmaudio_state(spec)
            pipe = ViSAudioPipeline.build(size.config, **build, **MMAUDIO_EXACT)
        except WeightsNotFoundError:
            raise all_missing_weights(build, {f"MMAudio network weights ({size.label})": spec}) from None
        report = load_mmaudio_weights(pipe.network, state, load_latent_stats=True)
        if report.skipped or report.inexact:
            raise ValueError(
                f"{size.name}: {spec} is not the MMAudio {size.label} network ({report.summary()})"
            )
        return pipe.to(device).eval()

    return load


def mmaudio_card(size: MMAudioSize) -> CardInfo:
    """The model card text of an entry (rendered with :func:`zoo.model_card`)."""
    return CardInfo(
        model_name=size.name,
        repo_id=size.name,
        description=(
            f"ViSAudio ({size.label}) initialised from MMAudio's released `{size.filename}` "
            f"(huggingface.co/{MMAUDIO_REPO}), converted on load so that each ear reproduces MMAudio's "
            "velocity exactly (joint attention with a per-stream logit offset, global final-layer "
            "conditioning, MMAudio's sync alignment). Audio lives in MMAudio's latent space "
            f"(`{size.codec}`: mel-VAE + BigVGAN, decoded per ear); an optional text prompt goes through "
            "MMAudio's CLIP text tower."
        ),
        intended_use=(
            "The starting point of ViSAudio training (`recipes/visaudio_finetune.yaml` with "
            f"`init_mmaudio: {size.weights_spec}`), and a text- and video-conditioned baseline whose two "
            "ears carry MMAudio's mono audio."
        ),
        limitations=(
            "Not a trained binaural model: the spatial (Perception Encoder) path starts at zero, so left and "
            "right get the same audio until fine-tuned on binaural data. Non-commercial weights "
            "(CC-BY-NC 4.0, as MMAudio's checkpoints). Windows of 8 s; longer videos are crossfaded."
        ),
        training_data="MMAudio's: VGGSound, AudioCaps, WavCaps, Clotho (no binaural training yet).",
        base_model=MMAUDIO_REPO,
        license=MMAUDIO_LICENCE,
        weights_note=f"MMAudio's {size.label} network, converted on load",
        citation="\n\n".join((CITATIONS["visaudio"], MMAUDIO_CITATION)),
        tags=["mmaudio", "text-to-audio"],
    )
