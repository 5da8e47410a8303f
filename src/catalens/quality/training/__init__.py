"""Training the packaged quality models (not imported by the checks; each module is a command):

* ``python -m catalens.quality.training.exposure_trees`` - the over-exposure tree ensemble
  (``quality/data/overexposure.npz``) on :mod:`catalens.quality.exposure_features`;
* ``python -m catalens.quality.training.exposure_cnn`` - the exposure CNN (``quality/data/exposure.onnx``);
* ``python -m catalens.quality.training.overlay_cnn`` - the see-through overlay detector
  (``quality/data/overlay.onnx``);
* ``cnn_fit.py`` - what the two CNN trainers share: maps from the frozen front, the head fit, the
  threshold on held-out photos, the ONNX export;
* ``synth_marks.py`` - the planted marks and prints the overlay trainer learns from.
"""
