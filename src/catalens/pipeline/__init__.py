"""Batch execution: bounded prefetch of decode + preprocess overlapping batched inference."""
