"""Per-image cache of derived data (table ``classify_image_cache``): computed once per image sha.

Used for colour descriptors (float32 vectors) and OCR text (JSON). :func:`cached` computes the
missing entries in batches and stores them as it goes, so an interrupted run keeps its work.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, select

from catalens.classify.tables import ImageFeatureCache


def read_cache(db: Any, kind: str, shas: Iterable[str]) -> dict[str, bytes]:
    """Stored values of ``kind`` for ``shas`` (missing ones absent)."""
    want = list(dict.fromkeys(shas))
    out: dict[str, bytes] = {}
    with db.session() as s:
        for i in range(0, len(want), 900):
            part = want[i : i + 900]
            rows = s.execute(
                select(ImageFeatureCache.image_sha256, ImageFeatureCache.data).where(
                    ImageFeatureCache.kind == kind, ImageFeatureCache.image_sha256.in_(part)
                )
            ).all()
            out.update({h: bytes(d) for h, d in rows})
    return out


def write_cache(db: Any, kind: str, items: dict[str, bytes]) -> None:
    if not items:
        return
    with db.session() as s:
        s.execute(
            delete(ImageFeatureCache).where(
                ImageFeatureCache.kind == kind, ImageFeatureCache.image_sha256.in_(list(items))
            )
        )
        s.add_all(ImageFeatureCache(image_sha256=h, kind=kind, data=d) for h, d in items.items())


def cached(
    db: Any,
    kind: str,
    shas: Sequence[str],
    compute: Callable[[str], bytes | None],
    *,
    batch: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, bytes]:
    """Values of ``kind`` for every sha, computing (``compute(sha) -> bytes``) and storing the missing
    ones. A ``compute`` that returns None (it could not) leaves that sha out: nothing is stored for it."""
    have = read_cache(db, kind, shas)
    todo = [h for h in dict.fromkeys(shas) if h not in have]
    pending: dict[str, bytes] = {}
    for n, h in enumerate(todo, 1):
        value = compute(h)
        if value is not None:
            pending[h] = value
        if len(pending) >= batch or n == len(todo):
            write_cache(db, kind, pending)
            have.update(pending)
            pending = {}
            if progress:
                progress(n, len(todo))
    return have


def cached_rows(
    db: Any, kind: str, shas: Sequence[str], fallback: np.ndarray
) -> tuple[np.ndarray, dict[str, list[int]], set[str]]:
    """Per-row vectors of ``kind`` for ``shas`` where stored, else the row of ``fallback`` (a copy),
    the rows of each sha, and the shas that were stored (the caller computes the others)."""
    out = np.array(fallback, np.float32, copy=True)
    row_of: dict[str, list[int]] = {}
    for i, s in enumerate(shas):
        row_of.setdefault(s, []).append(i)
    have = read_cache(db, kind, row_of)
    for s, b in have.items():
        out[row_of[s]] = decode_vector(b)
    return out, row_of, set(have)


def encode_vector(v: np.ndarray) -> bytes:
    return np.asarray(v, np.float32).tobytes()


def decode_vector(b: bytes) -> np.ndarray:
    return np.frombuffer(b, np.float32)


def encode_json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def decode_json(b: bytes) -> Any:
    return json.loads(b.decode())
