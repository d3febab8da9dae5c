"""Pure spatial-audio DSP in torch: geometry, FOA, projection, binaural rendering, DOA.

Nothing here imports other spatialgen packages except :mod:`spatialgen.errors` and
:mod:`spatialgen.registry`; everything is batched, device-agnostic and float64-safe.
Conventions: the README's "Conventions in one paragraph" and :mod:`spatialgen.spatial.geometry`.
"""

from spatialgen.spatial import binaural, convolve, cues, doa, energy_map, foa, geometry, hrir, projection

__all__ = ["binaural", "convolve", "cues", "doa", "energy_map", "foa", "geometry", "hrir", "projection"]
