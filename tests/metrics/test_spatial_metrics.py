"""ViSAGe energy-map CC / AUC-Judd and DOA error vs numpy references and physics."""

import math
import warnings

import numpy as np
import pytest
import torch

from spatialgen.metrics import DOAError, EnergyMapAUC, EnergyMapCC
from spatialgen.metrics.functional import (
    auc_judd,
    doa_error,
    energy_map_auc,
    energy_map_cc,
    energy_map_vectors,
)
from spatialgen.spatial import foa
from tests.metrics._refs import auc_judd_ref, cc_ref

SR = 16000


def _plane(az_deg, el_deg, seconds=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(len(az_deg), int(SR * seconds), generator=g, dtype=torch.float64)
    az = torch.tensor(az_deg, dtype=torch.float64)[:, None] * math.pi / 180
    el = torch.tensor(el_deg, dtype=torch.float64)[:, None] * math.pi / 180
    return foa.encode(s, az, el)


@pytest.fixture(scope="module")
def clips():
    gt = _plane([30.0, -100.0, 150.0], [10.0, 40.0, -20.0])
    # a different source signal and a 12° shift: an imperfect prediction
    pred = _plane([42.0, -88.0, 150.0], [10.0, 30.0, -5.0], seed=1)
    return pred, gt


def test_cc_auc_match_numpy_reference_per_clip_and_chunk(clips):
    pred, gt = (x[:1] for x in clips)
    rng_noise = np.random.RandomState(0).randn(10312)
    for fps in (None, 1, 5):
        vp = energy_map_vectors(pred, SR, fps=fps, seconds=None).numpy()
        vg = energy_map_vectors(gt, SR, fps=fps, seconds=None).numpy()
        if fps is None:
            vp, vg = vp[:, None], vg[:, None]
        cc_ref_clip = [np.nanmean([cc_ref(a, b) for a, b in zip(vp[i], vg[i])]) for i in range(1)]
        auc_ref_clip = [
            np.nanmean([auc_judd_ref(a, b, rng_noise) for a, b in zip(vp[i], vg[i])]) for i in range(1)
        ]
        cc = energy_map_cc(pred, gt, SR, fps=fps, seconds=None)
        auc = energy_map_auc(pred, gt, SR, fps=fps, seconds=None)
        np.testing.assert_allclose(cc.numpy(), cc_ref_clip, rtol=0, atol=1e-12)
        np.testing.assert_allclose(auc.numpy(), auc_ref_clip, rtol=0, atol=1e-12)


def test_auc_judd_explicit_noise_and_ties():
    rng = np.random.RandomState(3)
    sal = np.round(rng.rand(4, 500) * 5)  # tie-heavy
    gt = rng.rand(4, 500)
    noise = rng.randn(500)
    got = auc_judd(torch.from_numpy(sal), torch.from_numpy(gt), noise=torch.from_numpy(noise))
    np.testing.assert_allclose(got.numpy(), [auc_judd_ref(s, g, noise) for s, g in zip(sal, gt)], atol=1e-12)


def test_metric_accumulates_batches_like_mean_of_clips(clips):
    pred, gt = clips
    for cls in (EnergyMapCC, EnergyMapAUC):
        m = cls(SR, fps=5, seconds=None)
        m.update(pred[:2], gt[:2])
        m.update(pred[2:], gt[2:])
        ref = cls(SR, fps=5, seconds=None).scores(pred, gt).mean()
        assert m.compute().item() == pytest.approx(ref.item(), abs=1e-12)
        assert m.state_dict() == {} and m.compute().dtype == torch.float64


def test_mirrored_prediction_scores_clearly_lower_and_small_rotation_stays_high():
    gt = _plane([60.0, -45.0], [15.0, 5.0])
    mirrored = gt.clone()
    mirrored[:, 1] *= -1  # Y -> -Y: left-right mirror
    rotated = _plane([63.0, -42.0], [15.0, 5.0])
    for fps in (None, 1, 5):
        kw = {"fps": fps, "seconds": None}
        assert (energy_map_cc(mirrored, gt, SR, **kw) < 0.6).all()
        assert (energy_map_auc(mirrored, gt, SR, **kw) < 0.8).all()
        assert (energy_map_cc(rotated, gt, SR, **kw) >= 0.99).all()
        assert (energy_map_auc(rotated, gt, SR, **kw) >= 0.99).all()
        assert (energy_map_cc(gt, gt, SR, **kw) > 1 - 1e-12).all()


def test_sn3d_variant_differs_and_is_reported_separately(clips):
    pred, gt = clips
    visage = energy_map_cc(pred, gt, SR)  # 1 s padded to ViSAGe's 5 s: the padding is silent
    sn3d = energy_map_cc(pred, gt, SR, beam="sn3d")
    torch.testing.assert_close(
        visage, energy_map_cc(pred, gt, SR, seconds=None), rtol=0, atol=1e-12
    )  # RMS scale only
    assert not torch.allclose(visage, sn3d)
    assert EnergyMapCC(SR, 1, beam="sn3d").key == "corr_1fps_sn3d"
    assert EnergyMapAUC(SR).key == "auc_j_all"
    # SN3D beam W + u·d peaks exactly at the source elevation (ViSAGe's √2 beam at atan(tan θ/√2))
    x = _plane([0.0], [60.0])
    from spatialgen.spatial.doa import visage_energy_map

    m_sn3d = visage_energy_map(x * torch.tensor([1, 2**-0.5, 1, 2**-0.5], dtype=torch.float64)[:, None], SR)
    assert 88 - 2 * int(m_sn3d[0].amax(1).argmax()) == 60
    assert 88 - 2 * int(visage_energy_map(x, SR)[0].amax(1).argmax()) == 50


def test_constant_maps_give_nan_with_warning_never_a_number(clips):
    _, gt = clips
    w_only = torch.zeros_like(gt)
    w_only[:, 0] = gt[:, 0]
    with pytest.warns(RuntimeWarning, match="constant energy map"):
        cc = energy_map_cc(w_only, gt, SR, seconds=None)
    with pytest.warns(RuntimeWarning, match="constant"):
        auc = energy_map_auc(torch.zeros_like(gt), gt, SR, fps=5, seconds=None)
    assert cc.isnan().all() and auc.isnan().all()
    m = EnergyMapCC(SR, seconds=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.update(w_only[:1], gt[:1])
    m.update(gt[1:], gt[1:])
    with pytest.warns(RuntimeWarning, match="1 clip"):
        assert m.compute().isnan()
    m_skip = EnergyMapCC(SR, skip_nan=True, seconds=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m_skip.update(torch.cat([w_only[:1], gt[1:]]), gt)
        assert m_skip.compute().item() == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="no clips"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics' compute-before-update notice
        EnergyMapCC(SR).compute()


def test_doa_error_matches_angle_and_skips_silence():
    gt = _plane([30.0, -120.0], [0.0, 20.0])
    pred = _plane([40.0, -120.0], [0.0, 25.0], seed=4)
    err = doa_error(pred, gt, SR, frame=0.2).rad2deg()
    assert err[0].item() == pytest.approx(10.0, abs=0.05)
    assert err[1].item() == pytest.approx(5.0, abs=0.05)
    gt_gap = gt.clone()
    gt_gap[..., : SR // 2] = 0  # first half silent: its (undefined) DOA must not count
    assert doa_error(pred, gt_gap, SR, frame=0.2).rad2deg()[0].item() == pytest.approx(10.0, abs=0.05)
    m = DOAError(SR)
    m.update(pred, gt)
    assert m.compute().item() == pytest.approx(float(err.mean()), abs=1e-12)
    assert DOAError.higher_is_better is False
