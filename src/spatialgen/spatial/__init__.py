"""Pure spatial-audio DSP in torch: geometry, FOA, projection, binaural rendering, DOA.

Nothing here imports other spatialgen packages; everything is batched, device-agnostic and
float64-safe. Conventions: DESIGN.md and reference/spatial.md.
"""

from spatialgen.spatial import geometry

__all__ = ["geometry"]
