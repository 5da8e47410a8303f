"""Run a profile's checks over many images: decode once per image, run every check on the shared
:class:`QCImage`, then the batch checks (duplicates). One bad file never stops the batch: it gets a
``file`` result with the reason, and its other checks are skipped."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalens.config import Settings
from catalens.quality.context import QCImage
from catalens.quality.profiles import Profile
from catalens.quality.registry import Check
from catalens.quality.result import CheckResult, ImageQC


@dataclass
class QCItem:
    """What to check: a file ``path`` shown as ``source`` (a catalog image's original source)."""

    source: str
    path: Path
    sha256: str | None = None


@dataclass
class QCReport:
    profile: str
    images: list[ImageQC] = field(default_factory=list)
    seconds: float = 0.0
    duplicates_method: str = "hash"  # "search-dedup" when catalens.search grouped the catalog

    @property
    def counts(self) -> dict[str, int]:
        """Images by verdict, file errors, and ``dismissed``: check results that are accepted
        exceptions (they count as passing; see :mod:`catalens.quality.exceptions`)."""
        c = {"pass": 0, "warn": 0, "fail": 0, "error": 0, "file_errors": 0, "dismissed": 0}
        for im in self.images:
            c[im.verdict] += 1
            c["file_errors"] += int(im.file_error)
            c["dismissed"] += sum(1 for r in im.results if r.dismissed)
        return c

    @property
    def by_check(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for im in self.images:
            for r in im.results:
                d = out.setdefault(r.check, {"pass": 0, "warn": 0, "fail": 0, "error": 0, "dismissed": 0})
                d[r.verdict] += 1
                d["dismissed"] += int(r.dismissed is not None)
        return out

    def exit_code(self, fail_on: str = "error") -> int:
        """0 = gate passed, 1 = gate failed. ``fail_on``: error/fail (any fail, or any check that could
        not run), warn (any warn, fail or error), never."""
        c = self.counts
        if fail_on in ("error", "fail"):
            return int(c["fail"] + c["error"] > 0)
        if fail_on == "warn":
            return int(c["fail"] + c["warn"] + c["error"] > 0)
        return 0

    def to_dict(self) -> dict[str, Any]:
        n = len(self.images)
        return {
            "profile": self.profile,
            "images": n,
            "counts": self.counts,
            "by_check": self.by_check,
            "seconds": round(self.seconds, 3),
            "duplicates_method": self.duplicates_method,
            "images_per_s": round(n / self.seconds, 2) if self.seconds > 0 else None,
            "results": [im.to_dict() for im in self.images],
        }


def check_image(img: QCImage, checks: Sequence[Check], profile: str = "") -> tuple[ImageQC, dict[str, Any]]:
    """Run the per-image checks on one prepared image; returns (result, batch fingerprints)."""
    qc = ImageQC(
        source=img.source,
        sha256=img.sha256,
        width=img.width,
        height=img.height,
        format=img.format,
        profile=profile,
    )
    prints: dict[str, Any] = {}
    file_check = next((c for c in checks if c.scope == "file"), None)
    if not img.ok:
        if file_check is None:
            from catalens.quality.checks.file import FileCheck

            file_check = FileCheck()
        qc.results.append(file_check.run(img))
        return qc, prints
    for check in checks:
        if check.scope == "batch":
            prints[check.name] = check.fingerprint(img)  # type: ignore[attr-defined]
            continue
        try:
            qc.results.append(check.run(img))
        except Exception as exc:  # a check bug must not stop the batch, nor let the image pass
            qc.results.append(_error_result(check, exc))
    return qc, prints


def _error_result(check: Check, exc: BaseException) -> CheckResult:
    """The verdict of a check that raised: ``error`` (fails closed), with the exception as the reason."""
    return CheckResult(
        check.name, None, check.unit, "error", f"check could not run: {type(exc).__name__}: {exc}"
    )


def check_item(
    item: QCItem, checks: Sequence[Check], profile: str, settings: Settings
) -> tuple[ImageQC, dict[str, Any]]:
    """Decode one item and run the per-image checks on it (a thread here, or a Ray worker)."""
    img = QCImage.load(
        item.path,
        max_bytes=settings.max_file_bytes,
        max_pixels=settings.max_pixels,
        max_side=settings.max_side,
        source=item.source,
    )
    if img.sha256 is None and item.sha256:
        img.sha256 = item.sha256
    return check_image(img, checks, profile)


ItemsMap = Callable[[list[QCItem], Callable[[int], None] | None], list[tuple[ImageQC, dict[str, Any]]]]


def run_checks(
    items: Iterable[QCItem],
    profile: Profile,
    settings: Settings,
    *,
    on_progress: Callable[[int], None] | None = None,
    workers: int | None = None,
    map_items: ItemsMap | None = None,
) -> QCReport:
    """Check every item with ``profile``; results keep the input order. ``map_items(items, tick)``
    runs :func:`check_item` elsewhere (the Ray engine), in input order; the batch checks run here."""
    items = list(items)
    checks = profile.instantiate()
    for c in checks:
        if map_items is None or c.scope == "batch":
            c.setup()  # load OCR / NSFW models once, before the threads start
    started = time.perf_counter()

    def one(item: QCItem) -> tuple[ImageQC, dict[str, Any]]:
        try:
            return check_item(item, checks, profile.name, settings)
        finally:
            if on_progress:
                on_progress(1)

    n_workers = max(1, workers or settings.workers)
    import cv2

    cv2.setNumThreads(1)
    if map_items is not None:
        done = map_items(items, on_progress)
    elif n_workers == 1:
        done = [one(it) for it in items]
    else:
        with ThreadPoolExecutor(n_workers) as pool:
            done = list(pool.map(one, items))
    images = [qc for qc, _ in done]
    for check in checks:
        if check.scope != "batch":
            continue
        batch = [(qc.source, prints.get(check.name)) for qc, prints in done]
        try:
            batch_results = list(check.run_batch(batch))  # type: ignore[attr-defined]
        except Exception as exc:  # the batch check could not run: every image gets its error
            batch_results = [_error_result(check, exc) for _ in images]
        for qc, res in zip(images, batch_results, strict=True):
            if res is not None:
                qc.results.append(res)
    return QCReport(profile=profile.name, images=images, seconds=time.perf_counter() - started)
