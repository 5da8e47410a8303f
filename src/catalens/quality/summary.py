"""Reading stored quality results back: per image (accepted exceptions applied), the profiles a catalog
can use, and the dashboard summary (counts by verdict and issue, the worst images with reasons and
products). Used by ``Catalog.qc_stored`` / ``qc_summary`` / ``quality_profiles`` and so by the CLI
(``catalens qc summary``), the REST API and the web page alike.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import select

SEVERITY = {"error": 3, "fail": 2, "warn": 1, "pass": 0}
ISSUE_VERDICTS = ("warn", "fail", "error")


def stored_results(db: Any, shas: list[str], profile: str | None = None) -> list[dict[str, Any]]:
    """Stored results of these images (every profile, or ``profile``), accepted exceptions applied (a
    dismissed check reads ``pass`` with ``dismissed``, as in :func:`catalens.quality.store.load_results`)."""
    from catalens.quality.exceptions import apply_exceptions, dismissed_pairs
    from catalens.quality.tables import QualityResultRecord

    rows: list[dict[str, Any]] = []
    with db.session() as s:
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
    dismissed = dismissed_pairs(db) if rows else {}
    return [apply_exceptions(r, dismissed) for r in rows]


def profile_names(home: Path) -> list[str]:
    """Profile names available to a catalog home: the shipped ones and ``<home>/profiles/*.yaml``."""
    from importlib import resources

    names = {
        p.name.rsplit(".", 1)[0]
        for p in resources.files("catalens.quality").joinpath("profiles").iterdir()
        if p.name.endswith((".yaml", ".yml"))
    }
    user = home / "profiles"
    if user.is_dir():
        names |= {p.stem for p in user.glob("*.y*ml")}
    return sorted(names)


def _badness(r: dict[str, Any]) -> tuple[int, int, float]:
    v = [x.get("verdict") for x in r["results"]]
    return (
        v.count("error") + v.count("fail"),
        v.count("warn"),
        -min((x.get("score") or 0.0) for x in r["results"]) if r["results"] else 0.0,
    )


def _owners(db: Any, shas: list[str]) -> dict[str, list[str]]:
    from catalens.catalog.schema import ProductImage

    owners: dict[str, list[str]] = {}
    if shas:
        with db.session() as s:
            q = select(ProductImage.image_sha256, ProductImage.product_id).where(
                ProductImage.image_sha256.in_(shas)
            )
            for h, pid in s.execute(q):
                owners.setdefault(h, []).append(pid)
    return owners


def _reasons(r: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"check": x["check"], "verdict": x["verdict"], "reason": x.get("reason", "")}
        for x in r["results"]
        if x.get("verdict") in ISSUE_VERDICTS
    ] + [
        {"check": x["check"], "verdict": "dismissed", "reason": x.get("reason", "")}
        for x in r["results"]
        if x.get("dismissed")
    ]


def summarise(
    db: Any,
    every: list[dict[str, Any]],
    *,
    profile: str | None = None,
    worst: int = 24,
    offset: int = 0,
    check: str | None = None,
    available: list[str] | None = None,
) -> dict[str, Any]:
    """The dashboard summary of ``every`` stored result (:func:`catalens.quality.store.load_results`)
    for one ``profile`` (default: the one run on most images): counts by verdict and by issue, one page
    (``offset``, ``worst`` rows; ``worst_total`` in all) of the worst images (most failed checks, then
    warnings; only those with ``check`` not passing when given) with their reasons and products, and
    the profiles that have results. Dismissed checks count as passing, listed as ``dismissed``."""
    profiles = Counter(r["profile"] for r in every)
    if profile is None and profiles:
        profile = sorted(profiles.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    rows = [r for r in every if r["profile"] == profile]
    verdicts = Counter(r["verdict"] for r in rows)
    issues: dict[str, Counter[str]] = {}
    for r in rows:
        for res in r["results"]:
            if res.get("verdict") in ISSUE_VERDICTS:
                issues.setdefault(res["check"], Counter())[res["verdict"]] += 1
    failing = [
        r
        for r in rows
        if r["verdict"] != "pass"
        and (not check or any(x["check"] == check and x.get("verdict") != "pass" for x in r["results"]))
    ]
    bad = sorted(failing, key=_badness, reverse=True)[offset : offset + worst]
    owners = _owners(db, [r["sha256"] for r in bad if r["sha256"]])
    worst_rows = [
        {
            "sha256": r["sha256"],
            "source": r["source"],
            "profile": r["profile"],
            "verdict": r["verdict"],
            "products": owners.get(r["sha256"], []),
            "reasons": _reasons(r),
        }
        for r in bad
    ]
    rows_by_issue: list[dict[str, Any]] = [
        {"check": c, "fail": n["fail"], "warn": n["warn"], "error": n["error"]} for c, n in issues.items()
    ]
    by_issue = sorted(
        rows_by_issue,
        key=lambda d: (-(d["fail"] + d["warn"] + d["error"]), d["check"]),
    )
    return {
        "profile": profile,
        "profiles": [{"name": p, "images": n} for p, n in sorted(profiles.items())],
        "available_profiles": list(available or []),
        "images": len(rows),
        "verdicts": {v: verdicts.get(v, 0) for v in ("pass", *ISSUE_VERDICTS)},
        "by_issue": by_issue,
        "dismissed": sum(1 for r in rows for x in r["results"] if x.get("dismissed")),
        "worst_total": len(failing),
        "offset": offset,
        "worst": worst_rows,
    }
