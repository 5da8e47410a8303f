"""The catalog's duplicate report, computed once per catalog state and reused.

:func:`catalens.search.dedup.find_duplicates` reads the whole catalog (every embedded image's
neighbours, the copy descriptors, the alignment of the gated pairs): seconds at catalog scale.
A server answers each page of ``GET /api/v1/dedup/groups`` (and ``/export/dedup``) from one
report: :func:`cached_duplicates` keeps the last report per (model, options) with the *state* it
was computed for and recomputes only when that state moves:

* the catalog's images: count, newest row id and how many have a pixel hash (an image added,
  removed or re-hashed);
* the model's embeddings: count and newest row id (an image embedded or removed);
* product links: count (an image added to or removed from a product: "same-image" pairs and the
  product ids shown);
* the copy descriptor version (:data:`catalens.search.copy_descriptor.FEATURE_VERSION`) and the options;
* what the search engine it is computed with holds: its model, embedded images and linked images
  (a server swaps in a new engine once it caught up with another process's writes,
  :mod:`catalens.api.refresh`: the report is computed again when the new one holds other images; an
  engine rebuilt from the same state, or opened twice by concurrent first requests, reuses it).

The state is read before computing, so a write that lands during a computation makes the next call
compute again. One lock per (model, options): concurrent callers wait for the computation in flight
and share its report instead of computing it twice. The report is shared: do not change it.

A server cannot wait minutes for a request: :meth:`DedupCache.poll` starts the computation in a
background thread, waits a few seconds for it and otherwise answers with the last report computed
for that model and options (``fresh`` False), or with none yet (the route answers 202, "computing").
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, is_dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from catalens.errors import ConfigError

if TYPE_CHECKING:
    from catalens.search.catalog_methods import SearchMixin

_CACHE_ATTR = "_dedup_cache"
_NOT_KEYED = ("progress",)  # callbacks: not part of what is computed


def catalog_state(db: Any, model_id: str) -> tuple[Any, ...]:
    """What the duplicate report of ``model_id`` depends on in the database (three aggregates)."""
    from catalens.catalog.schema import EmbeddingRecord, ImageRecord, ProductImage
    from catalens.search import copy_descriptor

    with db.session() as s:
        images = s.execute(
            select(func.count(), func.max(ImageRecord.id), func.count(ImageRecord.pixel_sha256)).where(
                ImageRecord.status == "ok"
            )
        ).one()
        embeddings = s.execute(
            select(func.count(), func.max(EmbeddingRecord.id)).where(EmbeddingRecord.model_id == model_id)
        ).one()
        links = s.scalar(select(func.count()).select_from(ProductImage))
    return (*images, *embeddings, links, copy_descriptor.FEATURE_VERSION)


def _options_key(options: dict[str, Any]) -> tuple[Any, ...]:
    key = []
    for name, value in sorted(options.items()):
        if name in _NOT_KEYED or value is None:
            continue
        if is_dataclass(value) and not isinstance(value, type):
            value = tuple(sorted(asdict(value).items()))
        try:
            hash(value)
        except TypeError as exc:
            raise ConfigError(
                f"dedup option {name!r} must be a plain value, not {type(value).__name__}"
            ) from exc
        key.append((name, value))
    return tuple(key)


def engine_state(engine: Any) -> tuple[Any, ...]:
    """What a search engine holds that the report reads: its model, how many embedded images it
    knows (less after ``forget``) and how many images it has product links for."""
    return (engine.model, len(engine.sha_at), len(engine.links))


@dataclass
class _Entry:
    state: tuple[Any, ...]
    report: Any


class DedupCache:
    """Duplicate reports of one catalog, per (model, options); see the module doc."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the two dicts
        self._locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._entries: dict[tuple[Any, ...], _Entry] = {}
        self._jobs: dict[tuple[Any, ...], threading.Thread] = {}  # background computations (poll)
        self._errors: dict[tuple[Any, ...], Exception] = {}
        self.computed = 0  # reports computed (a hit does not count)

    def get(self, catalog: SearchMixin, model: str | None = None, **options: Any) -> Any:
        """The :class:`~catalens.search.dedup.DedupReport` of ``catalog`` (computed if the
        catalog moved since the last one with the same model and options)."""
        from catalens.search import dedup

        engine = catalog.searcher(model)
        key = (engine.model, _options_key(options))
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            # caught up with the database: a server's engine may lag a write by a refresher poll,
            # and a report computed on it would miss the new image while its state reads current
            engine = catalog.current_searcher(model)
            state = (*catalog_state(catalog.db, engine.model), *engine_state(engine))
            entry = self._entries.get(key)
            if entry is not None and entry.state == state:
                return entry.report
            report = dedup.find_duplicates(catalog, engine, **options)
            with self._lock:
                self._entries[key] = _Entry(state, report)
                self.computed += 1
            return report

    def poll(
        self, catalog: SearchMixin, model: str | None = None, wait_s: float = 5.0, **options: Any
    ) -> tuple[Any, bool]:
        """(report, fresh) without blocking for long: the up-to-date report when it is ready within
        ``wait_s`` seconds; otherwise the last report of this model and options (fresh False) or
        None, while a background thread computes the new one (one per key; its error, such as no
        vectors for the model, is raised by the next :meth:`poll`)."""
        key = (catalog.searcher(model).model, _options_key(options))
        report, fresh = self._lookup(catalog, model, key)
        if fresh:
            return report, True
        with self._lock:
            job = self._jobs.get(key)
            if job is None or not job.is_alive():
                self._raise_error(key)
                job = threading.Thread(
                    target=self._compute_quietly,
                    args=(key, catalog, model, options),
                    name="catalens-dedup",
                    daemon=True,
                )
                self._jobs[key] = job
                job.start()
        job.join(max(0.0, wait_s))
        if not job.is_alive():
            with self._lock:
                self._raise_error(key)
        return self._lookup(catalog, model, key)

    def _lookup(self, catalog: SearchMixin, model: str | None, key: tuple[Any, ...]) -> tuple[Any, bool]:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return None, False
        state = (*catalog_state(catalog.db, key[0]), *engine_state(catalog.searcher(model)))
        return entry.report, entry.state == state

    def _raise_error(self, key: tuple[Any, ...]) -> None:  # under self._lock
        error = self._errors.pop(key, None)
        if error is not None:
            raise error

    def _compute_quietly(
        self, key: tuple[Any, ...], catalog: SearchMixin, model: str | None, options: Any
    ) -> None:
        try:
            self.get(catalog, model, **options)
        except Exception as exc:  # handed to the next poll
            with self._lock:
                self._errors[key] = exc

    def clear(self) -> None:
        """Forget every report (the next call computes)."""
        with self._lock:
            self._entries.clear()


def dedup_cache(catalog: SearchMixin) -> DedupCache:
    """The catalog object's cache (made on first use)."""
    cache = catalog.__dict__.get(_CACHE_ATTR)
    if cache is None:
        cache = catalog.__dict__.setdefault(_CACHE_ATTR, DedupCache())  # atomic: one cache wins
    return cache  # type: ignore[no-any-return]


def poll_duplicates(
    catalog: SearchMixin, model: str | None = None, wait_s: float = 5.0, **options: Any
) -> tuple[Any, bool]:
    """:meth:`DedupCache.poll` on the catalog's cache: (report or None, fresh)."""
    return dedup_cache(catalog).poll(catalog, model, wait_s, **options)


def cached_duplicates(catalog: SearchMixin, model: str | None = None, **options: Any) -> Any:
    """:func:`~catalens.search.dedup.find_duplicates` of the whole catalog, reused while the
    catalog's state, the model, the options and the search engine are unchanged."""
    return dedup_cache(catalog).get(catalog, model, **options)
