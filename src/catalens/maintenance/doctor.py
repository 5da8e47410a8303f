"""``catalens doctor``: check a catalog home, and with ``repair`` rebuild what can be rebuilt.

Checks, in order (a check that finds the catalog unusable stops the ones after it):

1. **home**: exists and can be written.
2. **database**: SQLite ``PRAGMA quick_check`` (``integrity_check`` with ``full``), opened read-only.
   A damaged database cannot be rebuilt here: restore a backup (``catalens restore``).
3. **counts**: images (ok / failed), products, and per model the embedding records and the vector
   rows its store holds.
4. **vectors**, per model: records that point past the end of the vector file (the file was cut);
   stored rows that are not unit length or not finite (every referenced row is read: a bit flip in
   a sign-or-exponent byte shows here); a sample of rows (``sample``; every row with ``full``)
   re-encoded from their images with the model that wrote them, which must agree at cosine >=
   ``MIN_COSINE`` (a per-row checksum does not exist; re-encoding is the check). Images without a
   vector for the model are reported (``catalens embed`` adds them).
5. **index**, per model (FAISS folders): loads, holds exactly the database's rows (extra rows are
   an error; missing rows a warning, since the next search catches up), and answers a sample of
   queries as an exact search over the stored vectors does.
6. **orphans**: blobs and upload folders no image row refers to, index generations and index
   folders nothing uses, vector files of no recorded model.

``repair`` drops the records of lost or damaged vectors and embeds those images again (new rows;
old rows are never reused), rebuilds a damaged or inconsistent index, and removes derived orphans
(index generations/folders; unreferenced blobs and uploads only while no job is running). What it
cannot rebuild - a damaged database, vectors whose images are gone, vector files of no recorded
model - is named in ``not_repaired`` with what to do.
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from catalens.catalog.storage import check_home_writable, sqlite_integrity, sqlite_path
from catalens.config import Settings
from catalens.errors import CatalensError, IndexCorruptError
from catalens.vectors import FileVectorStore, l2_normalize, open_store, vector_key

if TYPE_CHECKING:
    from catalens.catalog_base import CatalogParts
    from catalens.core import Catalog

MIN_COSINE = 0.9999
NORM_TOLERANCE = 1e-3
_QUERIES = 16
_K = 10


@dataclass
class Finding:
    """One problem: ``check`` (home, database, vectors, index, orphans, jobs), ``severity`` (error: the
    catalog is damaged or inconsistent; warning: incomplete or untidy), what to do, and whether
    ``--repair`` fixes it."""

    check: str
    severity: str
    message: str
    fix: str
    repairable: bool
    model: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class DoctorReport:
    home: str
    database: str
    counts: dict[str, Any] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    not_repaired: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def ok(self) -> bool:
        """No error, and nothing a repair had to leave for a person."""
        return not self.errors and not self.not_repaired

    def add(self, check: str, severity: str, message: str, fix: str, repairable: bool, **kw: Any) -> None:
        self.findings.append(Finding(check, severity, message, fix, repairable, **kw))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["errors"] = len(self.errors)
        data["warnings"] = len(self.findings) - len(self.errors)
        return data


# ---- checks ------------------------------------------------------------------------------------
def diagnose(
    settings: Settings, *, sample: int = 64, full: bool = False, encoders: Any = None
) -> DoctorReport:
    """Check the catalog of ``settings`` (see the module docstring). ``encoders(model_id)`` returns the
    image encoder of a model (default: :meth:`Catalog.encoder`)."""
    t0 = time.perf_counter()
    report = DoctorReport(str(settings.home), settings.database_url)
    try:
        _diagnose(settings, report, sample=sample, full=full, encoders=encoders)
    finally:
        report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _diagnose(settings: Settings, report: DoctorReport, *, sample: int, full: bool, encoders: Any) -> None:
    home = settings.home
    report.checks.append("home")
    if not home.is_dir():
        report.add("home", "error", f"no catalog home at {home}", "check --home / CATALENS_HOME", False)
        return
    try:
        check_home_writable(home)
    except CatalensError as exc:
        report.add("home", "error", str(exc), "make the home writable, then run doctor again", False)
        return
    report.checks.append("database")
    db_file = sqlite_path(settings.database_url)
    if db_file is not None:
        problems = sqlite_integrity(db_file, full=full)
        if problems:
            report.add(
                "database", "error",
                f"the SQLite database {db_file} is damaged: {'; '.join(problems[:5])}",
                f"cannot be rebuilt from the home: restore the last backup (`catalens restore BACKUP --force`), "
                f"or salvage it (`sqlite3 {db_file} .recover | sqlite3 recovered.db`) and re-ingest the sources",
                False, detail={"problems": problems[:50]},
            )  # fmt: skip
            return
    from catalens.core import Catalog

    try:
        cat = Catalog(settings)
    except CatalensError as exc:
        report.add("database", "error", str(exc), "see the message", False)
        return
    try:
        enc = encoders or (lambda name: cat.encoder(name))
        _check_catalog(cat, report, sample=sample, full=full, encoders=enc)
    finally:
        cat.close()


def _check_catalog(cat: Catalog, report: DoctorReport, *, sample: int, full: bool, encoders: Any) -> None:
    db = cat.db
    report.checks.append("counts")
    info = db.info(max_failures=0)
    # ok rows always have a sha256 (only failed sources lack one)
    ok_images = {img.sha256: img for img in db.ok_images() if img.sha256 is not None}
    report.counts = {
        "products": info["products"],
        "images_ok": len(ok_images),
        "images_failed": info["failures_total"],
        "models": [],
    }
    for job in db.running_jobs():
        report.add(
            "jobs", "warning", f"job {job.id} ({job.kind}) is running", "let it finish before --repair", False
        )
    keys = set()
    for rec in db.models():
        keys.add(vector_key(rec.model_id, rec.version))
        _check_model(cat, rec, ok_images, report, sample=sample, full=full, encoders=encoders)
    report.checks.append("orphans")
    _check_orphans(cat, keys, report)


def _model_label(rec: Any) -> str:
    return f"{rec.model_id} ({rec.version})"


def _check_model(
    cat: Catalog,
    rec: Any,
    ok_images: dict[str, Any],
    report: DoctorReport,
    *,
    sample: int,
    full: bool,
    encoders: Any,
) -> None:
    db, settings, label = cat.db, cat.settings, _model_label(rec)
    report.checks.append(f"vectors:{rec.model_id}")
    try:
        store = open_store(db, settings.home, rec.model_id, rec.version, rec.dim, settings.vector_store)
    except CatalensError as exc:
        report.add("vectors", "error", str(exc), "open the catalog with the home that holds the vectors",
                   False, model=rec.model_id)  # fmt: skip
        return
    pairs = db.embedding_positions(rec.model_id, rec.version)
    positions = np.fromiter((p for _, p in pairs), dtype=np.int64, count=len(pairs))
    sha_at = {p: h for h, p in pairs}
    if isinstance(store, FileVectorStore):
        stored_rows, where = store.rows_on_disk(), str(store.path)
    else:
        stored_rows, where = (
            db.vector_row_count(rec.model_id, rec.version),
            "the database (embedding_vectors)",
        )
    counts = {"model": rec.model_id, "version": rec.version, "store": store.kind, "records": len(pairs),
              "vector_rows": stored_rows, "re_encoded": 0, "min_cosine": None}  # fmt: skip
    report.counts["models"].append(counts)
    bad: dict[int, str] = {}
    if isinstance(store, FileVectorStore):
        past = positions[positions >= stored_rows]
        if len(past):
            report.add("vectors", "error",
                       f"{len(past)} of {len(pairs)} records of {label} point past the end of {where} "
                       f"({stored_rows} rows): the file was cut or replaced",
                       "`catalens doctor --repair` drops them and embeds those images again", True,
                       model=rec.model_id, detail={"positions": past[:20].tolist()})  # fmt: skip
            bad.update({int(p): "past-end" for p in past})
    readable = positions[positions < stored_rows] if isinstance(store, FileVectorStore) else positions
    damaged = _damaged_rows(store, positions)
    if damaged:
        report.add("vectors", "error",
                   f"{len(damaged)} stored vectors of {label} in {where} are damaged (not unit length, "
                   "not finite or missing)",
                   "`catalens doctor --repair` drops them and embeds those images again", True,
                   model=rec.model_id, detail={"positions": damaged[:20]})  # fmt: skip
        bad.update({p: "damaged" for p in damaged})
    missing = len(set(ok_images) - set(sha_at.values()))
    if missing and pairs:
        report.add("vectors", "warning", f"{missing} images have no vector for {label}",
                   f"`catalens embed --model {rec.model_id}` (or doctor --repair) embeds them", True,
                   model=rec.model_id, detail={"missing": missing})  # fmt: skip
    good = np.array([p for p in readable.tolist() if p not in bad], dtype=np.int64)
    _check_reencoding(cat, rec, store, good, sha_at, ok_images, report, counts, sample, full, encoders, where)
    _check_index(cat, rec, store, good, report)


def _check_reencoding(
    cat: Catalog, rec: Any, store: Any, good: np.ndarray, sha_at: dict[int, str], ok_images: dict[str, Any],
    report: DoctorReport, counts: dict[str, Any], sample: int, full: bool, encoders: Any, where: str,
) -> None:  # fmt: skip
    if not len(good) or (sample <= 0 and not full):
        return
    label = _model_label(rec)
    try:
        encoder = encoders(rec.model_id)
    except CatalensError as exc:
        report.add("vectors", "warning", f"vectors of {label} not re-encoded: {exc}",
                   "make the model available to check them", False, model=rec.model_id)  # fmt: skip
        return
    if getattr(encoder, "version", rec.version) != rec.version:
        report.add("vectors", "warning",
                   f"vectors of {label} not re-encoded: the model available is version {encoder.version}",
                   "check with the model version that wrote them", False, model=rec.model_id)  # fmt: skip
        return
    picks = (
        good if full or len(good) <= sample else np.sort(np.random.default_rng(0).choice(good, sample, False))
    )
    cos, unavailable = reencode(cat, encoder, store, picks, sha_at, ok_images)
    counts["re_encoded"] = int(len(cos))
    counts["min_cosine"] = round(float(min(cos.values())), 6) if cos else None
    wrong = sorted(p for p, c in cos.items() if c < MIN_COSINE)
    if wrong:
        report.add("vectors", "error",
                   f"{len(wrong)} of {len(cos)} re-encoded vectors of {label} differ from what {where} holds "
                   f"(cosine < {MIN_COSINE}; lowest {min(cos.values()):.4f})",
                   "`catalens doctor --repair` re-encodes every row of the model and replaces the wrong ones",
                   True, model=rec.model_id, detail={"positions": wrong[:20]})  # fmt: skip
    if unavailable:
        report.add("vectors", "warning",
                   f"{len(unavailable)} sampled images of {label} could not be read again to check them",
                   "their sources moved or changed; their stored vectors are kept", False,
                   model=rec.model_id, detail={"sources": unavailable[:10]})  # fmt: skip


def reencode(
    cat: Catalog,
    encoder: Any,
    store: Any,
    positions: np.ndarray,
    sha_at: dict[int, str],
    ok_images: dict[str, Any],
) -> tuple[dict[int, float], list[str]]:
    """Cosine between each stored row at ``positions`` and a fresh encoding of its image (read, decoded
    and preprocessed as ingest does); plus the sources that could not be read again (or changed)."""
    from catalens.ingest.job import ItemPreparer

    preparer = ItemPreparer(cat.settings, encoder, set(), set())
    rows = store.rows()
    cos: dict[int, float] = {}
    unavailable: list[str] = []
    for lo in range(0, len(positions), 32):
        chunk = [int(p) for p in positions[lo : lo + 32]]
        tensors, kept = [], []
        for p in chunk:
            img = ok_images.get(sha_at[p])
            if img is None:
                continue
            item = next(iter(cat._items_for([img])))
            prep = preparer.prepare(item)
            if prep.tensor is None or prep.sha != img.sha256:
                unavailable.append(img.source)
                continue
            tensors.append(prep.tensor)
            kept.append(p)
        if not kept:
            continue
        fresh = l2_normalize(encoder.encode(np.stack(tensors).astype(np.float32, copy=False)))
        stored = np.asarray(rows[np.array(kept, dtype=np.int64)], dtype=np.float32)
        with np.errstate(all="ignore"):
            sims = np.nan_to_num(np.sum(fresh * l2_normalize(stored), axis=1), nan=-1.0)
        cos.update({p: float(s) for p, s in zip(kept, sims, strict=True)})
    return cos, unavailable


def _check_index(cat: CatalogParts, rec: Any, store: Any, good: np.ndarray, report: DoctorReport) -> None:
    from catalens.search.index_sync import index_location

    settings, label = cat.settings, _model_label(rec)
    uri, folder, key = index_location(settings, rec.model_id, rec.version)
    if folder is None:
        return  # a server index (Milvus): checked by its server; caught up on every open
    report.checks.append(f"index:{rec.model_id}")
    if not (folder / "current.json").exists():
        if len(good):
            report.add("index", "warning", f"no index for {label} yet", "built by the next search", True,
                       model=rec.model_id)  # fmt: skip
        return
    from catalens.index.faiss_index import FaissIndex

    try:
        index = FaissIndex.open(folder, dim=rec.dim, name=key)
    except IndexCorruptError as exc:
        report.add("index", "error", f"the index of {label} is damaged: {exc}",
                   "`catalens doctor --repair` rebuilds it (the next search would too)", True,
                   model=rec.model_id)  # fmt: skip
        return
    ids = np.unique(index.ids())
    extra = np.setdiff1d(ids, good)
    behind = np.setdiff1d(good, ids)
    if extra.size:
        report.add("index", "error",
                   f"the index of {label} holds {len(extra)} rows the database does not have (or whose vectors are damaged)",
                   "`catalens doctor --repair` rebuilds it", True, model=rec.model_id,
                   detail={"ids": extra[:20].tolist()})  # fmt: skip
        return
    if behind.size:
        report.add("index", "warning", f"the index of {label} lacks {len(behind)} rows of the database",
                   "the next search adds them (or doctor --repair)", True, model=rec.model_id)  # fmt: skip
    if index.kind != "exact" or not ids.size:
        return
    mat = np.asarray(store.rows()[ids], dtype=np.float32)
    mat = l2_normalize(mat)
    held = np.asarray(index.get_vectors(ids), dtype=np.float32)  # exact index: the vectors it holds
    off = np.abs(held - mat).max(axis=1) > 1e-5
    if off.any():
        report.add("index", "error",
                   f"{int(off.sum())} vectors in the index of {label} differ from the stored vectors",
                   "`catalens doctor --repair` rebuilds it", True, model=rec.model_id,
                   detail={"ids": ids[off][:20].tolist()})  # fmt: skip
        return
    q_rows = np.random.default_rng(1).choice(len(ids), min(_QUERIES, len(ids)), replace=False)
    queries = mat[q_rows]
    hits = index.search(queries, _K)
    exact = queries @ mat.T
    k = min(_K, len(ids))
    top = np.argsort(-exact, axis=1, kind="stable")[:, :k]
    want_scores = np.take_along_axis(exact, top, axis=1)
    got_scores = hits.scores[:, :k]
    if not np.allclose(got_scores, want_scores, atol=1e-4):
        report.add("index", "error",
                   f"the index of {label} answers differently from an exact search over the stored vectors",
                   "`catalens doctor --repair` rebuilds it", True, model=rec.model_id)  # fmt: skip


def _generation_of(folder: Path) -> int | None:
    try:
        return int(json.loads((folder / "current.json").read_text())["generation"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _check_orphans(cat: CatalogParts, keys: set[str], report: DoctorReport) -> None:
    home = cat.settings.home
    orphans: dict[str, list[str]] = {"index": [], "blobs": [], "uploads": [], "vectors": []}
    index_root = home / "index"
    if index_root.is_dir():
        for folder in sorted(p for p in index_root.iterdir() if p.is_dir()):
            if folder.name not in keys:
                orphans["index"].append(str(folder))
                continue
            gen = _generation_of(folder)
            for g in sorted(folder.glob("gen-*")):
                if gen is not None and g.name != f"gen-{gen:06d}":
                    orphans["index"].append(str(g))
    stored, sources = cat.db.image_files()
    blob_root = home / "blobs"
    if blob_root.is_dir():
        known = {str(Path(p).resolve()) for p in stored}
        orphans["blobs"] = [
            str(p) for p in sorted(blob_root.rglob("*")) if p.is_file() and str(p.resolve()) not in known
        ]
    up_root = home / "uploads"
    if up_root.is_dir():
        used = {Path(s).resolve().parent for s in sources if not s.startswith(("http://", "https://"))}
        orphans["uploads"] = [
            str(p)
            for p in sorted(up_root.iterdir())
            # dot-folders (``.incoming``: request bodies being streamed in) belong to the live server
            if p.is_dir() and not p.name.startswith(".") and p.resolve() not in used
        ]
    vec_root = home / "vectors"
    if vec_root.is_dir():
        orphans["vectors"] = [str(p) for p in sorted(vec_root.glob("*.f32")) if p.stem not in keys]
    fixes = {
        "index": ("index generations or folders nothing uses", "`catalens doctor --repair` removes them", True),
        "blobs": ("stored image copies no image row refers to", "`catalens doctor --repair` removes them", True),
        "uploads": ("upload folders no image row refers to (an upload whose job never ran?)",
                    "`catalens doctor --repair` removes them when no job is running", True),
        "vectors": ("vector files of no model recorded in the database (a database restored without them?)",
                    "not removed: check them, then delete them by hand", False),
    }  # fmt: skip
    report.counts["orphans"] = {k: len(v) for k, v in orphans.items()}
    for kind, paths in orphans.items():
        if paths:
            what, fix, repairable = fixes[kind]
            report.add("orphans", "warning", f"{len(paths)} {what}: {', '.join(paths[:3])}"
                       + (" ..." if len(paths) > 3 else ""), fix, repairable, detail={kind: paths})  # fmt: skip


# ---- repair ------------------------------------------------------------------------------------
def _index_lock(folder: Path) -> AbstractContextManager[None]:
    """The lock ``search.index_sync`` takes on a FAISS folder, so a repair never races a sync."""
    from catalens.search.index_sync import folder_lock

    return folder_lock(folder)


def _damaged_rows(store: Any, positions: np.ndarray) -> list[int]:
    """Positions whose stored vector is not finite or not unit length (flipped bits, zeroed rows);
    rows past the end of a file store are reported separately and skipped here."""
    readable = (
        positions[positions < store.rows_on_disk()] if isinstance(store, FileVectorStore) else positions
    )
    rows = store.rows()
    damaged: list[int] = []
    for lo in range(0, len(readable), 50_000):
        chunk = readable[lo : lo + 50_000]
        vecs = np.asarray(rows[chunk], dtype=np.float32)
        with np.errstate(all="ignore"):
            norms = np.linalg.norm(vecs, axis=1)
        off = ~np.isfinite(vecs).all(axis=1) | ~(np.abs(norms - 1.0) <= NORM_TOLERANCE)
        damaged.extend(int(p) for p in chunk[off])
    return damaged


def repair(settings: Settings, *, sample: int = 64, full: bool = False, encoders: Any = None) -> DoctorReport:
    """Diagnose, rebuild what can be rebuilt, and diagnose again. The returned report is the second
    diagnosis, with ``repaired`` (what was done) and ``not_repaired`` (what needs a person)."""
    first = diagnose(settings, sample=sample, full=full, encoders=encoders)
    repaired: list[str] = []
    not_repaired = [
        f"{f.message} -> {f.fix}" for f in first.findings if f.severity == "error" and not f.repairable
    ]
    if not any(f.check in ("home", "database") for f in first.errors):
        from catalens.core import Catalog

        with Catalog(settings) as cat:
            enc = encoders or (lambda name: cat.encoder(name))
            busy = bool(cat.db.running_jobs())
            _repair_catalog(cat, first, repaired, not_repaired, enc, busy)
    final = diagnose(settings, sample=sample, full=full, encoders=encoders)
    final.repaired, final.not_repaired = repaired, not_repaired
    for f in final.errors:
        line = f"{f.message} -> {f.fix}"
        if line not in not_repaired:
            not_repaired.append(line)
    final.seconds = round(final.seconds + first.seconds, 3)
    return final


def _repair_catalog(
    cat: Catalog, first: DoctorReport, repaired: list[str], not_repaired: list[str], encoders: Any, busy: bool
) -> None:
    db = cat.db
    models = {m.model_id: m for m in db.models()}
    by_model: dict[str, list[Finding]] = {}
    for f in first.findings:
        if f.model:
            by_model.setdefault(f.model, []).append(f)
    for model_id, findings in by_model.items():
        rec = models.get(model_id)
        if rec is None:
            continue
        vec_errors = [f for f in findings if f.check == "vectors" and f.severity == "error" and f.repairable]
        incomplete = any(f.check == "vectors" and "no vector" in f.message for f in findings)
        if vec_errors or incomplete:
            _repair_vectors(cat, rec, vec_errors, repaired, not_repaired, encoders)
        if any(f.check == "index" for f in findings) or vec_errors:
            _rebuild_index(cat, rec, repaired)
    for f in first.findings:
        if f.check != "orphans" or not f.repairable:
            continue
        for kind, paths in f.detail.items():
            if kind in ("blobs", "uploads") and busy:
                not_repaired.append(
                    f"{len(paths)} orphan {kind} kept: a job is running; run --repair after it"
                )
                continue
            for p in paths:
                path = Path(p)
                if kind == "index":
                    with _index_lock(path.parent if path.name.startswith("gen-") else path):
                        shutil.rmtree(path, ignore_errors=True)
                elif path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            repaired.append(f"removed {len(paths)} orphan {kind}")


def _repair_vectors(
    cat: Catalog,
    rec: Any,
    vec_errors: list[Finding],
    repaired: list[str],
    not_repaired: list[str],
    encoders: Any,
) -> None:
    db, settings, label = cat.db, cat.settings, _model_label(rec)
    store = open_store(db, settings.home, rec.model_id, rec.version, rec.dim, settings.vector_store)
    drop: set[int] = set()
    pairs = db.embedding_positions(rec.model_id, rec.version)
    positions = np.fromiter((p for _, p in pairs), dtype=np.int64, count=len(pairs))
    if isinstance(store, FileVectorStore):
        drop.update(int(p) for p in positions[positions >= store.rows_on_disk()])
    for f in vec_errors:
        if "re-encoded" in f.message:  # a sample disagreed: check every row of the model
            encoder = encoders(rec.model_id)
            ok_images = {img.sha256: img for img in db.ok_images() if img.sha256 is not None}
            sha_at = {p: h for h, p in pairs}
            readable = np.array([p for p in positions.tolist() if p not in drop], dtype=np.int64)
            cos, _ = reencode(cat, encoder, store, readable, sha_at, ok_images)
            drop.update(p for p, c in cos.items() if c < MIN_COSINE)
        elif "damaged" in f.message:
            drop.update(_damaged_rows(store, positions))
    if drop:
        n = db.drop_embeddings_at(rec.model_id, rec.version, drop)
        repaired.append(f"dropped {n} records of lost or damaged vectors of {label}")
    report = cat.embed(rec.model_id)
    if report.embedded:
        repaired.append(f"embedded {report.embedded} images again with {label}")
    for failure in report.failures:
        not_repaired.append(
            f"image {failure.source} of {label} cannot be embedded again ({failure.reason}) -> "
            "put the file back and run `catalens embed`, or re-ingest it"
        )


def _rebuild_index(cat: CatalogParts, rec: Any, repaired: list[str]) -> None:
    from catalens.search.index_sync import committed_vectors, index_location, sync_index

    _, folder, _ = index_location(cat.settings, rec.model_id, rec.version)
    if folder is None:
        return
    try:
        data = committed_vectors(cat.db, cat.settings, rec.model_id)
    except CatalensError:
        return
    with _index_lock(folder):
        for p in folder.iterdir():
            if p.name == ".lock":
                continue
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    _, sync = sync_index(cat.db, cat.settings, data)
    repaired.append(f"rebuilt the index of {_model_label(rec)} ({sync['count']} rows, {sync['seconds']} s)")
