"""catalens.index: the vector index protocol, its backends (FAISS, Milvus) and the registry."""

from catalens.index.base import (
    IndexFilter,
    SearchHits,
    VectorIndex,
    index_backends,
    open_index,
    parse_index_uri,
    register_index_backend,
)

__all__ = [
    "IndexFilter",
    "SearchHits",
    "VectorIndex",
    "index_backends",
    "open_index",
    "parse_index_uri",
    "register_index_backend",
]
