"""Write QC results: JSON, CSV (one row per image) and a self-contained HTML report with
thumbnails, grouped by issue (check) and sorted worst score first."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path

from catalens.quality.registry import get_check
from catalens.quality.result import ImageQC
from catalens.quality.runner import QCReport


def write_json(report: QCReport, path: Path) -> None:
    path.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str), encoding="utf-8")


def write_csv(report: QCReport, path: Path) -> None:
    """One row per image: source, verdict, issues, dismissed checks (accepted exceptions: their
    ``<check>_verdict`` reads pass), then ``<check>_verdict`` / ``<check>_score`` columns."""
    checks = sorted({r.check for im in report.images for r in im.results})
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["source", "sha256", "width", "height", "profile", "verdict", "issues", "reasons", "dismissed"]
            + [f"{c}_{k}" for c in checks for k in ("verdict", "score")]
        )
        for im in report.images:
            row = [
                im.source,
                im.sha256 or "",
                im.width or "",
                im.height or "",
                im.profile,
                im.verdict,
                ";".join(r.check for r in im.issues),
                " | ".join(f"{r.check}: {r.reason}" for r in im.issues),
                ";".join(r.check for r in im.results if r.dismissed),
            ]
            for c in checks:
                r = im.result(c)
                row += (
                    [r.verdict, "" if r is None or r.score is None else f"{r.score:.5g}"] if r else ["", ""]
                )
            w.writerow(row)


def _thumb(path: str, size: int = 180) -> str | None:
    try:
        from PIL import Image, ImageOps

        with Image.open(path) as im:
            im.draft("RGB", (size, size))
            im = ImageOps.exif_transpose(im).convert("RGB")
            im.thumbnail((size, size))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=80)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    except Exception:
        return None


_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222} h1{margin:0 0 4px} .muted{color:#666}
.summary span{display:inline-block;margin-right:16px;padding:4px 10px;border-radius:12px;background:#eee}
.error{background:#f4c7ff!important}
.fail{background:#fdd!important}.warn{background:#ffe9b3!important}.pass{background:#dfd!important}
h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.grid{display:flex;flex-wrap:wrap;gap:12px}
.card{width:196px;border:1px solid #ddd;border-radius:6px;padding:6px;font-size:12px;overflow-wrap:anywhere}
.card img{max-width:184px;max-height:184px;display:block;margin:0 auto 4px;background:#f4f4f4}
.card .v{display:inline-block;padding:1px 6px;border-radius:8px;font-weight:600}
.noimg{height:120px;display:flex;align-items:center;justify-content:center;background:#f4f4f4;color:#999}
"""


def write_html(report: QCReport, path: Path, *, max_per_issue: int = 200, title: str | None = None) -> None:
    """Self-contained HTML (thumbnails inlined) grouped by issue, worst score first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    thumbs: dict[str, str | None] = {}
    groups: dict[str, list[tuple[ImageQC, object]]] = {}
    for im in report.images:
        for r in im.issues:
            groups.setdefault(r.check, []).append((im, r))
    c = report.counts
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title or 'catalens qc')}</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title or 'Quality report')}</h1>",
        f"<div class='muted'>profile <b>{html.escape(report.profile)}</b> - {len(report.images)} images - "
        f"{report.seconds:.1f} s</div>",
        "<p class='summary'>"
        + "".join(f"<span class='{k}'>{k}: {c[k]}</span>" for k in ("pass", "warn", "fail", "error"))
        + f"<span>file errors: {c['file_errors']}</span>"
        + f"<span>dismissed: {c['dismissed']}</span></p>",
    ]
    order = sorted(
        groups,
        key=lambda k: (-sum(r.verdict in ("fail", "error") for _, r in groups[k]), -len(groups[k]), k),
    )
    parts.append(
        "<p>" + " ".join(f"<a href='#{k}'>{html.escape(k)} ({len(groups[k])})</a>" for k in order) + "</p>"
    )
    for check in order:
        rows = groups[check]
        try:
            worse_high = get_check(check).higher_is_worse
        except Exception:
            worse_high = True

        def key(item: tuple[ImageQC, object], worse_high: bool = worse_high) -> tuple[int, float]:
            r = item[1]
            s = r.score if r.score is not None else 0.0  # type: ignore[attr-defined]
            rank = {"error": 0, "fail": 1}.get(r.verdict, 2)  # type: ignore[attr-defined]
            return (rank, -s if worse_high else s)

        rows.sort(key=key)
        parts.append(
            f"<h2 id='{check}'>{html.escape(check)} <span class='muted'>({len(rows)} images; "
            f"{'higher' if worse_high else 'lower'} score is worse)</span></h2><div class='grid'>"
        )
        for im, r in rows[:max_per_issue]:
            if im.source not in thumbs:
                thumbs[im.source] = _thumb(im.source) if not im.file_error else None
            t = thumbs[im.source]
            img = f"<img src='{t}' loading='lazy'>" if t else "<div class='noimg'>no preview</div>"
            score = "" if r.score is None else f" score {r.score:.3g}"  # type: ignore[attr-defined]
            parts.append(
                f"<div class='card'>{img}<span class='v {r.verdict}'>{r.verdict}</span>{score}<br>"  # type: ignore[attr-defined]
                f"{html.escape(r.reason)}<br><span class='muted'>{html.escape(im.source)}</span></div>"
            )  # type: ignore[attr-defined]
        if len(rows) > max_per_issue:
            parts.append(f"<p class='muted'>... and {len(rows) - max_per_issue} more (see the JSON/CSV)</p>")
        parts.append("</div>")
    if not groups:
        parts.append("<p>No issues found.</p>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
