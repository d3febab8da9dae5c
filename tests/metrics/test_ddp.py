"""DDP (2 CPU processes, gloo): synced metrics equal the single-process values."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from spatialgen.metrics import SNR, DirectionError, EnergyMapAUC, EnergyMapCC, FrechetDistance, IACCError


def _data():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(4, 4, 3200, generator=g, dtype=torch.float64)
    gt = pred + 0.5 * torch.randn(4, 4, 3200, generator=g, dtype=torch.float64)
    feats = (
        torch.randn(40, 6, generator=g, dtype=torch.float64),
        torch.randn(40, 6, generator=g, dtype=torch.float64),
    )
    return pred, gt, feats


def _metrics():
    return {
        "cc": EnergyMapCC(16000, 5, seconds=None),
        "auc": EnergyMapAUC(16000, seconds=None),
        "fd": FrechetDistance(None, num_features=6),
        "snr": SNR(16000),
        "direction": DirectionError(16000, error="angular", method="map", frame=0.1),
        "iacc": IACCError(16000),
    }


def _feed(metrics, pred, gt, feats):
    for key in ("cc", "auc"):
        metrics[key].update(pred, gt)
    metrics["fd"].update(*feats)
    metrics["snr"].update(pred[:, :2], gt[:, :2])
    metrics["direction"].update(pred, gt)
    metrics["iacc"].update(pred[:, :2], gt[:, :2])


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    pred, gt, feats = _data()
    metrics = _metrics()
    half = slice(2 * rank, 2 * rank + 2)
    _feed(metrics, pred[half], gt[half], tuple(f[20 * rank : 20 * rank + 20] for f in feats))
    values = {k: m.compute() for k, m in metrics.items()}
    torch.save(values, f"{out}.{rank}")
    dist.destroy_process_group()


@pytest.mark.slow  # process spawn + imports dominate (~30 s on the shared 2-core box)
def test_two_process_gloo_equals_single_process(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(port, str(tmp_path / "v")), nprocs=2, join=True)
    pred, gt, feats = _data()
    single = _metrics()
    _feed(single, pred, gt, feats)
    for rank in (0, 1):
        values = torch.load(tmp_path / f"v.{rank}")
        for key, metric in single.items():
            assert torch.allclose(values[key], metric.compute(), rtol=1e-12, atol=1e-12), (rank, key)
