"""Keep a service worker's search engines current with a catalog that other processes write.

Each worker of ``catalens serve --workers N`` (and a single-process server while a CLI job ingests
into the same catalog) holds open :class:`~catalens.search.engine.CatalogSearch` engines: the
vector index plus in-memory copies of titles, attributes and links. Writes that happen elsewhere
do not reach them. A :class:`SearchRefresher` polls a cheap database *watermark* (row counts and
the newest ids of embeddings, products and product links, the newest product edit) every
``interval_s`` seconds; when it moves, it builds new engines in the background (opening the index
and catching it up with the database through ``index_sync.sync_index``, reading metadata), then
swaps them in with one assignment. Readers never wait: a request that already holds an engine
finishes on it, the next request gets the new one. A product ingested anywhere is therefore
searchable in every worker within ``interval_s`` plus one engine build (measured in
``tests/test_serve_workers.py`` and ``bench/scale_serving.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from catalens.search.engine import watermark

if TYPE_CHECKING:
    from catalens.api.service_catalog import ServiceCatalog

__all__ = ["SearchRefresher", "watermark"]

log = logging.getLogger("catalens.api")

DEFAULT_INTERVAL_S = 1.0


class SearchRefresher:
    """Rebuilds a catalog's open search engines off the request path when the database moved."""

    def __init__(self, catalog: ServiceCatalog, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.catalog = catalog
        self.interval_s = float(interval_s)
        self._seen: tuple[Any, ...] | None = None
        self._lock = threading.Lock()  # one rebuild at a time (poller and job threads)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refreshes = 0
        self.last_refresh_s: float | None = None  # how long the last rebuild took

    # ---- the background poller ------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None or self.interval_s <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="catalens-search-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        try:  # open the default engine now, so that the first search does not wait for it
            self.refresh()
        except Exception:  # noqa: BLE001 - the database may be briefly away; the loop retries
            log.warning("search refresher: cannot open the search engine yet", exc_info=True)
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a failed rebuild keeps the current engines; retried
                log.warning("search refresher: refresh failed; serving the current index", exc_info=True)

    def poll(self) -> bool:
        """Rebuild the open engines if the watermark moved since the last look; True if it did."""
        now = watermark(self.catalog.db)
        if now == self._seen:
            return False
        self.refresh(now)
        return True

    # ---- rebuilding -----------------------------------------------------------------------------
    def refresh(self, seen: tuple[Any, ...] | None = None) -> int:
        """Build a new engine for every open one and swap each in; returns how many. The
        watermark is read before building, so a write that lands during the build is picked up
        by the next poll."""
        from catalens.search.engine import CatalogSearch

        with self._lock:
            t0 = time.perf_counter()
            if seen is None:
                seen = watermark(self.catalog.db)
            current = dict(self.catalog.__dict__.get("_searchers") or {})
            if not current:  # nothing open yet: open the default engine here, not in a request
                return self._prewarm(seen, t0)
            fresh: dict[Any, Any] = {}
            for key, engine in current.items():
                _name, options = key
                fresh[key] = CatalogSearch(
                    self.catalog.db, self.catalog.settings, engine.model, **dict(options)
                )
            # one assignment: a reader sees the old dict or the new one, never a half-built engine;
            # engines opened by readers while this one was building are kept
            latest = dict(self.catalog.__dict__.get("_searchers") or {})
            latest.update(fresh)
            self.catalog.__dict__["_searchers"] = latest
            self._seen = seen
            self.refreshes += 1
            self.last_refresh_s = time.perf_counter() - t0
            return len(fresh)

    def _prewarm(self, seen: tuple[Any, ...], t0: float) -> int:
        from catalens.errors import EmptyCatalogError

        try:
            self.catalog.searcher()
        except EmptyCatalogError:
            return 0
        finally:
            self._seen = seen
        self.refreshes += 1
        self.last_refresh_s = time.perf_counter() - t0
        return 1
