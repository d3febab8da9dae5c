"""Pure spatial-audio DSP in torch: geometry, FOA, projection, binaural rendering, DOA.

Nothing here imports other spatialgen packages except :mod:`spatialgen.errors`; everything is
batched, device-agnostic and float64-safe. Conventions: DESIGN.md and reference/spatial.md.
"""

from spatialgen.spatial import doa, energy_map, foa, geometry, projection

__all__ = ["doa", "energy_map", "foa", "geometry", "projection"]
