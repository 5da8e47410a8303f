"""Tables of the recommend package: the event log.

An event is (user, product, event kind, timestamp) plus an optional weight and session.
The unique constraint on the first four makes imports idempotent: importing the same file
twice stores each event once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from catalens.catalog.schema import Base, utcnow


class EventRecord(Base):
    """One shopper event. ``ts_ms`` is the event time in milliseconds since the Unix epoch (UTC)."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(256))
    product_id: Mapped[str] = mapped_column(String(512), index=True)
    event: Mapped[str] = mapped_column(String(16))
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    weight: Mapped[float | None] = mapped_column(Float, nullable=True)
    session: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (
        UniqueConstraint("user_id", "product_id", "event", "ts_ms", name="uq_events_key"),
        Index("ix_events_user_ts", "user_id", "ts_ms"),
    )
