"""The metric suite of ``spatialgen evaluate``: protocol resolution, default groups and metric building.

Kept apart from the command so other code (the demo, training callbacks) can build the same metrics:

>>> protocol = resolve_protocol("visage")                                   # doctest: +SKIP
>>> metrics = build_metrics(["spatial", "fd"], channels=4, protocol=protocol)  # doctest: +SKIP

Each entry is ``key -> (Metric, AudioPrep)``: the prep turns a file's ``[C, T]`` audio at its own rate
into that metric's input (:mod:`spatialgen.metrics.protocols`). Only light imports at module level, so
the CLI's ``--help`` stays instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from spatialgen.errors import SpatialgenError

if TYPE_CHECKING:
    from torchmetrics import Metric

    from spatialgen.metrics.protocols import AudioPrep, Protocol

__all__ = ["AV_GROUPS", "METRIC_GROUPS", "build_metrics", "default_groups", "resolve_protocol"]

METRIC_GROUPS = ("spatial", "doa", "direction", "binaural", "fd", "kl", "is", "ib", "desync")
AV_GROUPS = ("ib", "desync")


def resolve_protocol(
    name: str,
    *,
    sample_rate: int | None = None,
    seconds: float | None = None,
    embedder: str | None = None,
    classifier: str | None = None,
    reduction: str | None = None,
) -> Protocol:
    """The named protocol; options only for ``spatialgen`` (a fixed protocol names the option it fixes)."""
    from dataclasses import replace

    from spatialgen.metrics.embedders.base import CHANNEL_REDUCTIONS
    from spatialgen.metrics.protocols import AudioPrep, get_protocol

    protocol = get_protocol(name)
    given = {
        "--sample-rate": sample_rate,
        "--seconds": seconds,
        "--embedder": embedder,
        "--classifier": classifier,
        "--reduction": reduction,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if not protocol.configurable:
        if given:
            flag = next(iter(given))
            raise SpatialgenError(
                f"{flag} is fixed by --protocol {name}; drop it, or use --protocol spatialgen to set it"
            )
        return protocol
    sr, sec = int(given.get("--sample-rate", 16000)), float(given.get("--seconds", 5.0))
    if sr <= 0 or not sec > 0:
        raise SpatialgenError(f"--sample-rate and --seconds must be > 0, got {sr} and {sec}")
    red = given.get("--reduction", protocol.reduction)
    if red not in CHANNEL_REDUCTIONS:
        raise SpatialgenError(f"--reduction: unknown {red!r}; choose from {', '.join(CHANNEL_REDUCTIONS)}")
    clf = given.get("--classifier", protocol.kl_classifiers[0])
    semantic = AudioPrep(seconds=sec, pad=True)
    return replace(
        protocol,
        spatial=AudioPrep(sr, seconds=sec, pad=True),
        fd=semantic,
        kl=semantic,
        fd_embedders=(given.get("--embedder", protocol.fd_embedders[0]),),
        kl_classifiers=(clf,),
        is_classifiers=(clf,),
        reduction=red,
    )


def default_groups(protocol: Protocol, channels: int) -> list[str]:
    """Groups a protocol scores when ``--metrics`` is not given."""
    if protocol.name == "av-benchmark":
        return ["fd", "kl", "is"]
    if protocol.name == "visage":
        return ["spatial", "fd", "kl"]
    return ["spatial", "doa", "direction"] if channels == 4 else ["binaural", "doa"]


def build_metrics(
    groups: Sequence[str], channels: int, protocol: Protocol, *, pretrained: bool = True
) -> dict[str, tuple[Metric, AudioPrep]]:
    """Result key -> (Metric, how its input is prepared) for the requested groups and channel count."""
    from spatialgen.metrics import (
        DOAError,
        EnergyMapAUC,
        EnergyMapCC,
        FrechetDistance,
        InceptionScore,
        KLDivergence,
        binaural_metrics,
        create_embedder,
        direction_metrics,
    )

    sp = protocol.spatial
    sr = sp.sample_rate
    embedders: dict[str, object] = {}

    def embedder(name: str):  # one instance per name, shared by FD / KL / IS
        if name not in embedders:
            try:
                embedders[name] = create_embedder(name, pretrained=pretrained)
            except KeyError as exc:
                raise SpatialgenError(
                    f"--embedder/--classifier: {exc.args[0] if exc.args else exc}"
                ) from None
        return embedders[name]

    def need(group: str, ok: bool, what: str) -> None:
        if not ok:
            raise SpatialgenError(f"--metrics {group} needs {what}, the files have {channels} channel(s)")

    metrics: dict[str, tuple[Metric, AudioPrep]] = {}
    for group in groups:
        if group not in METRIC_GROUPS:
            raise SpatialgenError(
                f"--metrics: unknown group {group!r}; choose from {', '.join(METRIC_GROUPS)}"
            )
        if group in AV_GROUPS:
            continue  # built by build_av_metrics
        if group == "spatial":
            need(group, channels == 4, "4-channel FOA audio")
            for beam in ("visage", "sn3d"):
                for fps in (None, 1, 5):
                    for cls in (EnergyMapCC, EnergyMapAUC):
                        m = cls(sr, fps, beam=beam, seconds=sp.seconds)
                        metrics[m.key] = (m, sp)
        elif group == "doa":
            need(group, channels in (2, 4), "FOA (4) or binaural (2) audio")
            key = "doa_error_deg" if channels == 4 else "lateral_error_deg"
            metrics[key] = (DOAError(sr, mode="foa" if channels == 4 else "binaural"), sp)
        elif group == "direction":
            need(group, channels == 4, "4-channel FOA audio")
            metrics.update({k: (m, sp) for k, m in direction_metrics(sr).items()})
        elif group == "binaural":
            need(group, channels == 2, "2-channel [L, R] audio")
            metrics.update({k: (m, sp) for k, m in binaural_metrics(sr).items()})
        elif group == "fd":
            for name in protocol.fd_embedders:
                emb = embedder(name)
                prep = protocol.fd.at(emb.sample_rate)
                reductions = {"": protocol.reduction}
                if channels == 2 and protocol.configurable:
                    reductions |= {"_mid": "mid", "_side": "side"}
                for suffix, red in reductions.items():
                    fd = FrechetDistance(
                        emb,
                        sample_rate=emb.sample_rate,
                        reduction=red,
                        channels=1 if prep.mix == "mono" else channels,
                    )
                    metrics[f"fd_{name}{suffix}"] = (fd, prep)
        elif group == "kl":
            for name in protocol.kl_classifiers:
                emb = embedder(name)
                kl = KLDivergence(
                    emb, sample_rate=emb.sample_rate, reduction=protocol.reduction, eps=protocol.kl_eps
                )
                metrics[f"kl_{name}"] = (kl, protocol.kl.at(emb.sample_rate))
        else:
            if not protocol.is_classifiers:
                raise SpatialgenError(
                    f"--metrics is: --protocol {protocol.name} reports no IS; use av-benchmark or spatialgen"
                )
            for name in protocol.is_classifiers:
                emb = embedder(name)
                m = InceptionScore(
                    emb, sample_rate=emb.sample_rate, reduction=protocol.reduction, splits=protocol.is_splits
                )
                metrics[f"is_{name}"] = (m, protocol.kl.at(emb.sample_rate))
    return metrics
