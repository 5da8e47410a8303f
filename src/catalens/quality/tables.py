"""Table of quality-check results: one row per (image source, profile), replaced on each run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from catalens.catalog.schema import Base, utcnow


class QualityResultRecord(Base):
    __tablename__ = "quality_results"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(Text)
    image_sha256: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    profile: Mapped[str] = mapped_column(String(128))
    verdict: Mapped[str] = mapped_column(String(8), index=True)
    issues: Mapped[list[str]] = mapped_column(JSON, default=list)
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("source", "profile"),)


class QualityException(Base):
    """An accepted exception: a check's warning or failure on an image that a person dismissed as a
    false positive. Stored results read through :func:`catalens.quality.store.load_results` show that
    check as dismissed (verdict pass, ``dismissed``: the verdict it had), in every profile and run."""

    __tablename__ = "quality_exceptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image_sha256: Mapped[str] = mapped_column(String(64), index=True)
    check: Mapped[str] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("image_sha256", "check"),)
