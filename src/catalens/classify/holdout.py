"""Honest evaluation: the held-out split that ``train`` keeps, and the training-overlap check of ``eval``.

``train`` sets aside a seeded share of the labelled *products* (all images of a product on one
side), stratified by the first field, before anything is fitted. The classifier folder then holds

    train_images.txt   the sha256 of every image it was trained on (one a line)
    holdout.csv        the held-out rows: sha256, id, image, and one column per field

``eval`` with no ``--labels`` scores ``holdout.csv``; with labels it refuses rows the classifier was
trained on unless told to allow them (and then says how optimistic the figure is).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from catalens.classify.labels import LabelSet
from catalens.errors import ClassifierError

TRAIN_FILE = "train_images.txt"
HOLDOUT_FILE = "holdout.csv"
DEFAULT_FRACTION = 0.2


def split_holdout(labels: LabelSet, fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train rows, held-out rows) of ``labels``: about ``fraction`` of the products of each class
    of the first field go to the held-out side (none of a class with fewer than 3 products, so
    rare classes stay trainable); images of one product stay together."""
    if not 0.0 <= fraction < 1.0:
        raise ClassifierError(f"--holdout must be in [0, 1), not {fraction}")
    n = len(labels)
    if fraction == 0.0 or n == 0:
        return list(range(n)), []
    first = next(iter(labels.labels))
    groups: dict[str, list[int]] = {}
    for i in range(n):
        key = labels.product_ids[i] or labels.shas[i]
        groups.setdefault(key, []).append(i)
    by_class: dict[str, list[str]] = {}
    for key, rows in groups.items():
        by_class.setdefault(str(labels.labels[first][rows[0]]), []).append(key)
    rng = np.random.default_rng(seed)
    held: set[str] = set()
    for cls in sorted(by_class):
        keys = sorted(by_class[cls])
        if len(keys) < 3:
            continue
        take = max(1, int(round(fraction * len(keys))))
        for j in rng.permutation(len(keys))[:take]:
            held.add(keys[int(j)])
    train = [i for key, rows in groups.items() if key not in held for i in rows]
    test = [i for key, rows in groups.items() if key in held for i in rows]
    return sorted(train), sorted(test)


def write_holdout(path: Path, labels: LabelSet, fields: Sequence[str], sources: dict[str, str]) -> Path:
    """A labels CSV of the held-out rows (``sha256`` first, so ``eval --labels`` finds the images)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["sha256", "id", "image", *fields])
        for i, sha in enumerate(labels.shas):
            w.writerow(
                [
                    sha,
                    labels.product_ids[i] or "",
                    sources.get(sha, ""),
                    *(labels.labels[f][i] or "" for f in fields),
                ]
            )
    return path


def save_split(
    folder: Path, train: LabelSet, held: LabelSet, fields: Sequence[str], sources: dict[str, str]
) -> None:
    """Write ``train_images.txt`` and ``holdout.csv`` into a classifier's version folder."""
    (folder / TRAIN_FILE).write_text("".join(f"{s}\n" for s in train.shas))
    write_holdout(folder / HOLDOUT_FILE, held, fields, sources)


def image_sources(db: Any, shas: Iterable[str]) -> dict[str, str]:
    """sha256 -> the source each image was ingested from."""
    from sqlalchemy import select

    from catalens.catalog.schema import ImageRecord

    want = list(dict.fromkeys(shas))
    out: dict[str, str] = {}
    with db.session() as s:
        for i in range(0, len(want), 500):
            q = select(ImageRecord.sha256, ImageRecord.source).where(
                ImageRecord.sha256.in_(want[i : i + 500])
            )
            out.update({h: src for h, src in s.execute(q)})
    return out


def holdout_path(members: Sequence[Any]) -> Path | None:
    """The held-out CSV of a single classifier, if it kept one."""
    if len(members) != 1 or members[0].folder is None:
        return None
    p = Path(members[0].folder) / HOLDOUT_FILE
    return p if p.is_file() else None


def train_overlap(members: Sequence[Any], shas: Sequence[str]) -> dict[str, Any] | None:
    """How many of ``shas`` the classifier(s) were trained on: ``{"rows", "of", "how"}``, or None when
    it cannot be told (a classifier without a saved training list whose data differs). ``how``:
    ``listed`` (from train_images.txt) or ``same-data`` (the images digest equals the training one)."""
    rows = 0
    how = "listed"
    want = set(shas)
    for m in members:
        folder = Path(m.folder) if getattr(m, "folder", None) else None
        if folder is not None and (folder / TRAIN_FILE).is_file():
            trained = set((folder / TRAIN_FILE).read_text().split())
            rows = max(rows, len(want & trained))
            continue
        digest = (getattr(m, "data", None) or {}).get("images_sha256")
        if digest and digest == hashlib.sha256("\n".join(shas).encode()).hexdigest()[:16]:
            rows, how = len(shas), "same-data"
    return {"rows": rows, "of": len(shas), "how": how}
