"""Tables of the search package (created with the catalog schema)."""

from __future__ import annotations

from sqlalchemy import Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from catalens.catalog.schema import Base


class DedupFeature(Base):
    """Copy-verification descriptor of one image (see :mod:`catalens.search.copy_descriptor`), computed once."""

    __tablename__ = "search_dedup_features"
    image_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
