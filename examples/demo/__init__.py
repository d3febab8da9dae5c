"""The end-to-end demo on synthetic data: ``make demo``, or ``python -m examples.demo`` from the repository root.

Steps, all into ``--out`` (default ``demo_out``):

1. ``data/``: a synthetic dataset (train/val/test) of short clips with **one visible source, no
   off-screen distractors and a fixed camera** per clip: the sound's direction is then fully determined
   by the picture, which keeps the task learnable in a few CPU minutes.
2. ``encoder/tiny.safetensors``: the small ``tiny`` visual encoder pretrained with
   ``recipes/visual_direction_synthetic.yaml`` to predict, from one frame, the direction of the sound
   measured in the training clips' own FOA (no annotation used). Both generative models load it as
   their frozen visual encoder, as the published models load CLIP / Perception Encoder: a randomly
   initialised CNN does not know where things are in the picture, and neither model could learn
   directions on top of it in a few CPU minutes.
3. ``runs/visaudio``: ViSAudio trained with ``recipes/visaudio_synthetic.yaml`` (LightningCLI ``fit``),
   the recipe patched for the demo's paths, clip length and step count (``recipes/visaudio.yaml`` here).
4. ``codec/``: the ``stft_vq`` codec fitted by k-means on the training clips' FOA, then
   ``runs/visage``: ViSAGe trained on its tokens with ``recipes/visage_synthetic.yaml``.
5. ``models/{visaudio,visage}``: Hub-style exports (EMA weights) of both, loadable with
   ``spatialgen generate --model demo_out/models/visaudio``; ``export/{visaudio,visage}-synthetic`` are
   links to them (where the model zoo looks for the demo's models).
6. ``generated/<model>/<clip_id>/``: audio (.wav) and video (.mp4) for every held-out test clip.
7. ``eval/<model>/``: ``spatialgen evaluate`` reports, and the direction checks against the
   ground truth of ``meta.json`` and simple baselines (:func:`binaural_direction_table`,
   :func:`foa_direction_table`).
8. ``report.md``: settings, timings, the tables, figures and links.

Files: :mod:`~examples.demo.settings` (sizes, paths, timing), :mod:`~examples.demo.steps` (steps 1-6),
:mod:`~examples.demo.scoring` (step 7), :mod:`~examples.demo.report` (step 8), :mod:`~examples.demo.run`
(driver and command line). The demo lives next to ``recipes/`` (it patches and runs them), outside the
installed library.
"""

from examples.demo.run import build_parser, main, run_demo
from examples.demo.scoring import binaural_direction_table, foa_direction_table, truth_directions
from examples.demo.settings import DemoSettings

__all__ = [
    "DemoSettings",
    "binaural_direction_table",
    "build_parser",
    "foa_direction_table",
    "main",
    "run_demo",
    "truth_directions",
]
