"""FOA direction errors, interaural metrics (IACC, per-band ILD/IPD, balance agreement), the evaluation
protocols' audio preparation, mid/side reductions and ViSAGe's KL variant."""

import math

import numpy as np
import pytest
import torch

from spatialgen.metrics import BandILDError, DirectionError, LRBalanceAgreement, binaural_metrics
from spatialgen.metrics.embedders.base import reduce_channels
from spatialgen.metrics.functional.direction import direction_errors, foa_direction
from spatialgen.metrics.functional.distribution import kl_divergence
from spatialgen.metrics.functional.interaural import (
    BANDS,
    band_ild_error,
    band_ipd_error,
    iacc,
    lr_balance,
    lr_balance_agreement,
)
from spatialgen.metrics.protocols import PROTOCOLS, AudioPrep
from spatialgen.spatial import foa

SR = 16000


def _noise(n, seed=0):
    return torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("method, tol", [("intensity", 0.2), ("map", 1.0)])
def test_foa_direction_finds_plane_waves(method, tol):
    s = _noise(SR)
    for az, el in ((0.0, 0.0), (90.0, 0.0), (-135.0, 30.0), (45.0, -60.0)):
        x = foa.encode(s, math.radians(az), math.radians(el))[None]
        a, e = foa_direction(x, SR, method=method)
        assert math.degrees(a.item()) == pytest.approx(az, abs=tol)
        assert math.degrees(e.item()) == pytest.approx(el, abs=tol)


def test_direction_errors_per_block_follow_a_source_that_jumps():
    s = _noise(2 * SR, 1)
    az = torch.where(torch.arange(2 * SR) < SR, 0.0, math.radians(60.0)).double()
    pred = foa.encode(s, az, 0.0)  # per-sample azimuth: 0° then 60°
    gt = foa.encode(s, 0.0, 0.0)[None]
    per_second = direction_errors(pred.reshape(1, 4, -1), gt, SR, frame=1.0)
    assert math.degrees(per_second["azimuth"].item()) == pytest.approx(30.0, abs=0.5)  # mean of 0° and 60°
    metric = DirectionError(SR, error="azimuth", method="map", frame=1.0)
    assert metric.key == "azimuth_error_deg_map_1s"
    metric.update(pred.reshape(1, 4, -1), gt)
    assert float(metric.compute()) == pytest.approx(30.0, abs=1.0)


def test_direction_errors_skip_silent_blocks_and_nan_silent_clips():
    s = _noise(2 * SR, 2)
    gt = foa.encode(s, 0.0, 0.0)[None]
    pred = foa.encode(s, math.radians(20.0), 0.0)[None].clone()
    pred[..., SR:] = 0  # the second second is silent: only the first counts
    err = direction_errors(pred, gt, SR, frame=1.0)
    assert math.degrees(err["azimuth"].item()) == pytest.approx(20.0, abs=0.3)
    with pytest.warns(RuntimeWarning, match="silent prediction or truth"):
        err = direction_errors(torch.zeros_like(gt), gt, SR)
    assert all(math.isnan(v.item()) for v in err.values())
    with pytest.raises(ValueError, match="method"):
        DirectionError(SR, method="peak")


def test_iacc_of_copies_delays_and_independent_noise():
    s = _noise(SR, 3)
    same = torch.stack([s, s])
    delayed = torch.stack([s, torch.roll(s, 8)])  # 0.5 ms: inside ±1 ms
    independent = torch.stack([s, _noise(SR, 4)])
    assert iacc(same, SR).item() == pytest.approx(1.0, abs=1e-12)
    assert iacc(delayed, SR).item() == pytest.approx(1.0, abs=1e-3)
    assert iacc(-same, SR).item() == pytest.approx(1.0, abs=1e-12)  # |ρ|
    assert iacc(independent, SR).item() < 0.05
    assert math.isnan(iacc(torch.zeros(2, SR, dtype=torch.float64), SR).item())


def test_band_ild_and_ipd_errors_measure_a_known_gain_and_delay():
    s = _noise(SR, 5)
    gt = torch.stack([s, s])[None]
    louder = torch.stack([2.0 * s, s])[None]  # +6.02 dB at every frequency
    for band in BANDS:
        assert band_ild_error(louder, gt, SR, band).item() == pytest.approx(20 * math.log10(2.0), abs=1e-6)
        assert band_ipd_error(louder, gt, SR, band).item() == pytest.approx(0.0, abs=1e-9)
    delayed = torch.stack([s, torch.roll(s, 1)])[None]  # left leads by 1/16 ms: IPD 2πf/SR
    low, high = (
        band_ipd_error(delayed, gt, SR, BANDS[0]).item(),
        band_ipd_error(delayed, gt, SR, BANDS[3]).item(),
    )
    assert 0 < low < 2 * math.pi * 500 / SR < high
    keys = set(binaural_metrics(SR))
    assert {"ild_error_db_0_500hz", "ipd_error_rad_4000hz_up", "iacc_error", "lr_balance_agreement"} <= keys
    m = BandILDError(SR, (500.0, 1500.0))
    m.update(louder, gt)
    assert float(m.compute()) == pytest.approx(6.0206, abs=1e-3)


def test_left_right_balance_agreement_per_second():
    s = _noise(3 * SR, 6)
    left = torch.stack([s, 0.3 * s])  # leans left every second
    right = torch.stack([0.3 * s, s])
    centre = torch.stack([s, s])
    b = lr_balance(left[None], SR)
    assert b.shape == (1, 3) and torch.allclose(b, torch.full_like(b, (1 - 0.09) / 1.09))
    assert lr_balance_agreement(left[None], left[None], SR).item() == 1.0
    assert lr_balance_agreement(right[None], left[None], SR).item() == 0.0
    mixed = torch.cat([left[:, :SR], right[:, SR:]], -1)  # right for the last two seconds
    assert lr_balance_agreement(mixed[None], left[None], SR).item() == pytest.approx(1 / 3)
    with pytest.warns(RuntimeWarning, match="no clearly lateral block"):
        assert math.isnan(lr_balance_agreement(left[None], centre[None], SR).item())
    metric = LRBalanceAgreement(SR)
    metric.update(torch.stack([left, right]), torch.stack([left, left]))
    assert float(metric.compute()) == 0.5 and metric.higher_is_better


def test_mid_side_and_mono_reductions():
    x = torch.tensor([[[1.0, 2.0], [3.0, -2.0]]])
    assert torch.equal(reduce_channels(x, "mid"), torch.tensor([[[2.0, 0.0]]]))
    assert torch.equal(reduce_channels(x, "side"), torch.tensor([[[-1.0, 2.0]]]))
    assert torch.equal(reduce_channels(torch.ones(1, 4, 3), "mono"), torch.ones(1, 1, 3))
    with pytest.raises(Exception, match="needs 2-channel"):
        reduce_channels(torch.ones(1, 4, 3), "side")


def test_kl_with_visage_epsilon():
    p, g = torch.randn(3, 7, dtype=torch.float64), torch.randn(3, 7, dtype=torch.float64)
    q, t = p.softmax(-1), g.softmax(-1)
    expected = (t * (t.log() - (q + 1e-6).log())).sum(-1)  # audioldm_eval / ViSAGe kld
    torch.testing.assert_close(kl_divergence(p, g, eps=1e-6), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(kl_divergence(p, g), (t * (t.log() - q.log())).sum(-1), rtol=0, atol=1e-12)


def test_protocol_settings_are_those_of_their_sources():
    av, vis, own = PROTOCOLS["av-benchmark"], PROTOCOLS["visage"], PROTOCOLS["spatialgen"]
    # av-benchmark: mono mix, DC removed before resampling, cut (never padded) to 8 s, PANNs 16 kHz, 10 IS splits
    assert av.fd == av.kl == AudioPrep(mix="mono", dc="before", seconds=8.0, pad=False)
    assert av.fd_embedders == ("passt", "panns_cnn14_16k", "vggish")
    assert av.kl_classifiers == av.is_classifiers == ("panns_cnn14_16k", "passt")
    assert (av.is_splits, av.is_seed, av.kl_eps, av.configurable) == (10, 2020, None, False)
    # ViSAGe: 16 kHz FOA padded/cut to 5 s; VGGish FD and PaSST KL per channel (W, Y, Z, X), log(q + 1e-6)
    assert vis.spatial == AudioPrep(16000, seconds=5.0, pad=True)
    assert vis.fd == AudioPrep(dc="after", min_seconds=2.0) and vis.kl == AudioPrep()
    assert (vis.fd_embedders, vis.kl_classifiers, vis.is_classifiers) == (("vggish",), ("passt",), ())
    assert (vis.reduction, vis.kl_eps) == ("mean_channels", 1e-6)
    assert own.configurable and own.is_splits == 10


def test_av_benchmark_prep_equals_its_pipeline():
    x = torch.randn(4, 44100 * 9, generator=torch.Generator().manual_seed(0)) + 0.3  # 9 s, 4 channels, DC
    prep = PROTOCOLS["av-benchmark"].fd.at(16000)
    mono = x.mean(0)
    mono = mono - mono.mean()
    ta = pytest.importorskip("torchaudio.functional")
    expected = ta.resample(mono, 44100, 16000)[: 8 * 16000][None]
    torch.testing.assert_close(prep(x, 44100), expected, rtol=0, atol=1e-5)
    short = prep(x[:, :44100], 44100)
    assert short.shape == (1, 16000)  # av-benchmark does not pad
    visage = PROTOCOLS["visage"].fd.at(16000)(x[:, :16000], 16000)
    assert visage.shape == (4, 32000) and np.allclose(visage[:, :16000].mean(-1).numpy(), 0, atol=1e-6)


def test_direction_metrics_share_one_estimate_per_batch(monkeypatch):
    import spatialgen.metrics.spatial as spatial_module
    from spatialgen.metrics import direction_metrics

    calls = []
    real = spatial_module.direction_errors
    monkeypatch.setattr(spatial_module, "direction_errors", lambda *a, **k: calls.append(k) or real(*a, **k))
    s = _noise(SR, 7)
    gt = foa.encode(s, 0.0, 0.0)[None]
    pred = foa.encode(s, math.radians(25.0), math.radians(10.0))[None]
    metrics = direction_metrics(SR, frames=(None,))
    values = {k: m.scores(pred, gt).item() for k, m in metrics.items()}
    assert len(metrics) == 6 and len(calls) == 2  # one per method, not one per error
    expected = real(pred, gt, SR, method="map")
    for name in ("azimuth", "elevation", "angular"):
        assert values[f"{name}_error_deg_map_clip"] == math.degrees(expected[name].item())
    pred2 = pred.clone()
    metrics["azimuth_error_deg_map_clip"].scores(pred2, gt)  # another batch is recomputed
    assert len(calls) == 3
    assert "_shared" not in str(metrics["azimuth_error_deg_map_clip"].state_dict())


def test_balance_agreement_mean_leaves_out_centred_clips():
    """A centred clip has no lateral second: the mean is over the lateral clips, not NaN."""
    import warnings

    from spatialgen.metrics.binaural import LRBalanceAgreement

    sr = 8000
    noise = torch.randn(sr, generator=torch.Generator().manual_seed(0))
    left = torch.stack([noise, 0.2 * noise])[None]  # clearly left
    centre = torch.stack([noise, noise])[None]  # balance 0: no decisive second
    metric = LRBalanceAgreement(sr)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        metric.update(torch.cat([left, centre]), torch.cat([left, centre]))
        assert float(metric.compute()) == 1.0
    flipped = LRBalanceAgreement(sr)
    flipped.update(left.flip(1), left)
    assert float(flipped.compute()) == 0.0
