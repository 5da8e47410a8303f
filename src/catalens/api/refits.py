"""Recommendation refits of the service: once per change, under a lock, off the request path.

A reader's request never fits: it uses the engine last published (or one loaded from the engine
store; loading is no fit), and gets 503 ``recommend-not-ready`` while none exists yet. After a catalog
change (the item space moved) and until the refit publishes, it gets the last engine of the same model
and configuration, marked ``stale``, with deleted products left out (a basket naming a product that
engine never saw is the 503). Fits run on
one background thread, started by writes (events recorded, an ingest job finished, a product or
image deleted), by the app's start, or by a writer's ``POST /recommend/refit``. Changes that
arrive during a fit are coalesced into one more fit. The engine state is one dict, published by
a single assignment, so every request sees one consistent engine.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from catalens.api.service_catalog import ServiceCatalog

log = logging.getLogger("catalens.api")


class RecommendRefitter:
    def __init__(self, catalog: ServiceCatalog) -> None:
        self.catalog = catalog
        self.fit_lock = threading.Lock()  # one fit at a time (also against a CLI-style direct call)
        self._cv = threading.Condition()
        self._pending: set[str | None] = set()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.fits = 0  # fits run (a test reads it)

    def changed(self, model: str | None = None) -> None:
        """Schedule one refit of ``model`` (None: the default model); coalesced with pending ones."""
        with self._cv:
            if self._stopped:
                return
            self._pending.add(model)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="catalens-refit", daemon=True)
                self._thread.start()
            self._cv.notify_all()

    def _run(self) -> None:
        while True:
            with self._cv:
                if not self._pending or self._stopped:
                    self._thread = None
                    self._cv.notify_all()
                    return
                model = self._pending.pop()
            try:
                with self.fit_lock:
                    self.catalog._recommend_state(model)  # fits only when the change made it stale
                    self.fits += 1
            except Exception:  # noqa: BLE001 - no events/items yet, a database hiccup: keep serving
                log.info(
                    "recommendation refit of %s did not complete", model or "the default model", exc_info=True
                )

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no refit is pending or running (tests, shutdown)."""
        with self._cv:
            return self._cv.wait_for(lambda: self._thread is None and not self._pending, timeout)

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._pending.clear()
            self._cv.notify_all()

    def state_for_read(self, model: str | None) -> dict[str, Any] | None:
        """The published state, or one loaded from the store (never a fit); None when neither exists."""
        state = self.catalog._recommend_state(model, fit=False)
        return state  # type: ignore[no-any-return]
