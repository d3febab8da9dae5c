"""Pure spatial-audio DSP in torch: geometry, FOA, projection, binaural rendering, DOA.

Nothing here imports other spatialgen packages except :mod:`spatialgen.errors` and
:mod:`spatialgen.registry`; everything is batched, device-agnostic and float64-safe.
Conventions: DESIGN.md and reference/spatial.md.
"""

from spatialgen.spatial import binaural, convolve, cues, doa, energy_map, foa, geometry, hrir, projection

__all__ = ["binaural", "convolve", "cues", "doa", "energy_map", "foa", "geometry", "hrir", "projection"]
