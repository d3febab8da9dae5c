"""Datasets: synthetic 360° scenes, real-dataset adapters, feature cache, DataModules.

Every dataset uses one on-disk layout and metadata schema (:mod:`spatialgen.data.synthetic.metadata`)
and yields one item format (:mod:`spatialgen.data.clips`). Modules: ``registry`` (``create_dataset``,
``list_datasets``), ``layout`` / ``ytambigen`` / ``vggsound`` (adapters), ``biaudio`` (BiAudio-style
builder), ``features`` (feature cache), ``augment``, ``collate``, ``datamodule``
(``SpatialDataModule``), ``streaming`` (tar shards via HF ``datasets``), ``cli``.
Subpackages are imported explicitly (``from spatialgen.data.synthetic import generate_dataset``) so that
importing :mod:`spatialgen.data` stays cheap.
"""
