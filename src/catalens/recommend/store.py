"""Fitted recommendation engines on disk, under ``<home>/recommend/<key>/``.

The key hashes what the fit depends on besides the event log: the embedding model id and version,
the item space's fingerprint (embedded rows, products, image links, last product update) and the
recommender configuration (plus this module's format version). The folder holds ``engine.pkl``
(the fitted engine, without what only fitting needs) and ``meta.json`` with the event log's
fingerprint at fit time (event count and largest event id).

A stored engine is used while the event log has only grown, by at most ``max_growth`` (10 %) of
the events it was fitted on: newer events of a user still count at query time (they are read
per request), and the engine is refitted and replaced once the log grew more or changed
otherwise (events deleted). The pickle is written by this process into the catalog's own home
and loaded only from there; any error while loading means a refit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT = 1
KEEP = 4  # engines kept per home (other models or configurations), newest first


@dataclass(frozen=True)
class EventState:
    """The event log's fingerprint: event count and largest event id."""

    count: int
    top: int


def engine_key(item_key: tuple[Any, ...], config: dict[str, Any]) -> str:
    """A short stable hash of the item-space fingerprint and the configuration."""
    blob = json.dumps([FORMAT, list(map(str, item_key)), config], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def is_fresh(fitted: EventState, now: EventState, appended: int, max_growth: float = 0.1) -> bool:
    """True when the log only grew since ``fitted`` (``appended`` events with a larger id than its
    top, and nothing else changed) and by at most ``max_growth`` of the fitted count."""
    if now == fitted:
        return True
    grew = now.count - fitted.count
    return (
        grew > 0 and now.top > fitted.top and appended == grew and grew <= max_growth * max(fitted.count, 1)
    )


class EngineStore:
    """Save and load fitted engines in one folder (``<home>/recommend``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key

    def load(self, key: str) -> tuple[Any, dict[str, Any]] | None:
        """(engine, meta) or None when absent or unreadable."""
        folder = self.path(key)
        try:
            meta = json.loads((folder / "meta.json").read_text())
            if meta.get("format") != FORMAT:
                return None
            t0 = time.perf_counter()
            with open(folder / "engine.pkl", "rb") as fh:
                engine = pickle.load(fh)
            meta["load_s"] = round(time.perf_counter() - t0, 3)
            return engine, meta
        except FileNotFoundError:
            return None
        except Exception as exc:  # a damaged or incompatible file: refit  # noqa: BLE001
            log.warning("recommend: could not load the stored engine %s (%s); refitting", folder, exc)
            return None

    def save(self, key: str, engine: Any, events: EventState, extra: dict[str, Any] | None = None) -> bool:
        """Write atomically (a temporary folder renamed into place); False when the home is not writable."""
        meta = {"format": FORMAT, "key": key, "count": events.count, "top": events.top, "saved": time.time()}
        meta.update(extra or {})
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=self.root))
            with open(tmp / "engine.pkl", "wb") as fh:
                pickle.dump(engine, fh, protocol=pickle.HIGHEST_PROTOCOL)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            final = self.path(key)
            old = None
            if final.exists():
                old = final.with_name(f".{key}-old-{os.getpid()}")
                os.replace(final, old)
            os.replace(tmp, final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            log.warning("recommend: could not save the fitted engine under %s (%s)", self.root, exc)
            shutil.rmtree(locals().get("tmp", self.root / ".none"), ignore_errors=True)
            return False
        self.prune()
        return True

    def prune(self, keep: int = KEEP) -> None:
        """Remove all but the ``keep`` most recently saved engines (and stale temporary folders)."""
        try:
            folders = [p for p in self.root.iterdir() if p.is_dir()]
        except OSError:
            return
        now = time.time()
        for p in folders:
            if p.name.startswith(".") and now - p.stat().st_mtime > 3600:
                shutil.rmtree(p, ignore_errors=True)
        engines = sorted(
            (p for p in folders if not p.name.startswith(".")), key=lambda p: p.stat().st_mtime, reverse=True
        )
        for p in engines[keep:]:
            shutil.rmtree(p, ignore_errors=True)
