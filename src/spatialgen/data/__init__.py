"""Datasets: synthetic 360° scenes, real-dataset adapters, feature cache, DataModules.

Every dataset uses one on-disk layout and metadata schema (:mod:`spatialgen.data.synthetic.metadata`).
Subpackages are imported explicitly (``from spatialgen.data.synthetic import generate_dataset``) so that
importing :mod:`spatialgen.data` stays cheap.
"""
