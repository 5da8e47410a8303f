"""Tables of the classify package (created with the catalog schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from catalens.catalog.schema import Base, utcnow


class ClassPrediction(Base):
    """The latest prediction of one classifier for one field of one image."""

    __tablename__ = "classify_predictions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image_sha256: Mapped[str] = mapped_column(String(64), index=True)
    classifier: Mapped[str] = mapped_column(String(256))
    version: Mapped[str] = mapped_column(String(64))
    field: Mapped[str] = mapped_column(String(128))
    label: Mapped[str] = mapped_column(String(256))
    prob: Mapped[float] = mapped_column(Float)
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    top_k: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("image_sha256", "classifier", "field"),)


class ImageFeatureCache(Base):
    """Per-image derived data computed once per image sha (colour descriptors, OCR text, ...).

    ``kind`` names the producer and its version (e.g. ``colour-v2``, ``ocr-v1``): a new version of a
    producer is a new kind, so stale values are never read.
    """

    __tablename__ = "classify_image_cache"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image_sha256: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("image_sha256", "kind"),)
