"""Ingest sources: folders, manifests (CSV / JSONL / Parquet) and http(s) URLs."""

from catalens.ingest.sources import ManifestColumns, SourceItem, iter_source

__all__ = ["ManifestColumns", "SourceItem", "iter_source"]
