"""Procedural 360° scenes with ground truth: the dataset every command can run on without downloads.

``generate_dataset(out_dir, n_clips, seed)`` (CLI: ``spatialgen data synth``) writes clips with moving,
uniquely coloured objects that each emit a class-specific sound, in the on-disk layout and metadata
schema shared with the real-dataset adapters (:mod:`spatialgen.data.synthetic.metadata`).
"""

from spatialgen.data.synthetic.ensure import check_synth_settings, ensure_synthetic
from spatialgen.data.synthetic.generate import generate_clip, generate_dataset, write_clip
from spatialgen.data.synthetic.metadata import (
    SCHEMA_VERSION,
    ClipMeta,
    Manifest,
    ManifestEntry,
    SourceTrack,
    read_manifest,
    read_meta,
    write_manifest,
    write_meta,
)
from spatialgen.data.synthetic.render import RenderedClip, render_clip
from spatialgen.data.synthetic.scene import Scene, SynthConfig, sample_scene
from spatialgen.data.synthetic.sounds import SOUND_CLASSES, SoundClass, get_sound_class, list_sound_classes

__all__ = [
    "SCHEMA_VERSION",
    "SOUND_CLASSES",
    "ClipMeta",
    "Manifest",
    "ManifestEntry",
    "RenderedClip",
    "Scene",
    "SoundClass",
    "SourceTrack",
    "SynthConfig",
    "check_synth_settings",
    "ensure_synthetic",
    "generate_clip",
    "generate_dataset",
    "get_sound_class",
    "list_sound_classes",
    "read_manifest",
    "read_meta",
    "render_clip",
    "sample_scene",
    "write_clip",
    "write_manifest",
    "write_meta",
]
