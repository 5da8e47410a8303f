"""What the web page shows about cataloged images, cached for the service: tags with confidences,
colours, quality verdicts with reasons and per-image badges for result grids. (The stored quality
results and the dashboard summary are the core's: ``Catalog.qc_stored`` / ``qc_summary``.)

``InsightsMixin`` adds these as methods of :class:`catalens.api.service_catalog.ServiceCatalog`. Everything
reads stored data where it exists (embeddings, ``quality_results``) and computes the rest once per
image (colours, a profile not run yet), keeping results in small in-memory caches.

Tags are computed from the *stored* embedding of the image (one small matrix product per
classifier), so they need no model run; classifiers whose input needs more than the image
embedding (titles, colour features) are scored from the title/colour of the image as well when
the classify package supports it, otherwise skipped with a note.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from catalens.errors import CatalensError, NotFoundError
from catalens.quality.summary import SEVERITY

if TYPE_CHECKING:
    import numpy as np

    from catalens.classify.classifier import Classifier
    from catalens.classify.colour.features import ColourResult

    # the mixin reaches the catalog's other mixins (classifiers, searcher, image_file, qc, ...): typed
    # as a Catalog subclass, which it is at run time (ServiceCatalog(InsightsMixin, Catalog))
    from catalens.core import Catalog as _CatalogBase
else:
    _CatalogBase = object


class ClassifierLoading(CatalensError):
    """A classifier is still loading in the background."""


V = TypeVar("V")


class _Lru(OrderedDict[Any, V]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.lock = threading.Lock()

    def get_or(self, key: Any, make: Callable[[], V]) -> V:
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


class _Caches(TypedDict, total=False):
    clf: dict[tuple[str, str | None], Classifier]  # (name, latest version) -> loaded classifier
    colours: _Lru[ColourResult]
    qc: _Lru[dict[str, Any]]
    lock: threading.Lock
    loader: threading.Thread  # loading a classifier in the background (absent: none)
    clf_error: Exception  # its error, raised by the next request


def _caches(cat: InsightsMixin) -> _Caches:
    c: _Caches | None = cat.__dict__.get("_insight_caches")
    if c is None:
        c = cat.__dict__.setdefault(
            "_insight_caches", {"clf": {}, "colours": _Lru(4096), "qc": _Lru(2048), "lock": threading.Lock()}
        )
    return c


class InsightsMixin(_CatalogBase):
    """Tags, colours, quality and dashboard data for the web page."""

    # ---- classifiers --------------------------------------------------------------------------
    def tag_classifiers(self) -> list[str]:
        """``builtin`` plus every trained classifier (those that need titles answer with a note)."""
        names = ["builtin"]
        try:
            for info in self.classifiers():
                names.append(info.name)
        except CatalensError:
            pass
        return names

    def _classifier(self, name: str, wait: bool = True) -> Classifier:
        """A loaded classifier, cached by (name, latest version). With ``wait=False`` a classifier
        that is slow to load (``builtin`` reads the model's ImageNet head) loads in the background
        and :class:`ClassifierLoading` is raised until it is there."""
        from catalens.classify.classifier import load_classifier

        cache = _caches(self)
        latest = None
        if name != "builtin":
            latest = next((c.latest for c in self.classifiers() if c.name == name), None)
            if latest is None:
                raise NotFoundError(f"no classifier named {name!r}")
        key = (name, latest)
        if key in cache["clf"]:
            return cache["clf"][key]
        home = self.settings.home
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

    def _embedded(self, clf: Classifier, shas: list[str]) -> tuple[list[str], np.ndarray]:
        import numpy as np

        engine = self.searcher(clf.model)
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
    ) -> tuple[Classifier, dict[str, dict[str, Any]]]:
        """(classifier, sha -> {field: prediction dict}) from stored embeddings."""
        from catalens.classify.predict import field_probas, predict_rows

        clf = self._classifier(name, wait)
        kinds = set(getattr(clf, "input", "image").split("+"))
        if kinds - {"image", "colour"}:
            raise NotFoundError(
                f"classifier {name!r} uses {clf.input} inputs; tags here come from the images alone "
                "(embeddings and colour descriptors), not titles"
            )
        keep, mat = self._embedded(clf, shas)
        if not keep:
            return clf, {}
        if "colour" in kinds:  # stored descriptors (computed once for an image not seen before)
            import numpy as np

            from catalens.classify.colour.calibration import descriptor_version
            from catalens.classify.train import colour_input

            mat = np.hstack([mat, colour_input(self, keep, descriptor_version(clf))])
        from catalens.classify.catalog_scoring import has_small_heads, image_sizes

        sizes = image_sizes(self, keep) if has_small_heads(clf) else None
        rows = predict_rows(clf, field_probas(clf, mat, sizes=sizes), top_k=top_k, sizes=sizes)
        return clf, {h: {f: fp.to_dict() for f, fp in r.items()} for h, r in zip(keep, rows, strict=True)}

    def image_tags(self, sha: str, classifiers: list[str] | None = None, top_k: int = 3) -> dict[str, Any]:
        """Predicted fields with calibrated confidences for a cataloged image, per classifier."""
        self.image_info(sha)
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
        from catalens.classify.catalog_scoring import probas_images
        from catalens.classify.predict import predict_rows
        from catalens.imageio import open_image

        if "+" in classifier or "@" in classifier:  # ensembles and pinned versions: the general path
            return self.classify([path], classifier, top_k=top_k)[0].to_dict()
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
        """Dominant product colours of a cataloged image (computed once, then cached)."""
        path, _ = self.image_file(sha)
        return _caches(self)["colours"].get_or(sha, lambda: self.colours(path)).to_dict()

    # ---- quality ------------------------------------------------------------------------------
    def image_quality(self, sha: str, profile: str | None = None) -> dict[str, Any]:
        """Quality verdicts with reasons: the stored results of every profile run on this image, or,
        for a ``profile`` not run on it yet, the checks computed now (not stored)."""
        path, _ = self.image_file(sha)
        stored = self.qc_stored([sha], profile)
        if stored or not profile:
            return {"sha256": sha, "profiles": stored}

        def compute() -> dict[str, Any]:  # cached without the exceptions: they apply on each read
            report = self.qc([path], profile=profile, store=False, exceptions=False)
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
        return {"sha256": sha, "profiles": [apply_exceptions(row, dismissed_pairs(self.db))]}

    # ---- grids --------------------------------------------------------------------------------
    def image_badges(
        self, shas: list[str], profile: str | None = None, classifier: str | None = None
    ) -> dict[str, Any]:
        """Per image: the stored quality verdict (worst over profiles unless ``profile``) with its
        issues, and the top label per field of ``classifier`` (default: the newest trained one, else
        ``builtin``). One database query and one matrix product for the whole grid."""
        shas = list(dict.fromkeys(shas))
        out: dict[str, dict[str, Any]] = {h: {"quality": None, "tags": []} for h in shas}
        for row in self.qc_stored(shas, profile):
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
