"""One duplicates interface and one finding type, for every way catalens finds duplicate photos.

Three methods, one shape:

* :class:`HashDuplicates` (``hash``) - the same file bytes, or a 64-bit difference hash within
  ``max_distance`` bits (no model);
* :class:`CopyDuplicates` (``copy``) - the copy verdicts of :mod:`catalens.search.dedup` on the photos'
  copy descriptors: candidates by the descriptors' gray thumbnails, aligned and verified as
  ``catalens dedup`` does (no embedding model);
* the catalog's embedding dedup (``catalens dedup``, :func:`catalens.search.dedup.find_duplicates`),
  whose groups :func:`findings_from_report` turns into the same findings.

A method fingerprints each photo once (``fingerprint``: in the QC workers, from the decoded photo) and
then compares the set (``find``); each returns, per photo that duplicates an earlier one, a
:class:`DuplicateFinding` naming that earlier photo. The QC ``duplicates`` check reads its verdicts
from these findings, whatever the method.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from catalens.registry import Registry

if TYPE_CHECKING:
    from catalens.quality.context import QCImage
    from catalens.search.dedup import DedupReport

Fingerprint = dict[str, Any]


@dataclass
class DuplicateFinding:
    """Photo ``index`` duplicates the earlier photo ``of`` (indices into the set)."""

    index: int
    of: int
    kind: str  # "exact" (same file bytes) | "near" | a catalog group's kind
    score: float
    unit: str
    note: str = ""  # what measured it, e.g. "hash distance 3", "structure 0.97"
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "of": self.of,
            "kind": self.kind,
            "score": round(float(self.score), 4),
            "unit": self.unit,
            "note": self.note,
        }


def dhash(gray: np.ndarray) -> int:
    """64-bit difference hash: 9x8 area-downscaled luma, 1 bit per horizontal neighbour comparison."""
    import cv2

    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def _exact(fps: Sequence[Fingerprint | None]) -> dict[int, int]:
    """Later index -> the first index with the same file bytes."""
    first: dict[str, int] = {}
    out: dict[int, int] = {}
    for i, fp in enumerate(fps):
        sha = fp.get("sha256") if fp else None
        if not sha:
            continue
        if sha in first:
            out[i] = first[sha]
        else:
            first[sha] = i
    return out


class SetDuplicates:
    """Duplicates within a set of photos: ``fingerprint`` each photo, then ``find`` over the set."""

    name: ClassVar[str] = ""
    unit: ClassVar[str] = ""

    def __init__(self, **params: Any) -> None:
        self.params = params

    def fingerprint(self, img: QCImage) -> Fingerprint:
        return {"sha256": img.sha256, "dhash": dhash(img.gray)}

    def find(
        self, fps: Sequence[Fingerprint | None], sources: Sequence[str] | None = None
    ) -> list[DuplicateFinding]:
        """Findings for the photos that duplicate an earlier one (``None``: an undecodable photo;
        ``sources``: the photos' files, for methods that read them again)."""
        return self.scan(fps, sources)[0]

    def scan(
        self, fps: Sequence[Fingerprint | None], sources: Sequence[str] | None = None
    ) -> tuple[list[DuplicateFinding], dict[int, float]]:
        """The findings and, for every photo the method could compare, the score a photo that
        duplicates nothing gets (in one pass)."""
        raise NotImplementedError


SET_METHODS: Registry[type[SetDuplicates]] = Registry("duplicates method")


@SET_METHODS.decorator()
class HashDuplicates(SetDuplicates):
    """The same bytes, or difference hashes within ``max_distance`` bits (score: the distance)."""

    name = "hash"
    unit = "hamming distance (bits of 64)"

    def scan(
        self, fps: Sequence[Fingerprint | None], sources: Sequence[str] | None = None
    ) -> tuple[list[DuplicateFinding], dict[int, float]]:
        """Findings and each decodable photo's nearest hash distance to another photo (64 alone)."""
        idx = [i for i, fp in enumerate(fps) if fp is not None]
        if not idx:
            return [], {}
        hashes = np.array([fps[i]["dhash"] for i in idx], dtype=np.uint64)  # type: ignore[index]
        exact = _exact(fps)
        maxd = int(self.params.get("max_distance", 4))
        out, nearest_of = [], {}
        for k, i in enumerate(idx):
            dist = np.unpackbits((hashes ^ hashes[k]).view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
            dist[k] = 65
            nearest = min(int(dist.min()) if len(dist) > 1 else 64, 64)
            nearest_of[i] = float(nearest)
            if i in exact:
                out.append(DuplicateFinding(i, exact[i], "exact", 0.0, self.unit))
                continue
            earlier = [j for j in np.flatnonzero(dist <= maxd) if j < k]
            if earlier:
                j = int(earlier[0])
                out.append(
                    DuplicateFinding(
                        i, idx[j], "near", float(nearest), self.unit, f"hash distance {int(dist[j])}"
                    )
                )
        return out, nearest_of


@SET_METHODS.decorator()
class CopyDuplicates(SetDuplicates):
    """The copy verdicts of :mod:`catalens.search.dedup` (score: the aligned structure, 1 = exact).

    Candidates: each photo's ``neighbours`` nearest photos of the set by the descriptor's gray
    thumbnail with correlation >= ``min_similarity``; every candidate is aligned (no embedding)."""

    name = "copy"
    unit = "copy score (1 = exact)"

    def fingerprint(self, img: QCImage) -> Fingerprint:
        fp = super().fingerprint(img)
        if img.decoded is not None:
            from catalens.search import copy_descriptor

            fp["copy"] = copy_descriptor.describe(img.decoded.image)
        return fp

    def scan(
        self, fps: Sequence[Fingerprint | None], sources: Sequence[str] | None = None
    ) -> tuple[list[DuplicateFinding], dict[int, float]]:
        """Findings (score: the aligned structure) and 0.0 for every photo with a descriptor."""
        from catalens.search import copy_descriptor, copydetail
        from catalens.search.dedup import DedupOptions, classify, neighbour_rank, refine, verify
        from catalens.search.neighbours import neighbour_pairs

        idx = [i for i, fp in enumerate(fps) if fp is not None and "copy" in fp]
        described = set(idx)
        exact = {i: j for i, j in _exact(fps).items() if i in described}
        keys = [str(i) for i in idx]
        descs = {str(i): fps[i]["copy"] for i in idx}  # type: ignore[index]
        best: dict[int, tuple[int, float]] = {}  # later photo -> (earlier copy, structure)
        if len(idx) >= 2:
            full = copy_descriptor.parse([descs[k] for k in keys]).full
            assert full is not None
            vec = full.gray.reshape(len(idx), -1).astype(np.float32)
            vec -= vec.mean(axis=1, keepdims=True)
            k_near = int(self.params.get("neighbours", 5))
            ra, rb, sim = neighbour_pairs(vec, k_near, float(self.params.get("min_similarity", 0.5)))
            a = [keys[r] for r in ra]
            b = [keys[r] for r in rb]
            opts = DedupOptions()
            ones = np.ones(len(a), dtype=np.float32)  # no embedding: every candidate is aligned
            ver = verify(descs, a, b, ones, opts)
            nan = np.full(len(a), np.nan, dtype=np.float32)
            verdict = classify(opts, nan, ver)
            paths = list(sources) if sources is not None else None

            def load(key: str) -> copydetail.DetailView | None:  # the full-detail check reads the files again
                return copydetail.load_view(paths[int(key)]) if paths is not None else None

            verdict, _ = refine(opts, nan, ver, verdict, a, b, load, rank=neighbour_rank(ra, rb, sim))
            for k in np.flatnonzero(verdict == "copy"):
                i, j = sorted((idx[int(ra[k])], idx[int(rb[k])]))
                st = float(ver.structure[k])
                if j not in best or i < best[j][0]:
                    best[j] = (i, st)
        out = [DuplicateFinding(i, j, "exact", 1.0, self.unit) for i, j in exact.items()]
        out += [
            DuplicateFinding(i, j, "near", round(st, 4), self.unit, f"structure {st:.2f}")
            for i, (j, st) in best.items()
            if i not in exact
        ]
        return sorted(out, key=lambda f: f.index), {i: 0.0 for i in idx}


def findings_from_report(report: DedupReport, shas: Sequence[str | None]) -> list[DuplicateFinding]:
    """The catalog dedup's groups as findings over the photos ``shas`` (in their order): in each
    group, every member after the first of the set duplicates that first one."""
    order = {sha: i for i, sha in enumerate(shas) if sha}
    out = []
    for group in report.groups:
        members = sorted(
            (order[m["image_sha256"]], m) for m in group.images if m.get("image_sha256") in order
        )
        if len(members) < 2:
            continue
        (first_i, first), rest = members[0], members[1:]
        for i, m in rest:
            pair = next(
                (p for p in group.pairs if {p.a, p.b} == {first["image_sha256"], m["image_sha256"]}), None
            )
            note = ""
            if pair is not None and pair.cosine is not None:
                note = f"cosine {pair.cosine:.3f}, structure {pair.structure:.2f}"
            out.append(
                DuplicateFinding(
                    i, first_i, group.kind, float(group.score), "copy score (1 = exact)", note,
                    {"of_source": first.get("source")},
                )
            )  # fmt: skip
    return out
