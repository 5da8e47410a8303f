"""Ingest and batch execution: sources (folders, manifests in CSV / JSONL / Parquet, http(s) URLs;
``sources.py``, ``fetch.py``), the ingest job (``job.py``: bounded prefetch of decode + preprocess,
``prefetch.py``, overlapping batched inference and one transaction per batch) and its Ray engine
(``ray_engine.py`` on the generic ``ray_pool.py``, also used by QC and classification)."""

from catalens.ingest.sources import ManifestColumns, SourceItem, iter_source

__all__ = ["ManifestColumns", "SourceItem", "iter_source"]
