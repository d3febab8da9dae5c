"""CLIP text tower for text prompts: every token's hidden state, as MMAudio conditions on them.

MMAudio (hkchengrex/MMAudio ``mmaudio/model/utils/features_utils.py``: ``patch_clip``, ``encode_text``)
tokenises with open_clip's ``ViT-H-14-378-quickgelu`` tokenizer (77 tokens, zero padded) and runs the text
tower of ``hf-hub:apple/DFN5B-CLIP-ViT-H-14-384``: token + positional embedding, the causal transformer,
``ln_final``, then **all 77 token states, each L2-normalised** (no pooling, no text projection):
``[B, 77, 1024]``. The tower is open_clip's own ``TextTransformer`` (QuickGELU, as the DFN5B weights
were trained), so only the weight loading and the output selection live here. The visual tower of the
same model is the ``clip_vit_h14_384`` visual encoder (timm); the text registry is separate because
these encoders take strings, not frames.

The empty prompt: MMAudio's network keeps the features of ``""`` as a frozen tensor
(``empty_string_feat``, our ``conditioning.empty_text``); pass ``text=None`` to the network for it, or
encode ``""`` here (the same features when the weights are the same).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spatialgen.encoders.loading import load_state_file, load_strict
from spatialgen.errors import SpatialgenError
from spatialgen.registry import Registry

__all__ = [
    "TEXT_ENCODERS",
    "ClipTextEncoder",
    "create_text_encoder",
    "list_text_encoders",
    "prompt_features",
    "register_text_encoder",
]

TEXT_ENCODERS: Registry[Callable[..., ClipTextEncoder]] = Registry("text encoder")

# Top-level keys of an open_clip CLIP checkpoint that belong to the text tower we run.
_TOWER_PREFIXES = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.")


class ClipTextEncoder(nn.Module):
    """open_clip CLIP text tower returning the per-token, L2-normalised final states ``[B, L, width]``.

    Args:
        width, heads, layers: transformer size (DFN5B ViT-H/14: 1024, 16, 24).
        context_length: tokens per prompt (77).
        vocab_size: BPE vocabulary (49408, the tokenizer's).
        quick_gelu: QuickGELU activations (True for DFN5B, as its ``-quickgelu`` open_clip name says).
        tokenizer: open_clip tokenizer name.
        frozen: eval mode and no gradients (the feature extractor is never trained).
    """

    def __init__(
        self,
        *,
        width: int = 1024,
        heads: int = 16,
        layers: int = 24,
        context_length: int = 77,
        vocab_size: int = 49408,
        quick_gelu: bool = True,
        tokenizer: str = "ViT-H-14-378-quickgelu",
        frozen: bool = True,
    ) -> None:
        super().__init__()
        try:
            import open_clip
            from open_clip.transformer import QuickGELU, TextTransformer
        except ImportError as exc:  # pragma: no cover - dependency of the package
            raise SpatialgenError(
                f"the CLIP text encoder needs open_clip ({exc}); pip install open-clip-torch"
            ) from None
        self.context_length, self.width = int(context_length), int(width)
        self.tower = TextTransformer(
            context_length=context_length,
            vocab_size=vocab_size,
            width=width,
            heads=heads,
            layers=layers,
            output_dim=None,  # no text projection: MMAudio uses the token states
            act_layer=QuickGELU if quick_gelu else nn.GELU,
            output_tokens=True,
        )
        self.tokenizer = open_clip.get_tokenizer(tokenizer)
        self.frozen = frozen
        if frozen:
            self.requires_grad_(False)
            self.eval()

    def train(self, mode: bool = True) -> ClipTextEncoder:
        """A frozen encoder stays in eval mode."""
        return super().train(mode and not self.frozen)

    def tokenize(self, prompts: str | Sequence[str]) -> Tensor:
        """``[B, context_length]`` token ids (start, BPE, end, zero padding; truncated at the context)."""
        texts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"prompts must be a string or a non-empty list of strings, got {prompts!r}")
        return self.tokenizer(texts, context_length=self.context_length)

    def encode_tokens(self, tokens: Tensor) -> Tensor:
        """Token ids ``[B, L]`` -> per-token features ``[B, L, width]`` (after ``ln_final``, L2-normalised)."""
        _, states = self.tower(tokens.to(self.tower.token_embedding.weight.device))
        return F.normalize(states, dim=-1)

    def forward(self, prompts: str | Sequence[str]) -> Tensor:
        """Prompts -> ``[B, context_length, width]`` text features for the network's ``text`` input."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self.encode_tokens(self.tokenize(prompts))

    def convert_state_dict(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """Keep the tower's keys of a full open_clip CLIP checkpoint (vision tower, text projection and
        ``logit_scale`` dropped); a bare tower state dict passes through."""
        if any(k.startswith("text.") for k in state_dict):  # open_clip CustomTextCLIP layout
            state_dict = {k[len("text.") :]: v for k, v in state_dict.items() if k.startswith("text.")}
        return {k: v for k, v in state_dict.items() if k.startswith(_TOWER_PREFIXES)}

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load a ``.safetensors``/``.bin``/``.pth`` file strictly into the tower (one-line error if not)."""
        load_strict(self.tower, self.convert_state_dict(load_state_file(path)), source=Path(path))


def register_text_encoder(name: str, factory: Callable[..., ClipTextEncoder]) -> None:
    """Register ``factory(pretrained: bool, **kwargs) -> ClipTextEncoder`` under ``name``."""
    TEXT_ENCODERS.register(name, factory)


def list_text_encoders(pattern: str = "*") -> list[str]:
    """Sorted names of the registered text encoders."""
    return TEXT_ENCODERS.list(pattern)


def create_text_encoder(name: str, pretrained: bool | str | os.PathLike = False, **kwargs) -> ClipTextEncoder:
    """Build a registered text encoder; ``pretrained`` as in :func:`~spatialgen.encoders.create_encoder`
    (True: the published weights through ``resolve_weights``; a path / ``hf://`` spec / URL: that file)."""
    factory = TEXT_ENCODERS.get(name)
    encoder = factory(pretrained=pretrained is True, **kwargs)
    if not isinstance(pretrained, bool):
        from spatialgen.weights import resolve_weights

        encoder.load_weights(resolve_weights(pretrained, what=f"weights for text encoder {name!r}"))
    return encoder


_CACHE: dict[str, ClipTextEncoder] = {}


def prompt_features(
    prompt: str | Sequence[str] | None,
    batch_size: int,
    *,
    width: int,
    encoder: str = "clip_text_h14_384",
    device: torch.device | str | None = None,
) -> Tensor | None:
    """Text features ``[B, L, width]`` for a prompt (one string for the batch or one per clip), or None
    when there is none (None, or only empty strings: the network's own empty-prompt features apply).

    ``encoder`` is built once per process with its published weights and kept.
    """
    prompts = [prompt] * batch_size if isinstance(prompt, str) else prompt
    if prompts is None or not any(prompts):
        return None
    if len(prompts) != batch_size:
        raise ValueError(f"prompt: got {len(prompts)} prompts for a batch of {batch_size}; pass one per clip")
    if encoder not in _CACHE:
        _CACHE[encoder] = create_text_encoder(encoder, pretrained=True)
    enc = _CACHE[encoder].to(device)
    if enc.width != width:
        raise ValueError(
            f"prompt: text encoder {encoder!r} gives {enc.width}-d tokens, the network takes {width}-d; "
            "use the text encoder the network was trained with"
        )
    return enc(list(prompts))


_DFN5B = "hf://apple/DFN5B-CLIP-ViT-H-14-384/open_clip_pytorch_model.bin"


def _clip_text_h14_384(pretrained: bool = False, **kwargs) -> ClipTextEncoder:
    """MMAudio's text features: DFN5B CLIP ViT-H/14-384 text tower (the ``clip_vit_h14_384`` model)."""
    encoder = ClipTextEncoder(**kwargs)
    if pretrained:
        from spatialgen.weights import resolve_weights

        encoder.load_weights(resolve_weights(_DFN5B, what="DFN5B CLIP weights (text tower)"))
    return encoder


def _clip_text_tiny(pretrained: bool = False, **kwargs) -> ClipTextEncoder:
    """A tiny random tower with the real tokenizer (tests, CPU demos); no published weights."""
    if pretrained:
        raise SpatialgenError("text encoder 'clip_text_tiny' has no published weights; use pretrained=False")
    return ClipTextEncoder(**{"width": 16, "heads": 2, "layers": 2, "frozen": False, **kwargs})


register_text_encoder("clip_text_h14_384", _clip_text_h14_384)
register_text_encoder("clip_text_tiny", _clip_text_tiny)
