"""Table definitions. Bump ``SCHEMA_VERSION`` and add a step to ``migrations.MIGRATIONS`` on change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA_VERSION = 2


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class SchemaVersion(Base):
    __tablename__ = "schema_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Product(Base):
    __tablename__ = "products"
    id: Mapped[str] = mapped_column(String(512), primary_key=True)
    title: Mapped[str | None] = mapped_column(Text, nullable=True)
    attrs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class ImageRecord(Base):
    """One ingested image (status ``ok``) or one source that failed (status ``failed``)."""

    __tablename__ = "images"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sha256: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    pixel_sha256: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    source: Mapped[str] = mapped_column(Text)
    stored_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    mode: Mapped[str | None] = mapped_column(String(16), nullable=True)
    n_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="ok", index=True)
    error_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        Index("ix_images_source_status", "source", "status"),
        # one failure row per source, whatever the number of concurrent writers (schema v2)
        Index(
            "ux_images_failed_source",
            "source",
            unique=True,
            sqlite_where=text("status = 'failed'"),
            postgresql_where=text("status = 'failed'"),
        ),
    )


class ProductImage(Base):
    __tablename__ = "product_images"
    product_id: Mapped[str] = mapped_column(
        String(512), ForeignKey("products.id", ondelete="CASCADE"), primary_key=True
    )
    image_sha256: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class ModelRecord(Base):
    """A (model id, version) whose vectors live in one vector file."""

    __tablename__ = "models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(String(256))
    version: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("model_id", "version"),)


class EmbeddingRecord(Base):
    """Row ``position`` of the model's vector file holds the L2-normalised vector of ``image_sha256``."""

    __tablename__ = "embeddings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image_sha256: Mapped[str] = mapped_column(String(64), index=True)
    model_id: Mapped[str] = mapped_column(String(256))
    model_version: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (
        UniqueConstraint("image_sha256", "model_id", "model_version"),
        UniqueConstraint("model_id", "model_version", "position"),
    )


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    source: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="running")
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class VectorAllocation(Base):
    """Where the vectors of one (model id, version) live, and the next free row position.

    Positions are handed out by the database (``CatalogDB.allocate_rows``), so any number of
    writers - threads, processes, machines - get disjoint rows; a writer that dies leaves an unused
    range (a hole), never a row another writer owns. ``store`` names the vector store: ``db`` (rows
    in ``embedding_vectors``, shared by every machine that reaches the database) or
    ``file:<store id>`` (the local vector file of one home; see ``catalens.vectors``)."""

    __tablename__ = "vector_allocations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(String(256))
    version: Mapped[str] = mapped_column(String(64))
    store: Mapped[str] = mapped_column(String(128))
    next_position: Mapped[int] = mapped_column(BigInteger, default=0)
    __table_args__ = (UniqueConstraint("model_id", "version"),)


class EmbeddingVector(Base):
    """The float32 bytes of one vector, for catalogs whose vectors live in the database."""

    __tablename__ = "embedding_vectors"
    model_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ImageRegion(Base):
    """A product cut out of a catalog photo by the detector (``ingest --detect``): the crop is a
    catalog image of its own (``crop_sha256``), linked to its photo and box. New table, no data
    change: created by ``create_all`` on open (no schema version step)."""

    __tablename__ = "image_regions"
    crop_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_sha256: Mapped[str] = mapped_column(String(64), index=True)
    x0: Mapped[float] = mapped_column(Float)
    y0: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    category: Mapped[str] = mapped_column(String(32))
    detector: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
