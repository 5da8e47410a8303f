"""Staging of uploaded files: images to ingest (kept under ``<home>/uploads``, since the catalog
records their paths), URL lists and manifests (checked before a job starts), and query images
(a temporary file, removed after the request).

An uploaded file is streamed to disk under its cap as it is read (``<home>/uploads/.incoming``),
never held whole in memory; :class:`Upload` names that file. Everything is checked before
anything is staged: each upload's size and header (format, dimensions, pixel count, via
:func:`catalens.imageio.probe`), each URL's scheme and address.

An upload without a product id becomes its own product with a fresh, unique id
(:func:`new_product_id`), never one derived from the file name: two phones' ``IMG_0001.jpg``
are two products. Files are added to an existing product only when the caller names it.

:func:`sweep_uploads` removes upload folders and incoming files that no longer back any image.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from catalens.config import Settings
from catalens.errors import (
    BlockedAddressError,
    ConfigError,
    FetchError,
    ImageError,
    ManifestError,
    TooLargeError,
)
from catalens.imageio import probe
from catalens.ingest.fetch import check_url
from catalens.ingest.sources import MANIFEST_EXTENSIONS, ManifestColumns, is_url, iter_source

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


INCOMING = ".incoming"
CHUNK = 1 << 20


@dataclass
class Upload:
    """An uploaded file, already on disk at ``path`` (within its size cap)."""

    filename: str
    path: Path

    @property
    def data(self) -> bytes:
        """The file's bytes (one upload at a time, at most its cap)."""
        return self.path.read_bytes()

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    def discard(self) -> None:
        """Remove the file if it was not staged (moved) elsewhere."""
        try:
            self.path.unlink()
        except OSError:
            pass


def incoming_dir(home: Path) -> Path:
    d = home / "uploads" / INCOMING
    d.mkdir(parents=True, exist_ok=True)
    return d


def receive_upload(stream: IO[bytes], filename: str, home: Path, max_bytes: int) -> Upload:
    """Copy an uploaded stream to ``<home>/uploads/.incoming`` in chunks, refusing (TooLargeError)
    more than ``max_bytes`` as soon as it is passed; nothing is kept of a refused upload."""
    path = incoming_dir(home) / f"{secrets.token_hex(12)}.part"
    total = 0
    try:
        with open(path, "wb") as out:
            while chunk := stream.read(CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise TooLargeError(filename or "upload", f"over the {max_bytes}-byte upload limit")
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Upload(filename=filename or "upload", path=path)


def discard_all(uploads: Iterable[Upload]) -> None:
    for up in uploads:
        up.discard()


def new_product_id() -> str:
    """A fresh product id for an upload that names none (unique, not derived from the file name)."""
    return f"upload-{secrets.token_hex(10)}"


@dataclass
class UrlItem:
    url: str
    product_id: str | None = None
    title: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


def safe_name(name: str, default: str = "upload") -> str:
    base = os.path.basename(name.replace("\\", "/")).strip()
    base = _SAFE.sub("_", base).strip("._")[:120]
    return base or default


def check_image_bytes(data: bytes, source: str, settings: Settings, max_bytes: int) -> str:
    """Raise an ImageError unless ``data`` is an acceptable image; returns its format."""
    if len(data) > max_bytes:
        raise TooLargeError(source, f"{len(data)} bytes is over the {max_bytes}-byte upload limit")
    fmt, _w, _h = probe(data, source, max_pixels=settings.max_pixels, max_side=settings.max_side)
    return fmt


PROBE_BYTES = 1 << 20


def check_upload(up: Upload, settings: Settings, max_bytes: int) -> str:
    """:func:`check_image_bytes` of an upload on disk (its size is checked before it is read).

    The header is probed from the file's first ``PROBE_BYTES`` (the probe reads no pixel data), so
    concurrent uploads do not each hold a whole file in memory; only a header the prefix does not
    hold (a TIFF whose directory is at the end, a JPEG with huge metadata) reads the whole file,
    and that result decides."""
    size = up.size
    if size > max_bytes:
        raise TooLargeError(up.filename, f"{size} bytes is over the {max_bytes}-byte upload limit")
    if size > PROBE_BYTES:
        with open(up.path, "rb") as fh:
            head = fh.read(PROBE_BYTES)
        try:
            return check_image_bytes(head, up.filename, settings, max_bytes)
        except ImageError:
            pass  # decided on the whole file below
    return check_image_bytes(up.data, up.filename, settings, max_bytes)


def _new_dir(home: Path) -> Path:
    d = home / "uploads" / f"{secrets.token_hex(8)}"
    d.mkdir(parents=True, exist_ok=False)
    return d


def _write_manifest(folder: Path, rows: list[dict[str, Any]]) -> Path:
    path = folder / "manifest.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def _flatten(attrs: dict[str, Any]) -> dict[str, Any]:
    reserved = {"image", "id", "title"}
    bad = reserved & set(attrs)
    if bad:
        raise ConfigError(f"attribute names {sorted(bad)} are reserved")
    return attrs


def stage_images(
    home: Path,
    uploads: Sequence[Upload],
    settings: Settings,
    *,
    max_bytes: int,
    product_id: str | None = None,
    title: str | None = None,
    attrs: dict[str, Any] | None = None,
) -> Path:
    """Check and stage uploaded images (moved, not copied); returns a manifest (image, id, title,
    attrs) to ingest. Without ``product_id`` each file becomes its own product with a fresh id
    (:func:`new_product_id`); with it, every file joins that product. Uploads that are not staged
    (a check failed) are removed."""
    try:
        if not uploads:
            raise ConfigError("no files uploaded")
        extra = _flatten(dict(attrs or {}))
        for up in uploads:
            check_upload(up, settings, max_bytes)
        folder = _new_dir(home)
        rows = []
        for i, up in enumerate(uploads):
            name = f"{i:04d}_{safe_name(up.filename)}"
            os.replace(up.path, folder / name)
            pid = product_id or new_product_id()
            rows.append({"image": name, "id": pid, "title": title} | extra)
        return _write_manifest(folder, rows)
    finally:
        discard_all(uploads)


def check_fetch_url(url: str, *, allow_private: bool) -> None:
    """Refuse non-http(s) URLs and URLs whose host resolves to a private address. A host that
    does not resolve now is left to the job (it reports the failure per item)."""
    try:
        check_url(url, allow_private=allow_private)
    except BlockedAddressError:
        raise
    except FetchError as exc:
        if "cannot resolve host" not in exc.reason:
            raise


def stage_urls(home: Path, items: Sequence[UrlItem], *, allow_private: bool) -> Path:
    if not items:
        raise ConfigError("no URLs given")
    for it in items:
        check_fetch_url(it.url, allow_private=allow_private)
    folder = _new_dir(home)
    rows = [
        {"image": it.url, "id": it.product_id or it.url, "title": it.title} | _flatten(dict(it.attrs))
        for it in items
    ]
    return _write_manifest(folder, rows)


def stage_manifest(
    home: Path,
    upload: Upload,
    cols: ManifestColumns,
    *,
    allow_private: bool,
    allow_local_paths: bool,
) -> Path:
    """Store an uploaded manifest after checking every row: its images must be http(s) URLs
    (local paths only with ``allow_local_paths``, i.e. an admin key)."""
    suffix = Path(safe_name(upload.filename)).suffix.lower()
    if suffix not in MANIFEST_EXTENSIONS:
        upload.discard()
        raise ManifestError(
            f"{upload.filename!r}: a manifest must end in one of {', '.join(sorted(MANIFEST_EXTENSIONS))}"
        )
    folder = _new_dir(home)
    path = folder / f"manifest{suffix}"
    os.replace(upload.path, path)
    try:
        n = 0
        for item in iter_source(path, cols):
            n += 1
            if item.url is None and item.error is None and not allow_local_paths:
                raise ManifestError(
                    f"row {n}: {item.source!r} is not an http(s) URL; "
                    "an uploaded manifest may reference local files only with an admin key"
                )
            if item.url is not None:
                check_fetch_url(item.url, allow_private=allow_private)
        if n == 0:
            raise ManifestError(f"{upload.filename!r}: no rows")
    except Exception:
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
        raise
    return path


@contextmanager
def query_image(upload: Upload, settings: Settings, *, max_bytes: int) -> Iterator[Path]:
    """A checked uploaded image as a temporary file (named with its format), removed after use."""
    path = upload.path
    try:
        fmt = check_upload(upload, settings, max_bytes)
        path = upload.path.with_name(f"q-{upload.path.stem}.{fmt.lower()}")
        os.replace(upload.path, path)
        yield path
    finally:
        path.unlink(missing_ok=True)
        upload.discard()


def sweep_uploads(home: Path, referenced: set[str], *, min_age_s: float = 3600.0) -> list[str]:
    """Remove what under ``<home>/uploads`` no longer backs any image: upload folders none of whose
    files is in ``referenced`` (image sources / stored paths) and incoming files, once older than
    ``min_age_s`` (a younger one may belong to a request or job still running). Returns the removed paths.
    """
    root = home / "uploads"
    if not root.is_dir():
        return []
    now = time.time()
    used = {str(Path(p).resolve().parent) for p in referenced if p and not p.startswith(("http:", "https:"))}
    removed: list[str] = []
    for entry in sorted(root.iterdir()):
        try:
            age = now - entry.stat().st_mtime
        except OSError:
            continue
        if age < min_age_s:
            continue
        if entry.name == INCOMING and entry.is_dir():
            for f in entry.iterdir():
                try:
                    if now - f.stat().st_mtime >= min_age_s:
                        f.unlink()
                        removed.append(str(f))
                except OSError:
                    pass
            continue
        if entry.is_dir() and str(entry.resolve()) not in used:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(str(entry))
    return removed


__all__ = [
    "Upload",
    "UrlItem",
    "is_url",
    "new_product_id",
    "query_image",
    "receive_upload",
    "stage_images",
    "stage_manifest",
    "stage_urls",
    "sweep_uploads",
]
