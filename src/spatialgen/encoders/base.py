"""The visual-encoder interface every encoder implements, and the output type it returns.

An encoder turns a video ``[B, T, 3, H, W]`` (uint8 or float in [0, 1]) into per-frame (or per-token)
embeddings that carry their frame rate. Models and the feature cache only ever talk to this interface,
so no caller special-cases an encoder.

The work is split into *units*: one frame for image encoders, one overlapping 16-frame segment for
Synchformer. ``forward`` preprocesses and encodes ``chunk_size`` units at a time, so arbitrarily long
videos fit in memory; units are independent, so chunking does not change the result.
"""

from __future__ import annotations

import os
from abc import ABCMeta, abstractmethod
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["EncoderOutput", "ResizeMode", "VisualEncoder", "check_frames", "resize_frames"]

ResizeMode = Literal["shorter_crop", "squash"]


@dataclass
class EncoderOutput:
    """What an encoder returns.

    Attributes:
        global_features: ``[B, T, D]`` one embedding per output time step.
        patch_tokens: ``[B, T, N, Dp]`` spatial tokens per time step (grid order, row-major), or None.
        fps: rate of the time axis of ``global_features`` / ``patch_tokens`` in steps per second.
    """

    global_features: Tensor
    patch_tokens: Tensor | None
    fps: float

    def to(self, *args, **kwargs) -> EncoderOutput:
        """Move/cast both tensors like :meth:`torch.Tensor.to`."""
        patches = None if self.patch_tokens is None else self.patch_tokens.to(*args, **kwargs)
        return EncoderOutput(self.global_features.to(*args, **kwargs), patches, self.fps)


def check_frames(frames: Tensor) -> None:
    """Raise a one-line ValueError unless ``frames`` is a ``[B, T, 3, H, W]`` uint8 or float tensor."""
    if not isinstance(frames, Tensor):
        raise ValueError(f"frames must be a torch.Tensor [B, T, 3, H, W], got {type(frames).__name__}")
    if frames.ndim != 5 or frames.shape[2] != 3:
        raise ValueError(
            f"frames must have shape [batch, time, 3, height, width], got {tuple(frames.shape)}; "
            "add a batch axis with frames[None] or move channels to axis 2"
        )
    if frames.dtype != torch.uint8 and not frames.is_floating_point():
        raise ValueError(f"frames must be uint8 (0..255) or float (0..1), got dtype {frames.dtype}")


def resize_frames(x: Tensor, size: tuple[int, int], mode: ResizeMode) -> Tensor:
    """Resize float frames ``[..., 3, H, W]`` to ``size`` with antialiased bicubic interpolation.

    ``"shorter_crop"`` scales so the image covers ``size`` (shorter side for square targets) and takes the
    centre crop, keeping the aspect ratio (CLIP/ViSAGe, Synchformer); ``"squash"`` resizes straight to
    ``size`` (MMAudio's CLIP path). Values are clamped to [0, 1] because bicubic overshoots, as the uint8
    pipelines of the reference implementations do.
    """
    th, tw = size
    h, w = x.shape[-2:]
    if (h, w) == (th, tw):
        return x
    lead = x.shape[:-3]
    flat = x.reshape(-1, *x.shape[-3:])
    if mode == "squash":
        out = _bicubic(flat, (th, tw))
    elif mode == "shorter_crop":
        scale = max(th / h, tw / w)
        rh, rw = max(th, round(h * scale)), max(tw, round(w * scale))
        out = _bicubic(flat, (rh, rw))
        top, left = round((rh - th) / 2), round((rw - tw) / 2)  # torchvision's center_crop rounding
        out = out[..., top : top + th, left : left + tw]
    else:
        raise ValueError(f"resize mode must be 'shorter_crop' or 'squash', got {mode!r}")
    return out.clamp(0.0, 1.0).reshape(*lead, *out.shape[-3:])


def _bicubic(x: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    dtype = x.dtype
    if dtype in (torch.float16, torch.bfloat16):  # antialiased bicubic lacks half kernels on CPU
        x = x.float()
    return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).to(dtype)


class VisualEncoder(nn.Module, metaclass=ABCMeta):
    """Base class: preprocessing, freezing and time-chunked encoding shared by all encoders.

    Subclasses set the class attributes below (or instance attributes in ``__init__``) and implement
    :meth:`encode_chunk`; per-segment encoders also override :meth:`num_units` and :meth:`unit_span`.

    Args:
        frozen: freeze the weights (``requires_grad_(False)``, eval mode kept through ``.train()``) and
            run under :func:`torch.inference_mode`.
        chunk_size: units (frames, or segments for Synchformer) encoded per batch inside ``forward``.
        patch_tokens: also return spatial patch tokens by default.
    """

    name: str = "encoder"
    fps: float = 8.0  # frame rate the encoder expects its input at
    output_fps: float = 8.0  # rate of the output time axis
    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    resize_mode: ResizeMode = "shorter_crop"
    embed_dim: int = 0
    patch_dim: int | None = None
    patch_grid: tuple[int, int] | None = None  # (rows, cols) of the patch tokens

    def __init__(self, *, frozen: bool = True, chunk_size: int = 64, patch_tokens: bool = False) -> None:
        super().__init__()
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.chunk_size = int(chunk_size)
        self.return_patch_tokens = bool(patch_tokens)
        self.frozen = False
        self._freeze_on_init = frozen

    # ----------------------------------------------------------------------------------- freezing
    def freeze(self) -> VisualEncoder:
        """Stop gradients, switch to eval mode and run future forwards under inference mode."""
        self.frozen = True
        self.requires_grad_(False)
        return super().train(False)

    def unfreeze(self) -> VisualEncoder:
        """Make the weights trainable again (call ``.train()`` afterwards to leave eval mode)."""
        self.frozen = False
        self.requires_grad_(True)
        return self

    def train(self, mode: bool = True) -> VisualEncoder:
        """Like :meth:`nn.Module.train`, but a frozen encoder stays in eval mode (dropout, norms)."""
        return super().train(mode and not self.frozen)

    def _finish_init(self) -> None:
        """Call at the end of a subclass ``__init__`` once all weights exist."""
        if self._freeze_on_init:
            self.freeze()

    # ------------------------------------------------------------------------------------ weights
    def convert_state_dict(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """Map a checkpoint's keys onto this module's (official layouts are converted by subclasses)."""
        return state_dict

    def load_weights(self, path: str | os.PathLike) -> VisualEncoder:
        """Load a local ``.safetensors``/``.pth`` file strictly (after :meth:`convert_state_dict`)."""
        from spatialgen.encoders.loading import load_state_file, load_strict

        load_strict(self, self.convert_state_dict(load_state_file(path)), source=path)
        return self

    # ------------------------------------------------------------------------------ preprocessing
    def preprocess(self, frames: Tensor) -> Tensor:
        """uint8 (0..255) or float (0..1) ``[B, T, 3, H, W]`` -> normalised float at ``input_size``.

        uint8 becomes float32; a float input keeps its dtype.
        """
        check_frames(frames)
        x = frames.float().div_(255.0) if frames.dtype == torch.uint8 else frames
        x = resize_frames(x, self.input_size, self.resize_mode)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return (x - mean) / std

    # ----------------------------------------------------------------------------------- encoding
    def num_units(self, num_frames: int) -> int:
        """How many independent units ``num_frames`` input frames make (one per frame by default)."""
        return num_frames

    def unit_span(self, start: int, stop: int) -> tuple[int, int]:
        """The input frame range ``[first, last)`` that units ``[start, stop)`` need."""
        return start, stop

    @abstractmethod
    def encode_chunk(self, x: Tensor, patch_tokens: bool) -> tuple[Tensor, Tensor | None]:
        """Encode preprocessed frames ``[B, t, 3, H, W]`` covering whole units.

        Returns ``([B, k, D], [B, k, N, Dp] | None)`` where k is the number of output steps.
        """

    @property
    def param_dtype(self) -> torch.dtype:
        """The floating dtype of the weights (inputs are cast to it)."""
        for p in self.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.float32

    @property
    def device(self) -> torch.device:
        """Where the weights live (inputs are moved there chunk by chunk)."""
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def forward(self, frames: Tensor, patch_tokens: bool | None = None) -> EncoderOutput:
        """Encode a video ``[B, T, 3, H, W]`` sampled at :attr:`fps`.

        Args:
            frames: uint8 (0..255) or float (0..1) frames at any resolution, on any device.
            patch_tokens: return patch tokens (defaults to the ``patch_tokens`` given at construction).

        Returns:
            :class:`EncoderOutput` on the encoder's device in the weights' dtype.
        """
        check_frames(frames)
        want_patches = self.return_patch_tokens if patch_tokens is None else bool(patch_tokens)
        if want_patches and self.patch_dim is None:
            raise ValueError(f"encoder {self.name!r} has no patch tokens; call it with patch_tokens=False")
        n_units = self.num_units(frames.shape[1])
        if n_units < 1:
            raise ValueError(
                f"encoder {self.name!r}: {frames.shape[1]} frames are too few; "
                f"it needs at least {self.unit_span(0, 1)[1]} frames at {self.fps:g} fps"
            )
        device, dtype = self.device, self.param_dtype
        globals_, patches = [], []
        with torch.inference_mode() if self.frozen else nullcontext():
            for start in range(0, n_units, self.chunk_size):
                first, last = self.unit_span(start, min(start + self.chunk_size, n_units))
                x = self.preprocess(frames[:, first:last].to(device)).to(dtype)
                g, p = self.encode_chunk(x, want_patches)
                globals_.append(g)
                patches.append(p)
            g = torch.cat(globals_, dim=1)
            p = torch.cat(patches, dim=1) if want_patches else None
        if self.frozen:  # inference tensors cannot enter autograd graphs; a clone makes them normal tensors
            g = g.clone()
            p = None if p is None else p.clone()
        return EncoderOutput(g, p, self.output_fps)

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, fps={self.fps:g}, input_size={self.input_size}, embed_dim={self.embed_dim}, "
            f"patch_dim={self.patch_dim}, frozen={self.frozen}, chunk_size={self.chunk_size}"
        )
