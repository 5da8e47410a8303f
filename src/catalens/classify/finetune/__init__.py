"""Full fine-tuning of a backbone and its heads (``run.py``), its data pipeline (``data.py``) and the
model it trains (``model.py``)."""
