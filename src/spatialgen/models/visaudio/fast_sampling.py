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
from typing import Any

import torch
from torch import Tensor, nn

from spatialgen.models.visaudio.conditioning import Conditions
from spatialgen.models.visaudio.flow import NetFn, generate

__all__ = ["NetFn", "fast_generate", "network_fn"]

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


def fast_generate(
    net: nn.Module,
    cond: Conditions,
    *,
    autocast: torch.dtype | None = None,
    compile: bool = False,
    compile_backend: str = "inductor",
    compile_mode: str | None = None,
    **sampling: Any,
) -> Tensor:
    """Binaural latents ``[B, 2, D, F]``, as :func:`~spatialgen.models.visaudio.flow.generate`, plus speed options.

    Args:
        net, cond: as in :func:`spatialgen.models.visaudio.flow.generate`.
        autocast: ``None`` (float32, default), ``torch.bfloat16`` or (GPU only) ``torch.float16``.
        compile: evaluate the network through ``torch.compile`` (default off).
        compile_backend, compile_mode: passed to ``torch.compile``.
        **sampling: ``uncond``, ``cfg_scale``, ``steps``, ``method``, ``sequential``, ``seed``, ``noise``,
            ``denormalize``, passed to :func:`~spatialgen.models.visaudio.flow.generate` (a few-step student
            distilled with the teacher's guidance baked in samples with ``cfg_scale=1`` and ``uncond=None``:
            one evaluation per step).
    """
    fn = network_fn(
        net, autocast=autocast, compile=compile, compile_backend=compile_backend, compile_mode=compile_mode
    )
    return generate(net, cond, net_fn=fn, **sampling)
