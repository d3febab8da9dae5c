"""Autoregressive generation for ViSAGe: KV-cached decoding, sampling, batched classifier-free guidance.

The encoder runs once (on every guidance branch at once), cross-attention K/V are projected once, and
each step feeds one row through the decoder with a self-attention cache. The heads used at step ``p``
come from the model's code pattern (:meth:`CodePattern.schedule`). Guidance (ViSAGe, Kim et al. 2025;
jaeyeonkim99/visage ``modeling/visage.py``, ``generate_cfg`` / ``generate_dual_cfg``):

- ``joint``: ``l = l(v,e,d) + s * (l(v,e,d) - l(∅,∅,∅))`` (what the released evaluation uses, s = 2.5);
- ``dual``: ``l = l(v,e,d) + g_v * (l(v,e,∅) - l(∅,∅,∅)) + g_d * (l(∅,∅,d) - l(∅,∅,∅))``.

All branches run as one batch (``[cond; uncond]`` or four blocks), so a step costs one decoder call
(the official code runs a separate pass per branch, also with guidance 0). Two engines: ``fast``
(default, :class:`~spatialgen.models.visage.stepper.DecodeStepper`) and ``plain`` (module by module,
:meth:`ViSAGe.decode_step`); both give the official greedy tokens in float32.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor

from spatialgen.models.visage.model import ViSAGe
from spatialgen.models.visage.stepper import DecodeStepper

__all__ = ["Engine", "Guidance", "codes_to_audio", "generate", "guidance_branches", "sample_logits"]

Guidance = Literal["none", "joint", "dual"]


def sample_logits(
    logits: Tensor,
    *,
    do_sample: bool = True,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> Tensor:
    """Draw one id per row of ``logits [..., V]`` (greedy argmax when ``do_sample`` is False).

    ``generator`` may be one generator per batch row (``logits.shape[0]`` of them): row ``b`` then draws
    from its own, so its samples do not depend on the other rows of the batch.

    Filtering order: temperature, top-k (keep the k largest), top-p (smallest set of largest
    probabilities whose mass reaches ``top_p``; the most likely token is always kept).
    """
    if not do_sample:
        return logits.argmax(dim=-1)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 (use do_sample=False for greedy), got {temperature}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    x = logits.float() / temperature
    V = x.shape[-1]
    if top_k is not None and top_k < V:
        kth = torch.topk(x, top_k, dim=-1).values[..., -1:]
        x = x.masked_fill(x < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_x, order = torch.sort(x, dim=-1, descending=True)
        probs = sorted_x.softmax(dim=-1)
        # Drop a token when the mass of the tokens strictly above it already reaches top_p.
        drop_sorted = (probs.cumsum(dim=-1) - probs) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        x = x.masked_fill(drop, float("-inf"))
    probs = x.softmax(dim=-1)
    if generator is None or isinstance(generator, torch.Generator):
        ids = torch.multinomial(probs.reshape(-1, V), 1, generator=generator)
        return ids.reshape(logits.shape[:-1])
    if len(generator) != logits.shape[0]:
        raise ValueError(f"got {len(generator)} generators for {logits.shape[0]} rows; give one per row")
    rows = [torch.multinomial(p.reshape(-1, V), 1, generator=g) for p, g in zip(probs, generator)]
    return torch.stack(rows).reshape(logits.shape[:-1])


def guidance_branches(guidance: Guidance, batch: int, device: torch.device) -> tuple[Tensor, Tensor, int]:
    """Per-row ``(drop_visual, drop_direction)`` masks for the stacked guidance branches, and their count.

    Branch order: none -> [c]; joint -> [c, ∅]; dual -> [c, (v,e,∅), (∅,∅,d), ∅].
    """
    table = {"none": [(0, 0)], "joint": [(0, 0), (1, 1)], "dual": [(0, 0), (0, 1), (1, 0), (1, 1)]}
    if guidance not in table:
        raise ValueError(f"guidance must be one of {sorted(table)}, got {guidance!r}")
    flags = torch.tensor(table[guidance], dtype=torch.bool, device=device)  # [n, 2]
    flags = flags.repeat_interleave(batch, dim=0)
    return flags[:, 0], flags[:, 1], len(table[guidance])


def _combine(logits: Tensor, guidance: Guidance, n: int, scale: float, direction_scale: float) -> Tensor:
    parts = logits.float().chunk(n, dim=0)
    if guidance == "none":
        return parts[0]
    if guidance == "joint":
        cond, uncond = parts
        return cond + scale * (cond - uncond)
    full, visual_only, direction_only, uncond = parts
    return full + scale * (visual_only - uncond) + direction_scale * (direction_only - uncond)


Engine = Literal["fast", "plain"]


@torch.no_grad()
def generate(
    model: ViSAGe,
    visual: Tensor,
    energy_map: Tensor | None = None,
    direction: Tensor | None = None,
    *,
    num_frames: int | None = None,
    guidance: Guidance = "joint",
    guidance_scale: float = 2.5,
    direction_guidance_scale: float = 2.5,
    do_sample: bool = True,
    temperature: float = 1.0,
    top_k: int | None = 256,
    top_p: float | None = None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    pad_to_output: bool = True,
    engine: Engine = "fast",
    dtype: torch.dtype | None = None,
    static: bool = False,
    kernel: str = "auto",
    compile: bool = False,
) -> Tensor:
    """Generate codes ``[B, C, Q, F]`` for the given conditions.

    Args:
        model: a :class:`ViSAGe` network (put it in eval mode; generation does not change the mode).
        visual, energy_map, direction: conditions as for :meth:`ViSAGe.encode`.
        num_frames: code frames to generate (default ``config.num_frames``, 430 for 5 s).
        guidance: ``none``, ``joint`` or ``dual`` classifier-free guidance; ``dual`` needs a direction input.
        guidance_scale: ``s`` of joint guidance, or the visual scale ``g_v`` of dual guidance.
        direction_guidance_scale: ``g_d`` of dual guidance.
        do_sample, temperature, top_k, top_p: sampling (see :func:`sample_logits`); greedy if not do_sample.
        generator: ``torch.Generator`` for reproducible sampling (on the model's device), or one per
            batch row (each row then samples independently of the batch).
        pad_to_output: with the default length, repeat the last frame up to ``config.output_frames``
            (431 for 5 s: the official output covers the whole clip).
        engine: ``fast`` (:class:`DecodeStepper`: static caches, packed weights, fused step) or ``plain``
            (the module-by-module :meth:`ViSAGe.decode_step` path).
        dtype: compute type of the fast engine (e.g. ``torch.bfloat16``; default the model's).
        static: fast engine with position-independent shapes (CUDA-graph / compile friendly).
        kernel: fast engine's product kernel: ``auto`` (default), ``native``, ``onednn`` or ``torch``
            (see :mod:`spatialgen.models.visage.stepper`).
        compile: fast engine's static step through ``torch.compile`` (slow to compile on CPU; for GPUs).

    Returns:
        int64 codes ``[B, C, Q, F]``.
    """
    cfg = model.config
    if guidance == "dual" and not cfg.use_direction:
        raise ValueError("guidance='dual' needs a model with a direction input; use guidance='joint'")
    if engine not in ("fast", "plain"):
        raise ValueError(f"engine must be 'fast' or 'plain', got {engine!r}")
    if engine == "plain" and (dtype is not None or static or kernel != "auto" or compile):
        raise ValueError("dtype, static, kernel and compile are options of engine='fast'")
    F_ = cfg.num_frames if num_frames is None else int(num_frames)
    pattern = model.pattern
    L = pattern.sequence_length(F_)
    B = visual.shape[0]
    device = visual.device
    drop_v, drop_d, n = guidance_branches(guidance, B, device)

    def rep(x: Tensor | None) -> Tensor | None:
        return None if x is None else x.repeat(n, *([1] * (x.ndim - 1)))

    memory = model.encode(
        rep(visual), rep(energy_map), rep(direction), drop_visual=drop_v, drop_direction=drop_d
    )
    schedule = [s.to(device) for s in pattern.schedule(F_)]
    sequence = torch.full((B, L, cfg.num_streams), cfg.pad_token, dtype=torch.long, device=device)

    def pick(logits: Tensor) -> Tensor:
        guided = _combine(logits, guidance, n, guidance_scale, direction_guidance_scale)
        return sample_logits(
            guided,
            do_sample=do_sample,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            generator=generator,
        )

    if engine == "fast":
        _decode_fast(
            model,
            memory,
            schedule,
            sequence,
            n,
            pick,
            dtype=dtype,
            static=static,
            kernel=kernel,
            compile=compile,
        )
    else:
        _decode_plain(model, memory, schedule, sequence, n, pick, F_)
    codes = pattern.revert(sequence)
    if pad_to_output and num_frames is None and cfg.output_frames > F_:
        extra = codes[..., -1:].expand(*codes.shape[:-1], cfg.output_frames - F_)
        codes = torch.cat([codes, extra], dim=-1)
    return codes


def _decode_plain(
    model: ViSAGe,
    memory: Tensor,
    schedule: list[Tensor],
    sequence: Tensor,
    n: int,
    pick: Callable[[Tensor], Tensor],
    num_frames: int,
) -> None:
    """Module-by-module decoding (:meth:`ViSAGe.decode_step`); fills ``sequence [B, L, K]`` in place."""
    state = model.start_decoding(memory, num_frames)
    prev: Tensor | None = None
    head_sets: dict[tuple[int, ...], tuple[Tensor, Tensor]] = {}
    for p, streams in enumerate(schedule):
        hidden = model.decode_step(state, prev)  # [n*B, 1, d]
        key = tuple(streams.tolist())
        if key not in head_sets:  # a pattern uses a handful of head sets: gather each weight subset once
            head_sets[key] = model.heads.select(streams)
        logits = model.heads(hidden, selected=head_sets[key])[:, 0]  # [n*B, S, V]
        sequence[:, p, streams] = pick(logits)
        prev = sequence[:, p : p + 1].repeat(n, 1, 1)


def _decode_fast(
    model: ViSAGe,
    memory: Tensor,
    schedule: list[Tensor],
    sequence: Tensor,
    n: int,
    pick: Callable[[Tensor], Tensor],
    *,
    dtype: torch.dtype | None,
    static: bool,
    kernel: str,
    compile: bool,
) -> None:
    """Fused-step decoding (:class:`DecodeStepper`); fills ``sequence [B, L, K]`` in place.

    The next input is the sum of the embeddings of the tokens just chosen (the slot's streams only: the
    PAD entries of the plain path's row add nothing).
    """
    keys = [tuple(s.tolist()) for s in schedule]
    stepper = DecodeStepper(
        model, memory, len(schedule), schedule, dtype=dtype, static=static, kernel=kernel, compile=compile
    )
    x: Tensor | None = None
    for p, streams in enumerate(schedule):
        h = stepper.step(x)
        ids = pick(stepper.logits(keys[p], h))  # [B, S]
        sequence[:, p, streams] = ids
        x = stepper.embed(keys[p], ids.repeat(n, 1))


@torch.no_grad()
def codes_to_audio(codes: Tensor, codec: torch.nn.Module, *, length: int | None = None) -> Tensor:
    """Decode ``codes [B, C, Q, F]`` channel by channel with ``codec`` to audio ``[B, C, T]`` (AmbiX for FOA).

    ``codec`` is a :class:`spatialgen.codecs.DiscreteAudioCodec` (e.g. ``create_codec("dac_44khz")``);
    ``length`` crops/pads to exactly that many samples (e.g. ``config.num_samples``).
    """
    q = getattr(codec, "num_codebooks", None)
    if codes.ndim != 4:
        raise ValueError(f"codes must be [batch, channels, codebooks, frames], got {tuple(codes.shape)}")
    if q is not None and codes.shape[2] > q:
        raise ValueError(
            f"codes have {codes.shape[2]} codebooks but the codec has {q}; pick the matching codec"
        )
    return codec.decode(codes, length=length)
