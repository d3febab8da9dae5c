"""One error naming every missing weights file of a ViSAudio build (codec, each encoder, extra files such
as the MMAudio network), so an offline machine is prepared in one pass instead of one failure per file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spatialgen.weights import WeightsNotFoundError, resolve_weights

__all__ = ["all_missing_weights"]


def all_missing_weights(
    build: Mapping[str, Any], extra: Mapping[str, str | None] | None = None, text_encoder: str | None = None
) -> WeightsNotFoundError:
    """The :class:`WeightsNotFoundError` listing every missing file of ``build`` (the keyword arguments of
    :meth:`ViSAudioPipeline.build <spatialgen.models.visaudio.pipeline.ViSAudioPipeline.build>`: codec and
    encoder names, kwargs, ``*_pretrained``, ``seed``), of ``extra`` (``{what: weights spec}``) and of the
    text encoder ``text_encoder`` (a :func:`~spatialgen.encoders.text.create_text_encoder` name).

    Meant for the error path after a build failed: parts whose weights are present are built (and dropped)
    while looking for the others.
    """
    from spatialgen.models.visaudio.pipeline import build_part

    seed = int(build.get("seed", 0))
    parts = [("codec", build["codec_name"], build.get("codec_kwargs"), build.get("codec_pretrained", True))]
    names = dict.fromkeys(build[k] for k in ("clip_encoder", "sync_encoder", "pe_encoder"))
    kwargs = build.get("encoder_kwargs") or {}
    parts += [("encoder", n, kwargs.get(n), build.get("encoder_pretrained", True)) for n in names]
    errors = []
    for kind, name, kw, pretrained in parts:
        try:
            build_part(kind, name, kw, pretrained, seed)
        except WeightsNotFoundError as exc:
            errors.append(str(exc))
    if text_encoder:
        from spatialgen.encoders.text import create_text_encoder

        try:
            create_text_encoder(text_encoder, pretrained=True)
        except WeightsNotFoundError as exc:
            errors.append(str(exc))
    for what, spec in (extra or {}).items():
        if spec:
            try:
                resolve_weights(spec, what=what)
            except WeightsNotFoundError as exc:
                errors.append(str(exc))
    files = [m for e in errors for m in e.split(" | ")]  # the MMAudio codec joins its VAE and vocoder so
    return WeightsNotFoundError(f"{len(files)} weights file(s) missing: " + " | ".join(files))
