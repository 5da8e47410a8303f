"""Shopper events: read a CSV / JSONL / Parquet file, validate each row, store idempotently, load.

Columns (case-insensitive, with common aliases): ``user_id``, ``product_id``, ``event``
(view, click, cart, purchase, like), ``timestamp`` (ISO 8601, or Unix seconds / milliseconds),
optional ``weight`` (a multiplier of the event kind's weight) and ``session``.

Every row is handled on its own: a malformed row is reported with its row number and reason
and the rest goes in. Events of products that are not (yet) in the catalog are reported per
row (``warnings``) and, by default, stored, so nothing is lost when the event feed runs ahead of
the catalog: recommenders ignore them until the product is ingested, then use them (the item
space changes, so the engine is refitted). ``on_unknown="skip"`` leaves them out instead (reported
per row in ``skipped``). The first row of every user not seen before is reported in ``new_users``
(a new user is not an error).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select, tuple_

from catalens.catalog.db import CatalogDB
from catalens.catalog.schema import Product
from catalens.errors import CatalensError, ManifestError
from catalens.recommend.tables import EventRecord


class EmptyEventsError(CatalensError):
    """The operation needs events and the event log (or file) has none."""


EVENT_KINDS = ("view", "click", "like", "cart", "purchase")
EVENT_ALIASES = {
    "add_to_cart": "cart",
    "addtocart": "cart",
    "basket": "cart",
    "buy": "purchase",
    "order": "purchase",
    "transaction": "purchase",
    "detail": "view",
    "impression": "view",
    "favorite": "like",
    "favourite": "like",
    "wishlist": "like",
}
COLUMN_ALIASES = {
    "user_id": ("user_id", "user", "userid", "customer_id", "visitor_id", "visitorid", "shopper_id"),
    "product_id": ("product_id", "product", "item_id", "itemid", "item", "sku", "id"),
    "event": ("event", "event_type", "action", "type", "kind"),
    "timestamp": ("timestamp", "ts", "time", "datetime", "date", "event_time"),
    "weight": ("weight", "value", "strength"),
    "session": ("session", "session_id", "sessionid"),
}
REQUIRED = ("user_id", "product_id", "event", "timestamp")
MAX_ID_LEN = 256


@dataclass(frozen=True)
class Event:
    """One validated event."""

    user_id: str
    product_id: str
    event: str
    ts_ms: int
    weight: float | None = None
    session: str | None = None


@dataclass
class RowIssue:
    row: int
    reason: str
    user_id: str | None = None
    product_id: str | None = None


@dataclass
class EventImportReport:
    """What an import did. ``failed`` rows were not stored (malformed); ``warnings`` rows were stored
    (unknown products); ``skipped`` rows were valid but left out (unknown products with
    ``on_unknown="skip"``); ``new_user_rows`` is the first row of each user not seen before."""

    source: str
    seen: int = 0
    inserted: int = 0
    duplicates: int = 0
    new_users: int = 0
    failed: list[RowIssue] = field(default_factory=list)
    warnings: list[RowIssue] = field(default_factory=list)
    skipped: list[RowIssue] = field(default_factory=list)
    new_user_rows: list[RowIssue] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["n_failed"] = len(self.failed)
        data["n_warnings"] = len(self.warnings)
        data["n_skipped"] = len(self.skipped)
        return data


# ---- parsing ----------------------------------------------------------------------------------
def parse_timestamp(value: Any) -> int:
    """Milliseconds since the epoch (UTC). Accepts datetimes, ISO 8601 text and Unix s / ms numbers."""
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(round(dt.timestamp() * 1000))
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[ms]").astype(np.int64))
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        num = float(value)
    else:
        text = str(value).strip() if value is not None else ""
        if not text:
            raise ValueError("empty timestamp")
        try:
            num = float(text)
        except ValueError:
            try:
                dt = datetime.fromisoformat(text.replace(" UTC", "+00:00"))
            except ValueError:
                raise ValueError(f"timestamp {text!r} is neither ISO 8601 nor a Unix time") from None
            return parse_timestamp(dt)
    if not math.isfinite(num) or num < 0:
        raise ValueError(f"timestamp {value!r} is not a valid Unix time")
    # Seconds until the year 5138; larger numbers are milliseconds.
    return int(round(num * 1000)) if num < 1e11 else int(round(num))


def normalise_event(value: Any) -> str:
    text = str(value).strip().lower().replace("-", "_").replace(" ", "_") if value is not None else ""
    text = EVENT_ALIASES.get(text, text)
    if text not in EVENT_KINDS:
        raise ValueError(f"unknown event {value!r} (expected one of {', '.join(EVENT_KINDS)})")
    return text


def _clean_id(value: Any, what: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise ValueError(f"missing {what}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if not text:
        raise ValueError(f"missing {what}")
    if len(text) > MAX_ID_LEN:
        raise ValueError(f"{what} longer than {MAX_ID_LEN} characters")
    return text


def parse_event(row: dict[str, Any]) -> Event:
    """Validate one row (canonical column names); raises ``ValueError`` with a readable reason."""
    user = _clean_id(row.get("user_id"), "user_id")
    product = _clean_id(row.get("product_id"), "product_id")
    event = normalise_event(row.get("event"))
    ts = parse_timestamp(row.get("timestamp"))
    weight = row.get("weight")
    w: float | None = None
    if weight is not None and str(weight).strip() != "":
        try:
            w = float(weight)
        except (TypeError, ValueError):
            raise ValueError(f"weight {weight!r} is not a number") from None
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"weight {weight!r} must be a finite number >= 0")
    session = row.get("session")
    sess = None if session is None or str(session).strip() in ("", "nan", "None") else str(session).strip()
    return Event(user, product, event, ts, w, sess)


def _map_columns(names: Iterable[str], source: str) -> dict[str, str]:
    lower = {n.strip().lower(): n for n in names if n is not None}
    mapping: dict[str, str] = {}
    for canon, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in lower and lower[alias] not in mapping.values():
                mapping[canon] = lower[alias]
                break
    missing = [c for c in REQUIRED if c not in mapping]
    if missing:
        raise ManifestError(
            f"{source}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, lower.values()))}"
        )
    return mapping


def iter_event_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, row with canonical keys) of an events file; row numbers count data rows from 1."""
    p = Path(path)
    if not p.is_file():
        raise ManifestError(f"{p}: events file not found")
    suffix = p.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        with open(p, newline="", encoding="utf-8-sig", errors="replace") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            if reader.fieldnames is None:
                return
            cols = _map_columns(reader.fieldnames, str(p))
            for n, raw in enumerate(reader, start=1):
                if None in raw:  # more cells than header columns
                    yield n, {"__error__": "more cells than header columns"}
                    continue
                yield n, {canon: raw.get(col) for canon, col in cols.items()}
    elif suffix in (".jsonl", ".ndjson", ".json"):
        cols: dict[str, str] | None = None
        with open(p, encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield n, {"__error__": f"invalid JSON: {exc.msg}"}
                    continue
                if not isinstance(obj, dict):
                    yield n, {"__error__": "a JSON line must be an object"}
                    continue
                try:
                    mapping = _map_columns(obj.keys(), str(p))
                except ManifestError as exc:
                    yield n, {"__error__": str(exc).split(": ", 1)[-1]}
                    continue
                cols = cols or mapping
                yield n, {canon: obj.get(col) for canon, col in mapping.items()}
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(p)
        except Exception as exc:  # pyarrow raises several types for bad files
            raise ManifestError(f"{p}: cannot read Parquet: {exc}") from exc
        cols = _map_columns(table.column_names, str(p))
        data = {canon: table.column(col).to_pylist() for canon, col in cols.items()}
        for n in range(table.num_rows):
            yield n + 1, {canon: values[n] for canon, values in data.items()}
    else:
        raise ManifestError(
            f"{p}: unsupported events file type {suffix!r} (use .csv, .tsv, .jsonl, .parquet)"
        )


def read_events(path: str | Path) -> tuple[list[Event], list[RowIssue]]:
    """Parse a whole events file: (valid events in file order, per-row problems)."""
    events: list[Event] = []
    issues: list[RowIssue] = []
    for n, row in iter_event_rows(path):
        if "__error__" in row:
            issues.append(RowIssue(n, row["__error__"]))
            continue
        try:
            events.append(parse_event(row))
        except ValueError as exc:
            issues.append(RowIssue(n, str(exc), _safe(row.get("user_id")), _safe(row.get("product_id"))))
    return events, issues


def _safe(value: Any) -> str | None:
    return None if value is None else str(value)[:80]


# ---- storing ----------------------------------------------------------------------------------
def known_products(db: CatalogDB) -> set[str]:
    with db.session() as s:
        return set(s.scalars(select(Product.id)))


def known_users(db: CatalogDB) -> set[str]:
    with db.session() as s:
        return set(s.scalars(select(EventRecord.user_id).distinct()))


def count_events(db: CatalogDB) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count(EventRecord.id))) or 0)


def _insert(db: CatalogDB, events: list[Event]) -> None:
    rows = [
        {
            "user_id": e.user_id,
            "product_id": e.product_id,
            "event": e.event,
            "ts_ms": e.ts_ms,
            "weight": e.weight,
            "session": e.session,
        }
        for e in events
    ]
    dialect = db.engine.dialect.name
    with db.session() as s:
        if dialect in ("sqlite", "postgresql"):
            if dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert
            else:
                from sqlalchemy.dialects.postgresql import insert
            s.execute(insert(EventRecord).on_conflict_do_nothing(), rows)
            return
        keys = [(r["user_id"], r["product_id"], r["event"], r["ts_ms"]) for r in rows]
        cols = (EventRecord.user_id, EventRecord.product_id, EventRecord.event, EventRecord.ts_ms)
        have = set(s.execute(select(*cols).where(tuple_(*cols).in_(keys))).all())
        s.add_all(EventRecord(**r) for r, k in zip(rows, keys, strict=True) if k not in have)


def store_events(
    db: CatalogDB,
    events: list[Event],
    *,
    report: EventImportReport,
    rows: list[int] | None = None,
    chunk: int = 5000,
    on_unknown: str = "store",
) -> EventImportReport:
    """Store ``events`` idempotently, counting inserts, duplicates, new users and unknown products.

    ``on_unknown``: ``store`` (default) keeps events of products not in the catalog and reports
    each row as a warning; ``skip`` leaves them out and reports each row as skipped."""
    if on_unknown not in ("store", "skip"):
        raise ValueError(f"on_unknown must be 'store' or 'skip', not {on_unknown!r}")
    products = known_products(db)
    users = known_users(db)
    before = count_events(db)
    seen_keys: set[tuple[str, str, str, int]] = set()
    unique: list[Event] = []
    new_users: set[str] = set()
    n_skipped = 0
    for idx, e in enumerate(events):
        key = (e.user_id, e.product_id, e.event, e.ts_ms)
        if key in seen_keys:
            continue
        seen_keys.add(key)
        row = rows[idx] if rows else idx + 1
        if e.product_id not in products:
            if on_unknown == "skip":
                report.skipped.append(RowIssue(row, "unknown product (skipped)", e.user_id, e.product_id))
                n_skipped += 1
                continue
            report.warnings.append(
                RowIssue(
                    row, "unknown product (stored; used once it is in the catalog)", e.user_id, e.product_id
                )
            )
        unique.append(e)
        if e.user_id not in users and e.user_id not in new_users:
            new_users.add(e.user_id)
            report.new_user_rows.append(RowIssue(row, "new user (first event)", e.user_id, e.product_id))
    for start in range(0, len(unique), chunk):
        _insert(db, unique[start : start + chunk])
    report.inserted += count_events(db) - before
    report.duplicates += len(events) - n_skipped - (count_events(db) - before)
    report.new_users += len(new_users)
    return report


def import_events(db: CatalogDB, path: str | Path, on_unknown: str = "store") -> EventImportReport:
    """Import an events file; malformed rows are reported and skipped, the rest is stored
    (events of unknown products too, unless ``on_unknown="skip"``; see :func:`store_events`)."""
    report = EventImportReport(source=str(path))
    events: list[Event] = []
    rows: list[int] = []
    for n, row in iter_event_rows(path):
        report.seen += 1
        if "__error__" in row:
            report.failed.append(RowIssue(n, row["__error__"]))
            continue
        try:
            events.append(parse_event(row))
            rows.append(n)
        except ValueError as exc:
            report.failed.append(
                RowIssue(n, str(exc), _safe(row.get("user_id")), _safe(row.get("product_id")))
            )
    return store_events(db, events, report=report, rows=rows, on_unknown=on_unknown)


# ---- loading ----------------------------------------------------------------------------------
@dataclass
class EventArrays:
    """The event log as columns (one entry per event, sorted by time)."""

    user: np.ndarray  # object array of user ids
    product: np.ndarray  # object array of product ids
    kind: np.ndarray  # int8 index into EVENT_KINDS
    ts_ms: np.ndarray  # int64
    weight: np.ndarray  # float32 row weight multiplier (1.0 when absent)

    def __len__(self) -> int:
        return len(self.ts_ms)

    @classmethod
    def from_events(cls, events: list[Event]) -> EventArrays:
        order = sorted(range(len(events)), key=lambda i: events[i].ts_ms)
        ev = [events[i] for i in order]
        code = {k: i for i, k in enumerate(EVENT_KINDS)}
        return cls(
            user=np.array([e.user_id for e in ev], dtype=object),
            product=np.array([e.product_id for e in ev], dtype=object),
            kind=np.array([code[e.event] for e in ev], dtype=np.int8),
            ts_ms=np.array([e.ts_ms for e in ev], dtype=np.int64),
            weight=np.array([1.0 if e.weight is None else e.weight for e in ev], dtype=np.float32),
        )

    def subset(self, mask: np.ndarray) -> EventArrays:
        return EventArrays(
            self.user[mask], self.product[mask], self.kind[mask], self.ts_ms[mask], self.weight[mask]
        )


def load_events(db: CatalogDB) -> EventArrays:
    """Every stored event, sorted by time."""
    cols = (
        EventRecord.user_id,
        EventRecord.product_id,
        EventRecord.event,
        EventRecord.ts_ms,
        EventRecord.weight,
    )
    with db.session() as s:
        rows = s.execute(select(*cols).order_by(EventRecord.ts_ms, EventRecord.id)).all()
    code = {k: i for i, k in enumerate(EVENT_KINDS)}
    n = len(rows)
    return EventArrays(
        user=np.array([r[0] for r in rows], dtype=object),
        product=np.array([r[1] for r in rows], dtype=object),
        kind=np.fromiter((code.get(r[2], 0) for r in rows), dtype=np.int8, count=n),
        ts_ms=np.fromiter((r[3] for r in rows), dtype=np.int64, count=n),
        weight=np.fromiter((1.0 if r[4] is None else r[4] for r in rows), dtype=np.float32, count=n),
    )


def fingerprint(db: CatalogDB) -> tuple[int, int]:
    """(event count, largest event id): changes whenever events are added."""
    with db.session() as s:
        n, top = s.execute(select(func.count(EventRecord.id), func.max(EventRecord.id))).one()
    return int(n or 0), int(top or 0)


def events_after(db: CatalogDB, after_id: int) -> int:
    """How many events have an id larger than ``after_id`` (events appended since a fit)."""
    with db.session() as s:
        return int(s.scalar(select(func.count(EventRecord.id)).where(EventRecord.id > after_id)) or 0)


def load_user_events(db: CatalogDB, user: str, after_id: int = 0) -> EventArrays:
    """One user's events with id > ``after_id`` (events newer than a fitted model), sorted by time."""
    code = {k: i for i, k in enumerate(EVENT_KINDS)}
    with db.session() as s:
        rows = s.execute(
            select(EventRecord.product_id, EventRecord.event, EventRecord.ts_ms, EventRecord.weight)
            .where(EventRecord.user_id == user, EventRecord.id > after_id)
            .order_by(EventRecord.ts_ms)
        ).all()
    return EventArrays(
        user=np.array([user] * len(rows), dtype=object),
        product=np.array([r[0] for r in rows], dtype=object),
        kind=np.array([code.get(r[1], 0) for r in rows], dtype=np.int8),
        ts_ms=np.array([r[2] for r in rows], dtype=np.int64),
        weight=np.array([1.0 if r[3] is None else r[3] for r in rows], dtype=np.float32),
    )
