"""Binaural distances and cue errors vs numpy/scipy references; left/right physics."""

import numpy as np
import pytest
import torch
from scipy.signal import hilbert

from spatialgen.metrics import BINAURAL_METRICS, DOAError, LeftRightConfusion
from spatialgen.metrics.functional import binaural as B
from tests.metrics._refs import stft_ref

SR = 16000


@pytest.fixture(scope="module")
def pair():
    rng = np.random.RandomState(0)
    gt = rng.randn(3, 2, 4000) * 0.3
    pred = gt * 0.7 + rng.randn(3, 2, 4000) * 0.1
    return torch.from_numpy(pred), torch.from_numpy(gt)


def _refs(p, g):
    sp = np.stack([[stft_ref(c) for c in clip] for clip in p])
    sg = np.stack([[stft_ref(c) for c in clip] for clip in g])
    d = sp - sg
    env = np.abs(hilbert(g, axis=-1)) - np.abs(hilbert(p, axis=-1))
    dl = np.stack([stft_ref(c[0] - c[1]) for c in p]), np.stack([stft_ref(c[0] - c[1]) for c in g])
    ang = np.abs(np.angle(dl[0]) - np.angle(dl[1]))
    ild = lambda s: 10 * np.log10((np.abs(s[:, 0]) ** 2 + 1e-10) / (np.abs(s[:, 1]) ** 2 + 1e-10))  # noqa: E731
    zp, zg = sp[:, 0] * np.conj(sp[:, 1]), sg[:, 0] * np.conj(sg[:, 1])
    ipd = np.abs(np.angle(np.exp(1j * (np.angle(zp) - np.angle(zg)))))
    return {
        "stft_distance": np.stack([d.real**2, d.imag**2]).mean((0, 3, 4)).sum(-1),
        "envelope_distance": np.sqrt((env**2).mean(-1)).sum(-1),
        "waveform_distance": ((p - g) ** 2).mean(-1).sum(-1),
        "magnitude_distance": (np.abs(d) ** 2).mean((-2, -1)).sum(-1),
        "phase_distance": np.minimum(ang, 2 * np.pi - ang).mean((-2, -1)),
        "snr": 10 * np.log10(((g**2).mean((1, 2)) + 1e-4) / (((p - g) ** 2).mean((1, 2)) + 1e-4)),
        "ild_error_db": np.abs(ild(sp) - ild(sg)).mean((-2, -1)),
        "ipd_error_rad": (np.abs(zg) * ipd).sum((-2, -1)) / np.abs(zg).sum((-2, -1)),
    }


def test_distances_match_numpy_reference_per_batch_and_accumulated(pair):
    pred, gt = pair
    refs = _refs(pred.numpy(), gt.numpy())
    for key, ref in refs.items():
        metric = BINAURAL_METRICS[key](SR)
        np.testing.assert_allclose(metric.scores(pred, gt).numpy(), ref, rtol=1e-9, atol=1e-12, err_msg=key)
        metric.update(pred[:1], gt[:1])
        metric.update(pred[1:], gt[1:])
        assert metric.compute().item() == pytest.approx(ref.mean(), rel=1e-9), key
        assert metric.state_dict() == {}


def _lateral(seconds_lead: float, gain_db: float, n: int = 8000) -> torch.Tensor:
    """Noise with the left ear leading by ``seconds_lead`` (integer samples) and louder by ``gain_db``."""
    s = torch.randn(n + 64, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    lag = round(seconds_lead * SR)
    left = s[32 : 32 + n] * 10 ** (gain_db / 20)
    right = s[32 - lag : 32 - lag + n]
    return torch.stack([left, right])[None]


def test_left_right_confusion_and_itd_error_physics():
    left = _lateral(5 / SR, 6.0)  # left ear earlier and louder
    right = left.flip(1)
    centre = _lateral(0.0, 0.0)
    assert B.itd_error(right, left, SR).item() == pytest.approx(10 / SR, abs=2e-6)
    conf = LeftRightConfusion(SR)
    conf.update(torch.cat([right, left, right]), torch.cat([left, left, centre]))
    # clip 1 confused, clip 2 correct, clip 3 not decisive (centred truth)
    assert conf.compute().item() == pytest.approx(0.5)
    assert conf.decisive.item() == 2


def test_lateral_angle_inverts_woodworth_and_binaural_doa_error():
    theta = torch.linspace(-1.5, 1.5, 31, dtype=torch.float64)
    itd = B.HEAD_RADIUS / B.SPEED_OF_SOUND * (theta + torch.sin(theta))
    torch.testing.assert_close(B.lateral_angle(itd), theta, rtol=0, atol=1e-12)
    left = _lateral(8 / SR, 0.0)
    m = DOAError(SR, mode="binaural", frame=0.25)
    m.update(left.flip(1), left)
    expected = 2 * B.lateral_angle(torch.tensor(8 / SR, dtype=torch.float64)).rad2deg()
    assert m.compute().item() == pytest.approx(expected.item(), abs=1.0)


def test_bad_shapes_raise_clear_errors(pair):
    pred, gt = pair
    with pytest.raises(ValueError, match="same shape"):
        B.snr(pred[..., :100], gt)
    with pytest.raises(ValueError, match="2 ear channels"):
        B.stft_distance(torch.zeros(1, 4, 100), torch.zeros(1, 4, 100))
