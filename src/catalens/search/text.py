"""Text queries: a CLIP-type model's text tower, or a catalog-aligned text projection.

**Text tower.** When the search model's spec has a text tower (``has_text``), the query is
encoded by ``catalens.models.load_text_encoder(model)`` into the image space directly.

**Catalog-aligned projection (offline default).** Image-only models (EfficientNet-Lite, ...)
get a linear map from the packaged MiniLM sentence space (384-d) into the model's image space,
learned from the catalog's own (image embedding, product title) pairs:

* pairs: every embedded image of a product with a title; titles are encoded with ``minilm``;
* fit: ridge regression ``W = argmin |T_c W - X_c|^2 + lam |W|^2`` on centred text ``T_c`` and
  centred image vectors ``X_c`` (ranking by ``q . x`` equals ranking by ``q . x_c`` for a fixed
  query, so the centred prediction is used as the query). ``lam`` is picked on a held-out 20%
  of *products* (split by a hash of the product id) by text-to-image Recall@10 over the whole
  catalog; the artefact is then refit on all pairs with that ``lam``;
* artefact: ``<home>/textproj/<vector key>.npz`` (W, text mean) + ``.json`` (training metadata:
  model, version, text model, pairs, products, lam, held-out Recall@10, trained_at);
* retraining: ``catalens search-train-text`` (or ``Catalog.train_text_projection``) retrains
  on demand; a text search retrains automatically when the catalog's titled images grew by more
  than ``RETRAIN_GROWTH`` (20%) since training. With no artefact, a text search on an image-only
  model raises :class:`TextSearchUnavailableError` naming the command to run.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from catalens.errors import ConfigError, EmptyCatalogError, TextSearchUnavailableError
from catalens.search.engine import CatalogSearch, product_rows
from catalens.vectors import l2_normalize, vector_key

TEXT_MODEL = "minilm"
RETRAIN_GROWTH = 0.20
LAMBDAS = (0.3, 1.0, 3.0, 10.0, 30.0)
_TEXT_ENCODERS: dict[str, Any] = {}


def _text_encoder(name: str) -> Any:
    if name not in _TEXT_ENCODERS:
        from catalens.models import load_text_encoder

        _TEXT_ENCODERS[name] = load_text_encoder(name)
    return _TEXT_ENCODERS[name]


def _paths(home: Path, searcher: CatalogSearch) -> tuple[Path, Path]:
    key = vector_key(searcher.data.model_id, searcher.data.version)
    root = home / "textproj"
    return root / f"{key}.npz", root / f"{key}.json"


def titled_pairs(searcher: CatalogSearch) -> tuple[list[str], list[str], np.ndarray]:
    """(product ids, titles, vector positions) of embedded images whose product has a title."""
    prods = product_rows(searcher.db)
    pids, titles, pos = [], [], []
    for sha, plist in searcher.links.items():
        p = searcher.pos_of.get(sha)
        if p is None:
            continue
        for pid in plist:
            title = (prods.get(pid) or (None, {}))[0]
            if title and title.strip():
                pids.append(pid)
                titles.append(title.strip())
                pos.append(p)
                break
    return pids, titles, np.array(pos, dtype=np.int64)


def _heldout(pid: str, frac: float) -> bool:
    return int(hashlib.sha256(pid.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < frac


def _fit(t: np.ndarray, x: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    mu_t = t.mean(axis=0)
    tc = (t - mu_t).astype(np.float64)
    xc = (x - x.mean(axis=0)).astype(np.float64)
    a = tc.T @ tc + lam * np.eye(tc.shape[1])
    w = np.linalg.solve(a, tc.T @ xc)
    return w.astype(np.float32), mu_t.astype(np.float32)


def project(t: np.ndarray, w: np.ndarray, mu_t: np.ndarray) -> np.ndarray:
    return l2_normalize((np.atleast_2d(t) - mu_t) @ w)


def recall_at_k(
    queries: np.ndarray, query_pids: list[str], gallery: np.ndarray, gallery_pids: list[str], k: int = 10
) -> float:
    """Share of queries whose product is among the top-``k`` distinct products of the gallery."""
    if not len(query_pids):
        return float("nan")
    sims = queries @ gallery.T
    hits = 0
    order = np.argsort(-sims, axis=1)[:, : 20 * k]
    for i, pid in enumerate(query_pids):
        seen: list[str] = []
        for j in order[i]:
            g = gallery_pids[j]
            if g not in seen:
                seen.append(g)
                if len(seen) == k:
                    break
        hits += pid in seen
    return hits / len(query_pids)


def train_projection(
    catalog: Any, searcher: CatalogSearch, *, holdout: float = 0.2, text_model: str = TEXT_MODEL
) -> dict[str, Any]:
    """Train and store the projection for the searcher's model; returns its metadata."""
    if not 0.0 <= holdout < 1.0:
        raise ConfigError("holdout must be in [0, 1)")
    t0 = time.perf_counter()
    pids, titles, pos = titled_pairs(searcher)
    if len(pids) < 20:
        raise EmptyCatalogError(
            f"text projection needs at least 20 embedded images with product titles, found {len(pids)}"
        )
    enc = _text_encoder(text_model)
    uniq = list(dict.fromkeys(titles))
    temb = np.asarray(enc.encode(uniq), dtype=np.float32)
    row = {t: i for i, t in enumerate(uniq)}
    t_all = temb[[row[t] for t in titles]]
    x_all = l2_normalize(np.asarray(searcher.data.matrix()[pos]))
    test = np.array([_heldout(p, holdout) for p in pids], dtype=bool)
    scores: dict[str, float] = {}
    lam_best = LAMBDAS[len(LAMBDAS) // 2]
    r_best = float("nan")
    if test.any() and (~test).sum() >= 20:
        # one query per held-out product; the gallery is the whole catalog
        first: dict[str, int] = {}
        for i in np.flatnonzero(test):
            first.setdefault(pids[i], int(i))
        q_idx = np.array(list(first.values()))
        for lam in LAMBDAS:
            w, mu = _fit(t_all[~test], x_all[~test], lam)
            r = recall_at_k(project(t_all[q_idx], w, mu), [pids[i] for i in q_idx], x_all, pids)
            scores[str(lam)] = round(r, 4)
            if np.isnan(r_best) or r > r_best:
                r_best, lam_best = r, lam
    w, mu = _fit(t_all, x_all, lam_best)
    npz, meta_path = _paths(catalog.settings.home, searcher)
    npz.parent.mkdir(parents=True, exist_ok=True)
    tmp = npz.with_name(npz.stem + ".tmp.npz")
    np.savez(tmp, w=w, mu_t=mu)
    tmp.replace(npz)
    meta = {
        "method": "ridge (centred MiniLM title -> centred image embedding)",
        "model_id": searcher.data.model_id,
        "version": searcher.data.version,
        "text_model": text_model,
        "text_version": getattr(enc, "version", None),
        "pairs": int(len(pids)),
        "products": len(set(pids)),
        "lambda": lam_best,
        "holdout_fraction": holdout,
        "heldout_products": int(len({p for p, t in zip(pids, test, strict=True) if t})),
        "heldout_recall_at_10": None if np.isnan(r_best) else round(r_best, 4),
        "recall_by_lambda": scores,
        "seconds": round(time.perf_counter() - t0, 2),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    from catalens.index.faiss_index import atomic_write_text

    atomic_write_text(meta_path, json.dumps(meta, indent=2))
    return meta


def load_projection(
    catalog: Any, searcher: CatalogSearch
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
    npz, meta_path = _paths(catalog.settings.home, searcher)
    if not npz.exists() or not meta_path.exists():
        return None
    meta = json.loads(meta_path.read_text())
    with np.load(npz) as data:
        return data["w"], data["mu_t"], meta


def text_query_vector(catalog: Any, searcher: CatalogSearch, text: str) -> np.ndarray:
    """The image-space query vector of ``text`` for the searcher's model."""
    if not text or not text.strip():
        raise ConfigError("empty text query")
    from catalens.models import get_spec

    try:
        spec = get_spec(searcher.model)
    except Exception:  # unknown names fall back to the projection
        spec = None
    if spec is not None and getattr(spec, "has_text", False) and getattr(spec, "has_image", True):
        vec = np.asarray(_text_encoder(searcher.model).encode([text]), dtype=np.float32)
        if vec.shape[1] == searcher.data.dim:
            return l2_normalize(vec)[0]
    proj = load_projection(catalog, searcher)
    if proj is None:
        raise TextSearchUnavailableError(
            f"model {searcher.model!r} has no text tower and no text projection is trained for it; "
            "run `catalens search-train-text` first (it learns one from the catalog's product titles)"
        )
    w, mu, meta = proj
    n_now = len(titled_pairs(searcher)[0])
    if n_now > int(meta.get("pairs", 0)) * (1 + RETRAIN_GROWTH):
        train_projection(catalog, searcher, text_model=meta.get("text_model", TEXT_MODEL))
        w, mu, meta = load_projection(catalog, searcher)  # type: ignore[misc]
    t = np.asarray(_text_encoder(meta.get("text_model", TEXT_MODEL)).encode([text]), dtype=np.float32)
    return project(t, w, mu)[0]
