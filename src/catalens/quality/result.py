"""Result types of the quality checks: one :class:`CheckResult` per check, one :class:`ImageQC` per image."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# "error": the check itself could not run on the image (it raised). It is the most severe verdict,
# so an image nobody could check never passes a gate (QC fails closed).
Verdict = Literal["pass", "warn", "fail", "error"]
VERDICTS: tuple[Verdict, ...] = ("pass", "warn", "fail", "error")
_RANK = {"pass": 0, "warn": 1, "fail": 2, "error": 3}


def worst(verdicts: list[str]) -> Verdict:
    """The most severe of ``verdicts`` ("pass" for an empty list)."""
    best: Verdict = "pass"
    for v in verdicts:
        if _RANK[v] > _RANK[best]:
            best = v  # type: ignore[assignment]
    return best


def grade(score: float, warn: float | None, fail: float | None, *, higher_is_worse: bool) -> Verdict:
    """Verdict of ``score`` against a warn and a fail threshold (either may be None = off)."""

    def beyond(limit: float | None) -> bool:
        if limit is None:
            return False
        return score >= limit if higher_is_worse else score <= limit

    if beyond(fail):
        return "fail"
    if beyond(warn):
        return "warn"
    return "pass"


@dataclass
class CheckResult:
    """The outcome of one check on one image.

    ``score`` is in ``unit`` (documented per check); ``regions`` are optional ``[x0, y0, x1, y1]`` boxes
    in full-resolution pixel coordinates that show where the problem is (text boxes, borders...).
    ``dismissed``: the verdict the check gave when it is an accepted exception (the verdict then
    reads ``pass``; see :mod:`catalens.quality.exceptions`), else None (and absent from the dict).
    """

    check: str
    score: float | None
    unit: str
    verdict: Verdict
    reason: str
    regions: list[list[float]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    dismissed: Verdict | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["dismissed"] is None:
            del d["dismissed"]
        if d["score"] is not None:
            d["score"] = round(float(d["score"]), 5)
        return d


@dataclass
class ImageQC:
    """Every check result of one image; ``verdict`` is the worst one."""

    source: str
    sha256: str | None
    width: int | None
    height: int | None
    format: str | None
    results: list[CheckResult] = field(default_factory=list)
    profile: str = ""

    @property
    def verdict(self) -> Verdict:
        return worst([r.verdict for r in self.results])

    @property
    def file_error(self) -> bool:
        """True when the file itself could not be used (the "file" check failed)."""
        return any(r.check == "file" and r.verdict == "fail" for r in self.results)

    @property
    def issues(self) -> list[CheckResult]:
        return [r for r in self.results if r.verdict != "pass"]

    def result(self, check: str) -> CheckResult | None:
        return next((r for r in self.results if r.check == check), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "profile": self.profile,
            "verdict": self.verdict,
            "issues": [r.check for r in self.issues],
            "dismissed": [r.check for r in self.results if r.dismissed],
            "results": [r.to_dict() for r in self.results],
        }
