"""What the web page shows about catalogued images: tags with confidences, colours, quality verdicts
with reasons, per-image badges for result grids, and the quality dashboard summary.

``InsightsMixin`` adds these as methods of :class:`catalens.api.service.ServiceCatalog`. Everything
reads stored data where it exists (embeddings, ``quality_results``) and computes the rest once per
image (colours, a profile not run yet), keeping results in small in-memory caches.

Tags are computed from the *stored* embedding of the image (one small matrix product per
classifier), so they need no model run; classifiers whose input needs more than the image
embedding (titles, colour features) are scored from the title/colour of the image as well when
the classify package supports it, otherwise skipped with a note.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from typing import Any

from sqlalchemy import select

from catalens.errors import CatalensError, NotFoundError

SEVERITY = {"error": 3, "fail": 2, "warn": 1, "pass": 0}


class ClassifierLoading(CatalensError):
    """A classifier is still loading in the background."""


class _Lru(OrderedDict[Any, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.lock = threading.Lock()

    def get_or(self, key: Any, make: Any) -> Any:
        with self.lock:
            if key in self:
                self.move_to_end(key)
                return self[key]
        value = make()
        with self.lock:
            self[key] = value
            while len(self) > self.size:
                self.popitem(last=False)
        return value


def _caches(cat: Any) -> dict[str, Any]:
    c = cat.__dict__.get("_insight_caches")
    if c is None:
        c = cat.__dict__.setdefault(
            "_insight_caches", {"clf": {}, "colours": _Lru(4096), "qc": _Lru(2048), "lock": threading.Lock()}
        )
    return c


class InsightsMixin:
    """Tags, colours, quality and dashboard data for the web page."""

    # ---- classifiers --------------------------------------------------------------------------
    def tag_classifiers(self) -> list[str]:
        """``builtin`` plus every trained classifier whose input is the image embedding alone."""
        names = ["builtin"]
        try:
            for info in self.classifiers():  # type: ignore[attr-defined]
                names.append(str(info["name"]))
        except CatalensError:
            pass
        return names

    def _classifier(self, name: str, wait: bool = True) -> Any:
        """A loaded classifier, cached by (name, latest version). With ``wait=False`` a classifier
        that is slow to load (``builtin`` reads the model's ImageNet head) loads in the background
        and :class:`ClassifierLoading` is raised until it is there."""
        from catalens.classify.artifact import load_classifier

        cache = _caches(self)
        latest = None
        if name != "builtin":
            latest = next((c.get("latest") for c in self.classifiers() if c["name"] == name), None)  # type: ignore[attr-defined]
            if latest is None:
                raise NotFoundError(f"no classifier named {name!r}")
        key = (name, latest)
        if key in cache["clf"]:
            return cache["clf"][key]
        home = self.settings.home  # type: ignore[attr-defined]
        if wait or name != "builtin":
            clf = load_classifier(home, name)  # no lock held: a slow load never blocks other classifiers
            return cache["clf"].setdefault(key, clf)

        def load() -> None:
            try:
                cache["clf"].setdefault(key, load_classifier(home, name))
            except Exception as exc:  # noqa: BLE001 - reported on the next request
                cache["clf_error"] = exc
            cache.pop("loader", None)

        if "clf_error" in cache:
            raise cache.pop("clf_error")
        with cache["lock"]:
            if cache.get("loader") is None:
                cache["loader"] = threading.Thread(target=load, name=f"load-{name}", daemon=True)
                cache["loader"].start()
        raise ClassifierLoading(f"classifier {name!r} is loading; try again in a few seconds")

    def _embedded(self, clf: Any, shas: list[str]) -> tuple[list[str], Any]:
        import numpy as np

        engine = self.searcher(clf.model)  # type: ignore[attr-defined]
        keep, rows = [], []
        for sha in shas:
            v = engine.stored_vector(sha)
            if v is not None:
                keep.append(sha)
                rows.append(v)
        mat = np.stack(rows).astype(np.float32) if rows else np.zeros((0, clf.dim), np.float32)
        return keep, mat

    def _predict(
        self, name: str, shas: list[str], top_k: int = 3, wait: bool = True
    ) -> tuple[Any, dict[str, dict[str, Any]]]:
        """(classifier, sha -> {field: prediction dict}) from stored embeddings."""
        from catalens.classify.predict import field_probas, predict_rows

        clf = self._classifier(name, wait)
        if getattr(clf, "input", "image") != "image":
            raise NotFoundError(
                f"classifier {name!r} uses {clf.input} inputs; tags here come from image embeddings only"
            )
        keep, mat = self._embedded(clf, shas)
        if not keep:
            return clf, {}
        from catalens.classify.service import has_small_heads, image_sizes

        sizes = image_sizes(self, keep) if has_small_heads(clf) else None
        rows = predict_rows(clf, field_probas(clf, mat, sizes=sizes), top_k=top_k, sizes=sizes)
        return clf, {h: {f: fp.to_dict() for f, fp in r.items()} for h, r in zip(keep, rows, strict=True)}

    def image_tags(self, sha: str, classifiers: list[str] | None = None, top_k: int = 3) -> dict[str, Any]:
        """Predicted fields with calibrated confidences for a catalogued image, per classifier."""
        self.image_info(sha)  # type: ignore[attr-defined]
        out: list[dict[str, Any]] = []
        for name in classifiers or self.tag_classifiers():
            try:
                clf, preds = self._predict(name, [sha], top_k, wait=False)
            except ClassifierLoading as exc:
                out.append({"classifier": name, "fields": {}, "loading": True, "note": str(exc)})
                continue
            except CatalensError as exc:
                out.append({"classifier": name, "fields": {}, "note": str(exc)})
                continue
            note = None if sha in preds else f"no stored embedding for model {clf.model!r}"
            entry = {"classifier": name, "model": clf.model, "fields": preds.get(sha, {})}
            out.append(entry | ({"note": note} if note else {}))
        return {"sha256": sha, "classifiers": out}

    def classify_image(self, path: Any, classifier: str = "builtin", top_k: int = 3) -> dict[str, Any]:
        """``Catalog.classify`` of one image file with the classifier kept loaded between requests."""
        from catalens.classify.predict import predict_rows
        from catalens.classify.service import probas_images
        from catalens.imageio import open_image

        if "+" in classifier or "@" in classifier:  # ensembles and pinned versions: the general path
            return dict(self.classify([path], classifier, top_k=top_k)[0])  # type: ignore[attr-defined]
        clf = self._classifier(classifier)
        image = open_image(path).image
        probs = probas_images(self, clf, [image])
        row = predict_rows(clf, probs, top_k=top_k, sizes=[image.size])[0]
        return {
            "source": str(path),
            "classifier": clf.name,
            "fields": {f: fp.to_dict() for f, fp in row.items()},
        }

    # ---- colours ------------------------------------------------------------------------------
    def image_colours(self, sha: str) -> dict[str, Any]:
        """Dominant product colours of a catalogued image (computed once, then cached)."""
        path, _ = self.image_file(sha)  # type: ignore[attr-defined]
        return dict(_caches(self)["colours"].get_or(sha, lambda: self.colours(path)))  # type: ignore[attr-defined]

    # ---- quality ------------------------------------------------------------------------------
    def _stored_qc(self, shas: list[str], profile: str | None = None) -> list[Any]:
        """Stored results of these images, accepted exceptions applied (a dismissed check reads
        ``pass`` with ``dismissed``, as in :func:`catalens.quality.store.load_results`)."""
        from catalens.quality.exceptions import apply_exceptions, dismissed_pairs
        from catalens.quality.tables import QualityResultRecord

        rows = []
        with self.db.session() as s:  # type: ignore[attr-defined]
            for i in range(0, len(shas), 500):
                q = select(QualityResultRecord).where(QualityResultRecord.image_sha256.in_(shas[i : i + 500]))
                if profile:
                    q = q.where(QualityResultRecord.profile == profile)
                rows.extend(
                    {
                        "sha256": r.image_sha256,
                        "profile": r.profile,
                        "verdict": r.verdict,
                        "issues": list(r.issues or []),
                        "results": list(r.results or []),
                        "checked_at": r.created_at.isoformat() if r.created_at else None,
                        "stored": True,
                    }
                    for r in s.scalars(q.order_by(QualityResultRecord.id))
                )
        dismissed = dismissed_pairs(self.db) if rows else {}  # type: ignore[attr-defined]
        return [apply_exceptions(r, dismissed) for r in rows]

    def image_quality(self, sha: str, profile: str | None = None) -> dict[str, Any]:
        """Quality verdicts with reasons: the stored results of every profile run on this image, or,
        for a ``profile`` not run on it yet, the checks computed now (not stored)."""
        path, _ = self.image_file(sha)  # type: ignore[attr-defined]
        stored = self._stored_qc([sha], profile)
        if stored or not profile:
            return {"sha256": sha, "profiles": stored}

        def compute() -> dict[str, Any]:  # cached without the exceptions: they apply on each read
            report = self.qc([path], profile=profile, store=False, exceptions=False)  # type: ignore[attr-defined]
            d = report.images[0].to_dict()
            return {
                "sha256": sha,
                "profile": d["profile"] or profile,
                "verdict": d["verdict"],
                "issues": d["issues"],
                "results": d["results"],
                "checked_at": None,
                "stored": False,
            }

        from catalens.quality.exceptions import apply_exceptions, dismissed_pairs

        row = _caches(self)["qc"].get_or((sha, profile), compute)
        return {"sha256": sha, "profiles": [apply_exceptions(row, dismissed_pairs(self.db))]}  # type: ignore[attr-defined]

    def quality_profiles(self) -> list[str]:
        """Profile names available to this catalogue (shipped and ``<home>/profiles``)."""
        from importlib import resources

        names = {
            p.name.rsplit(".", 1)[0]
            for p in resources.files("catalens.quality").joinpath("profiles").iterdir()
            if p.name.endswith((".yaml", ".yml"))
        }
        user = self.settings.home / "profiles"  # type: ignore[attr-defined]
        if user.is_dir():
            names |= {p.stem for p in user.glob("*.y*ml")}
        return sorted(names)

    # ---- grids --------------------------------------------------------------------------------
    def image_badges(
        self, shas: list[str], profile: str | None = None, classifier: str | None = None
    ) -> dict[str, Any]:
        """Per image: the stored quality verdict (worst over profiles unless ``profile``) with its
        issues, and the top label per field of ``classifier`` (default: the newest trained one, else
        ``builtin``). One database query and one matrix product for the whole grid."""
        shas = list(dict.fromkeys(shas))
        out: dict[str, dict[str, Any]] = {h: {"quality": None, "tags": []} for h in shas}
        for row in self._stored_qc(shas, profile):
            cur = out[row["sha256"]]["quality"]
            if cur is None or SEVERITY[row["verdict"]] > SEVERITY[cur["verdict"]]:
                out[row["sha256"]]["quality"] = {k: row[k] for k in ("profile", "verdict", "issues")}
        name = classifier
        if name is None:
            trained = [n for n in self.tag_classifiers() if n != "builtin"]
            name = trained[-1] if trained else "builtin"
        try:
            _clf, preds = self._predict(name, shas, top_k=1, wait=False)
        except CatalensError:
            preds = {}
        for h, fields in preds.items():
            out[h]["tags"] = [
                {"field": f, "label": p["label"], "prob": p["prob"], "needs_review": p["needs_review"]}
                for f, p in fields.items()
            ]
        return {"classifier": name, "profile": profile, "images": out}

    # ---- dashboard ----------------------------------------------------------------------------
    def qc_summary(
        self, profile: str | None = None, worst: int = 24, offset: int = 0, check: str | None = None
    ) -> dict[str, Any]:
        """Counts by verdict and by issue over the stored results, one page (``offset``, ``worst``
        rows; ``worst_total`` in all) of the worst images (most failed checks, then warnings; only
        those with ``check`` failing when given) with their reasons and products, and the profiles
        that have results. Dismissed checks (accepted exceptions) count as passing and are listed
        as ``dismissed`` reasons."""
        from catalens.catalog.schema import ProductImage

        every = self.qc_results()  # type: ignore[attr-defined]
        profiles = Counter(r["profile"] for r in every)
        if profile is None and profiles:  # one profile at a time: the one run on most images
            profile = sorted(profiles.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        rows = [r for r in every if r["profile"] == profile]
        verdicts = Counter(r["verdict"] for r in rows)
        issues: dict[str, Counter[str]] = {}
        for r in rows:
            for res in r["results"]:
                if res.get("verdict") in ("warn", "fail", "error"):
                    issues.setdefault(res["check"], Counter())[res["verdict"]] += 1

        def badness(r: dict[str, Any]) -> tuple[int, int, float]:
            v = [x.get("verdict") for x in r["results"]]
            return (
                v.count("error") + v.count("fail"),
                v.count("warn"),
                -min((x.get("score") or 0.0) for x in r["results"]),
            )

        failing = [
            r
            for r in rows
            if r["verdict"] != "pass"
            and (not check or any(x["check"] == check and x.get("verdict") != "pass" for x in r["results"]))
        ]
        bad = sorted(failing, key=badness, reverse=True)[offset : offset + worst]
        shas = [r["sha256"] for r in bad if r["sha256"]]
        owners: dict[str, list[str]] = {}
        if shas:
            with self.db.session() as s:  # type: ignore[attr-defined]
                q = select(ProductImage.image_sha256, ProductImage.product_id).where(
                    ProductImage.image_sha256.in_(shas)
                )
                for h, pid in s.execute(q):
                    owners.setdefault(h, []).append(pid)
        worst_rows = [
            {
                "sha256": r["sha256"],
                "source": r["source"],
                "profile": r["profile"],
                "verdict": r["verdict"],
                "products": owners.get(r["sha256"], []),
                "reasons": [
                    {"check": x["check"], "verdict": x["verdict"], "reason": x.get("reason", "")}
                    for x in r["results"]
                    if x.get("verdict") in ("warn", "fail", "error")
                ]
                + [
                    {"check": x["check"], "verdict": "dismissed", "reason": x.get("reason", "")}
                    for x in r["results"]
                    if x.get("dismissed")
                ],
            }
            for r in bad
        ]
        by_issue = sorted(
            (
                {"check": c, "fail": n["fail"], "warn": n["warn"], "error": n["error"]}
                for c, n in issues.items()
            ),
            key=lambda d: (-(d["fail"] + d["warn"] + d["error"]), d["check"]),
        )
        return {
            "profile": profile,
            "profiles": [{"name": p, "images": n} for p, n in sorted(profiles.items())],
            "available_profiles": self.quality_profiles(),
            "images": len(rows),
            "verdicts": {v: verdicts.get(v, 0) for v in ("pass", "warn", "fail", "error")},
            "by_issue": by_issue,
            "dismissed": sum(1 for r in rows for x in r["results"] if x.get("dismissed")),
            "worst_total": len(failing),
            "offset": offset,
            "worst": worst_rows,
        }
