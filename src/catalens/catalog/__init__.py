"""The catalog database: products, images, embedding records, jobs (SQLAlchemy 2)."""

from catalens.catalog import (
    dberrors,  # noqa: F401 - typed errors for lost connections
    storage,  # noqa: F401 - typed errors for a full disk, a damaged database
)
from catalens.catalog.db import CatalogDB
from catalens.catalog.schema import (
    SCHEMA_VERSION,
    Base,
    EmbeddingRecord,
    ImageRecord,
    Job,
    ModelRecord,
    Product,
    ProductImage,
)

__all__ = [
    "SCHEMA_VERSION",
    "Base",
    "CatalogDB",
    "EmbeddingRecord",
    "ImageRecord",
    "Job",
    "ModelRecord",
    "Product",
    "ProductImage",
]
