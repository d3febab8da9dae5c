"""adaLN: zero-initialised (neutral), chunk order, per-sample and per-token conditioning."""

import pytest
import torch

from spatialgen.nn.adaln import AdaLN, modulate
from spatialgen.nn.mlp import SwiGLU, swiglu_hidden_dim


def test_zero_init_is_neutral():
    ada = AdaLN(8, 6)
    mods = ada(torch.randn(3, 5, 8))
    assert len(mods) == 6 and all(m.shape == (3, 5, 8) and not m.any() for m in mods)
    x = torch.randn(3, 5, 8)
    torch.testing.assert_close(modulate(x, mods[0], mods[1]), x)


def test_chunks_follow_linear_rows():
    ada = AdaLN(4, 2)
    with torch.no_grad():
        ada.linear.weight.normal_()
        ada.linear.bias.normal_()
    c = torch.randn(2, 4, dtype=torch.float32)
    full = torch.nn.functional.silu(c) @ ada.linear.weight.T + ada.linear.bias
    shift, scale = ada(c)
    torch.testing.assert_close(shift, full[:, :4])
    torch.testing.assert_close(scale, full[:, 4:])
    x = torch.randn(2, 7, 4)
    torch.testing.assert_close(
        modulate(x, shift[:, None], scale[:, None]), x * (1 + full[:, None, 4:]) + full[:, None, :4]
    )


def test_swiglu_width_and_errors():
    assert swiglu_hidden_dim(4 * 448) == 1280 and swiglu_hidden_dim(4 * 896) == 2560
    assert SwiGLU(16, 64, kernel_size=3, multiple_of=8).w1.weight.shape == (48, 16, 3)
    with pytest.raises(ValueError):
        AdaLN(0, 2)
