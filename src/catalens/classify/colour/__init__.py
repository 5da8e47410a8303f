"""Colour of the product's own pixels: dominant colours named against the retail palette and the
colour descriptor for classifiers (``features.py``), colour-name calibration (``calibration.py``)."""
