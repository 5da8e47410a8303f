"""The vector index protocol, its search result type and the backend registry.

A vector index maps int64 ids to L2-normalised float32 vectors (inner product = cosine) with
an optional metadata dict per id. catalens uses the row position of a vector in the model's
vector file as its id; the database maps it to an image sha256 and its products.

Backends register themselves with :func:`register_index_backend` under a URI scheme and are
opened with :func:`open_index`:

=============================  ================================================================
``faiss`` (default)            embedded FAISS index stored in a folder (``<home>/index/<key>``)
``faiss:///some/folder``       the same, in an explicit folder
``milvus://path/to/file.db``   Milvus Lite (a local file) through pymilvus
``milvus://host:port``         a Milvus server or cluster (also ``http(s)://host:port``)
``milvus://host:port/db``      the same, in the server's database ``db`` (created when missing)
=============================  ================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from catalens.errors import ConfigError
from catalens.registry import Registry

Metadata = Mapping[str, Any]


@runtime_checkable
class MetadataFilter(Protocol):
    """Anything with ``matches(metadata) -> bool`` (e.g. :class:`catalens.search.filters.Filter`)."""

    def matches(self, attrs: Mapping[str, Any]) -> bool: ...


# A search filter: an array/sequence of allowed ids, a metadata predicate, or None (everything).
IndexFilter = np.ndarray | Sequence[int] | MetadataFilter | Callable[[Metadata], bool] | None


@dataclass
class SearchHits:
    """Top-k answers for a batch of queries: ``ids[i, j]`` (-1 = no result) and ``scores[i, j]`` (cosine)."""

    ids: np.ndarray
    scores: np.ndarray

    def row(self, i: int) -> list[tuple[int, float]]:
        """The valid (id, score) pairs of query ``i``, best first."""
        return [(int(a), float(s)) for a, s in zip(self.ids[i], self.scores[i], strict=True) if a >= 0]


@runtime_checkable
class VectorIndex(Protocol):
    """What every backend implements. Vectors are float32 (n, dim), L2-normalised by the caller."""

    dim: int

    def upsert(
        self, ids: Sequence[int] | np.ndarray, vectors: np.ndarray, metadata: Sequence[Metadata] | None = None
    ) -> None:
        """Insert or replace vectors (and metadata) by id."""

    def delete(self, ids: Sequence[int] | np.ndarray) -> int:
        """Remove ids; returns how many were present."""

    def search(self, queries: np.ndarray, k: int, filter: IndexFilter = None) -> SearchHits:
        """Top-``k`` by inner product for each query, restricted to ids passing ``filter``."""

    def count(self) -> int:
        """Number of live vectors."""

    def ids(self) -> np.ndarray:
        """All live ids (int64)."""

    def get_metadata(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """Stored metadata of ``ids`` (empty dict when none)."""

    def save(self) -> None:
        """Persist (atomically for file backends; a flush for servers)."""

    def info(self) -> dict[str, Any]:
        """Backend name, kind (exact/approximate) and its parameters."""

    def drop(self) -> None:
        """Remove every vector (before a rebuild)."""

    def close(self) -> None: ...


IndexFactory = Callable[..., VectorIndex]


def _builtin_backends() -> None:
    from catalens.index.faiss_index import FaissIndex
    from catalens.index.milvus_index import MilvusIndex

    register_index_backend("faiss", FaissIndex.open)
    register_index_backend("milvus", MilvusIndex.open)


INDEX_BACKENDS: Registry[IndexFactory] = Registry("index backend", builtins=_builtin_backends)


def register_index_backend(scheme: str, factory: IndexFactory, *, overwrite: bool = False) -> None:
    """Make ``open_index("<scheme>://...")`` use ``factory(location, dim=..., name=..., **options)``."""
    if not scheme.isidentifier():
        raise ConfigError(f"invalid index scheme {scheme!r}")
    INDEX_BACKENDS.register(scheme, factory, overwrite=overwrite)


def index_backends() -> list[str]:
    return sorted(INDEX_BACKENDS.names())


def parse_index_uri(uri: str | None) -> tuple[str, str]:
    """``(scheme, location)``; ``faiss`` and ``None`` give ``("faiss", "")`` (the caller's default folder)."""
    text = (uri or "faiss").strip()
    if text in {"faiss", "faiss://", "faiss:///"}:
        return "faiss", ""
    if text.startswith(("http://", "https://")):
        return "milvus", text
    if "://" not in text:
        raise ConfigError(
            f"unknown index {text!r}: use 'faiss', 'faiss:///folder', 'milvus://file.db', "
            "'milvus://host:port' or 'http(s)://host:port'"
        )
    scheme, location = text.split("://", 1)
    if scheme == "faiss":
        return "faiss", location
    if scheme == "milvus":
        if not location:
            raise ConfigError("milvus index URI needs a location: milvus://file.db or milvus://host:port")
        return "milvus", location
    return scheme, location


def open_index(
    uri: str | None,
    *,
    dim: int,
    name: str,
    default_dir: str | Path | None = None,
    **options: Any,
) -> VectorIndex:
    """Open (creating when missing) the index ``name`` of dimension ``dim`` at ``uri``.

    ``default_dir`` is the folder used by a bare ``faiss`` URI; ``name`` names the collection
    (a Milvus collection, or the sub-folder of a ``faiss:///folder`` URI).
    """
    scheme, location = parse_index_uri(uri)
    factory = INDEX_BACKENDS.get(scheme)
    if scheme == "faiss":
        if location:
            folder = Path(location) / name
        elif default_dir is not None:
            folder = Path(default_dir)
        else:
            raise ConfigError("a bare 'faiss' index needs a folder (default_dir)")
        return factory(folder, dim=dim, name=name, **options)
    return factory(location, dim=dim, name=name, **options)
