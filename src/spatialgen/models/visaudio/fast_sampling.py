"""ViSAudio sampling with optional bf16 autocast and ``torch.compile`` of the velocity network.

:func:`fast_generate` is :func:`spatialgen.models.visaudio.flow.generate` (same noise, same ODE
integrator, same CFG combination) with two speed options, both off by default:

- ``autocast``: run each network evaluation under ``torch.autocast`` in that dtype (``torch.bfloat16``;
  on CUDA also ``torch.float16``). Matrix products and convolutions then run in low precision, while the
  ODE state, the CFG combination and the Euler updates stay in the state's dtype (float32), so rounding
  does not accumulate in the state over the steps (the same split as mixed-precision inference in
  MMAudio, hkchengrex/MMAudio ``mmaudio/eval_utils.py`` / ``demo.py``, which casts the network to bf16).
- ``compile``: evaluate the network through ``torch.compile`` (one compiled callable cached per network
  and option set, so repeated calls do not recompile; shapes are static within one call).

Agreement with float32 eager sampling is tested on CPU (``tests/training/test_visaudio_fewstep.py``):
compile matches to float32 rounding, bf16 autocast to a relative error of a few percent of the latents.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from spatialgen.models.visaudio.conditioning import Conditions
from spatialgen.models.visaudio.flow import Method, cfg_velocity, sample_ode

__all__ = ["NetFn", "fast_generate", "network_fn"]

#: ``net(x, t, cond) -> velocity``
NetFn = Callable[[Tensor, Tensor, Conditions], Tensor]
_AUTOCAST_DTYPES = (torch.bfloat16, torch.float16)
_COMPILED: weakref.WeakKeyDictionary[nn.Module, dict[tuple[Any, ...], NetFn]] = weakref.WeakKeyDictionary()


def _check_autocast(autocast: torch.dtype | None, device: torch.device) -> None:
    if autocast is None:
        return
    if autocast not in _AUTOCAST_DTYPES:
        raise ValueError(f"autocast must be None, torch.bfloat16 or torch.float16, got {autocast!r}")
    if autocast == torch.float16 and device.type == "cpu":
        raise ValueError("autocast=torch.float16 needs a GPU; use torch.bfloat16 on CPU")


def network_fn(
    net: nn.Module,
    *,
    autocast: torch.dtype | None = None,
    compile: bool = False,
    compile_backend: str = "inductor",
    compile_mode: str | None = None,
) -> NetFn:
    """``net`` as a ``(x, t, cond) -> velocity`` callable with the autocast/compile options applied.

    The output is cast back to ``x``'s dtype. A compiled callable is cached per ``net`` and options.
    """
    device = next(net.parameters()).device
    _check_autocast(autocast, device)

    def run(x: Tensor, t: Tensor, cond: Conditions) -> Tensor:
        if autocast is None:
            return net(x, t, cond)
        with torch.autocast(device_type=device.type, dtype=autocast):
            return net(x, t, cond).to(x.dtype)

    if not compile:
        return run
    key = (autocast, compile_backend, compile_mode, device.type)
    cache = _COMPILED.setdefault(net, {})
    if key not in cache:
        cache[key] = torch.compile(run, backend=compile_backend, mode=compile_mode, dynamic=False)
    return cache[key]


@torch.no_grad()
def fast_generate(
    net: nn.Module,
    cond: Conditions,
    *,
    uncond: Conditions | None = None,
    cfg_scale: float = 4.5,
    steps: int = 25,
    method: Method = "euler",
    sequential: bool = False,
    seed: int | None = None,
    noise: Tensor | None = None,
    denormalize: bool = True,
    autocast: torch.dtype | None = None,
    compile: bool = False,
    compile_backend: str = "inductor",
    compile_mode: str | None = None,
) -> Tensor:
    """Binaural latents ``[B, 2, D, F]``, as :func:`~spatialgen.models.visaudio.flow.generate`, plus speed options.

    Args:
        net, cond, uncond, cfg_scale, steps, method, sequential, seed, noise, denormalize: as in
            :func:`spatialgen.models.visaudio.flow.generate` (a few-step student distilled with the teacher's
            guidance baked in samples with ``cfg_scale=1`` and ``uncond=None``: one evaluation per step).
        autocast: ``None`` (float32, default), ``torch.bfloat16`` or (GPU only) ``torch.float16``.
        compile: evaluate the network through ``torch.compile`` (default off).
        compile_backend, compile_mode: passed to ``torch.compile``.
    """
    param = next(net.parameters())
    shape = (cond.batch_size, 2, net.config.latent_dim, cond.latent_len)
    if noise is None:
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        noise = torch.randn(shape, generator=gen, dtype=param.dtype).to(param.device)
    elif tuple(noise.shape) != shape:
        raise ValueError(f"noise must have shape {shape}, got {tuple(noise.shape)}")
    fn = network_fn(
        net, autocast=autocast, compile=compile, compile_backend=compile_backend, compile_mode=compile_mode
    )
    velocity = cfg_velocity(fn, cond, uncond, cfg_scale)  # type: ignore[arg-type]  # any (x, t, cond) callable
    x = sample_ode(velocity, noise, steps=steps, method=method, sequential=sequential)
    return net.normalizer.denormalize(x) if denormalize else x
