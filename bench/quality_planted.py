"""Quality-check benchmark on the planted-issue set: catalens vs cleanvision, side by side.

Builds (or reuses) the planted set from ../shared/data (see quality_planted_set.py) in /tmp, runs
catalens' checks (general profile) and cleanvision on the SAME images of the "test" half (thresholds
were tuned on the "dev" half only), and prints JSON lines:

* per planted type: precision / recall / F1 of the matching check (positives = copies with that
  type planted, negatives = the clean originals), and its false-positive rate on the clean originals;
  cleanvision's numbers for the types it covers (blurry, dark, light, grayscale);
* speed: pixel checks img/s on the 1200 px Myntra originals (2 workers), and with OCR + NSFW on.

Usage: python bench/quality_planted.py [--out /tmp/catalens-planted] [--ocr-originals 40]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality_planted_set import PLANTED_TYPES, build, load_items  # noqa: E402

from catalens.config import Settings  # noqa: E402
from catalens.quality.profiles import load_profile  # noqa: E402
from catalens.quality.runner import QCItem, run_checks  # noqa: E402

CHECK_FOR = {
    "blur_gaussian": "blur", "blur_motion": "blur", "underexposed": "underexposed", "overexposed": "overexposed",
    "low_contrast": "low_contrast", "downscaled": "resolution", "text_overlay": "text", "watermark": "watermark+watermark_visual",
    "border": "border", "busy_background": "background", "grayscale": "grayscale",
}  # fmt: skip
CLEANVISION_FOR = {
    "blur_gaussian": "blurry",
    "blur_motion": "blurry",
    "underexposed": "dark",
    "overexposed": "light",
    "grayscale": "grayscale",
    "low_contrast": "low_information",
}
PIXEL_CHECKS = [
    "file",
    "resolution",
    "aspect_ratio",
    "blur",
    "underexposed",
    "overexposed",
    "low_contrast",
    "grayscale",
    "low_information",
    "border",
    "background",
    "framing",
]


def emit(**kw: object) -> None:
    print(json.dumps(kw), flush=True)


def prf(flag: dict[str, bool], pos: list[str], neg: list[str]) -> dict[str, float]:
    tp = sum(flag[p] for p in pos)
    fp = sum(flag[n] for n in neg)
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / len(pos) if pos else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {
        "precision": round(prec, 4),
        "recall": round(rec, 4),
        "f1": round(f1, 4),
        "fpr_clean": round(fp / len(neg), 4) if neg else 0.0,
        "n_pos": len(pos),
        "n_neg": len(neg),
    }


def install_ocr_cache(path: Path):  # type: ignore[no-untyped-def]
    """Cache OCR boxes per file (sha256) in ``path`` (JSON), keyed also by a hash of the OCR code and
    its side, so a re-run only re-reads images when the OCR itself changed; the watermark check's
    second-look views are cached the same way, per view. Returns the function that saves the cache and
    un-installs it."""
    import hashlib
    import inspect
    from dataclasses import asdict

    import catalens.quality.checks.text as text_mod  # the checks look the readers up here
    import catalens.quality.checks.text_ocr as ocr_mod  # where the OCR code lives

    first = "".join(
        inspect.getsource(f)
        for f in (ocr_mod.read_text, ocr_mod.ocr_copy, ocr_mod._boxes, ocr_mod._clahe, ocr_mod._stroke_contrast)
    )
    version = hashlib.sha256((first + str(ocr_mod.OCR_SIDE)).encode()).hexdigest()[:12]
    # the second look's views and engines: any change to the OCR module re-reads them
    mark_version = hashlib.sha256((first + inspect.getsource(ocr_mod)).encode()).hexdigest()[:12]
    cache: dict[str, list[dict]] = json.loads(path.read_text()) if path.exists() else {}
    original, original_mark = text_mod.read_text, text_mod.read_mark_view

    def load(key: str) -> list:  # type: ignore[type-arg]
        return [text_mod.TextBox(**d) for d in cache[key]]

    def cached(img):  # type: ignore[no-untyped-def]
        key = f"{img.sha256}:{version}"
        if key in cache:
            return img.memo("ocr", lambda: load(key))
        boxes = original(img)
        cache[key] = [asdict(b) for b in boxes]
        return boxes

    def cached_mark(img, view):  # type: ignore[no-untyped-def]
        key = f"{img.sha256}:{view}:{mark_version}"
        if key in cache:
            return img.memo(f"ocr_mark:{view}", lambda: load(key))
        boxes = original_mark(img, view)
        cache[key] = [asdict(b) for b in boxes]
        return boxes

    def finish() -> None:  # save, and un-install: the speed runs must really read text
        path.write_text(json.dumps(cache))
        text_mod.read_text, text_mod.read_mark_view = original, original_mark

    text_mod.read_text, text_mod.read_mark_view = cached, cached_mark
    return finish


def profile_with(checks: list[str]):  # type: ignore[no-untyped-def]
    prof = load_profile("general")
    prof.checks = {c: prof.checks.get(c, {}) for c in checks}
    return prof


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/catalens-planted")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
    ap.add_argument("--split", default="test")
    ap.add_argument(
        "--ocr-originals", type=int, default=40, help="originals whose clean/text/watermark copies get OCR"
    )
    ap.add_argument("--no-cleanvision", action="store_true")
    ap.add_argument(
        "--ocr-cache",
        default=None,
        help="JSON file caching OCR boxes per image (default <out>/ocr_cache.json)",
    )
    ap.add_argument(
        "--no-speed", action="store_true", help="skip the speed runs (see bench/quality_speed.py)"
    )
    ap.add_argument(
        "--ocr-only",
        action="store_true",
        help="only the OCR rows (text, watermark): no pixel checks, cleanvision or speed runs",
    )
    a = ap.parse_args()
    if a.ocr_only:
        a.no_cleanvision = a.no_speed = True
    out = Path(a.out)
    items = load_items(out) if (out / "items.jsonl").exists() else build(out, Path(a.data))
    items = [it for it in items if it.split == a.split]
    settings = Settings(home=Path("/tmp/catalens-bench-home"), workers=2)
    by_path = {it.path: it for it in items}

    # ---- pixel checks on every image of the split
    pixel_checks = [] if a.ocr_only else PIXEL_CHECKS
    rep = run_checks(
        [QCItem(it.path, Path(it.path)) for it in items if pixel_checks], profile_with(pixel_checks), settings
    )
    verdict = {(im.source, r.check): r.verdict != "pass" for im in rep.images for r in im.results}
    emit(kind="run", what="pixel checks", images=len(rep.images), seconds=round(rep.seconds, 2))

    # ---- OCR checks on a subset (clean + text + watermark copies of the first N originals)
    per_ds = a.ocr_originals // 2  # half from each dataset
    originals = [
        o
        for ds in ("myntra", "clothing")
        for o in sorted({it.original for it in items if it.dataset == ds})[:per_ds]
    ]
    ocr_items = [
        it
        for it in items
        if it.original in originals and it.planted in ("clean", "text_overlay", "watermark")
    ]
    save_ocr = install_ocr_cache(Path(a.ocr_cache) if a.ocr_cache else out / "ocr_cache.json")
    rep_ocr = run_checks(
        [QCItem(it.path, Path(it.path)) for it in ocr_items],
        profile_with(["text", "watermark", "watermark_visual", "nsfw"]),
        settings,
    )
    for im in rep_ocr.images:
        for r in im.results:
            verdict[(im.source, r.check)] = r.verdict != "pass"
    save_ocr()
    emit(
        kind="run",
        what="ocr+nsfw checks (OCR cached per file)",
        images=len(ocr_items),
        seconds=round(rep_ocr.seconds, 2),
    )

    # ---- the overlay detector alone on every clean and watermarked image of the split (it is cheap)
    visual_items = [it for it in items if it.planted in ("clean", "watermark")]
    rep_vis = run_checks(
        [QCItem(it.path, Path(it.path)) for it in visual_items], profile_with(["watermark_visual"]), settings
    )
    visual = {im.source: any(r.verdict != "pass" for r in im.results) for im in rep_vis.images}
    emit(
        kind="run",
        what="watermark_visual on all",
        images=len(visual_items),
        seconds=round(rep_vis.seconds, 2),
    )

    # ---- cleanvision on the same images
    cv_flags: dict[str, dict[str, bool]] = {}
    if not a.no_cleanvision:
        from cleanvision import Imagelab

        t = time.perf_counter()
        lab = Imagelab(filepaths=[it.path for it in items], verbose=False)
        lab.find_issues(
            {k: {} for k in ("blurry", "dark", "light", "grayscale", "low_information")},
            n_jobs=2,
            verbose=False,
        )
        issues = lab.issues
        for issue in ("blurry", "dark", "light", "grayscale", "low_information"):
            col = f"is_{issue}_issue"
            cv_flags[issue] = {str(p): bool(v) for p, v in issues[col].items()}
        emit(kind="run", what="cleanvision", images=len(items), seconds=round(time.perf_counter() - t, 2))

    # ---- per-item results for inspection (not in the repo)
    with (out / f"results_{a.split}.jsonl").open("w") as fh:
        for im in rep.images + rep_ocr.images:
            it = by_path[im.source]
            fh.write(
                json.dumps(
                    {
                        "path": im.source,
                        "planted": it.planted,
                        "dataset": it.dataset,
                        "results": [r.to_dict() for r in im.results],
                    }
                )
                + "\n"
            )

    # ---- metrics per planted type
    for ptype in PLANTED_TYPES:
        check = CHECK_FOR[ptype]
        parts = check.split("+")
        ocr_row = any(c in ("text", "watermark") for c in parts)
        if a.ocr_only and not ocr_row:
            continue
        pool = ocr_items if ocr_row else items
        if ptype == "busy_background":  # planted only on white-background sources: compare with those
            pool = [it for it in pool if it.white_bg]
        pos = [it.path for it in pool if it.planted == ptype]
        neg = [it.path for it in pool if it.planted == "clean"]
        flag = {p: any(verdict.get((p, c), False) for c in parts) for p in pos + neg}
        row = {"kind": "metric", "planted": ptype, "check": check, "catalens": prf(flag, pos, neg)}
        if len(parts) > 1:  # each part alone too
            row["alone"] = {
                c: prf({p: verdict.get((p, c), False) for p in pos + neg}, pos, neg) for c in parts
            }
        cvi = CLEANVISION_FOR.get(ptype)
        if cvi and cv_flags:
            row["cleanvision_issue"] = cvi
            row["cleanvision"] = prf({p: cv_flags[cvi].get(p, False) for p in pos + neg}, pos, neg)
        print(json.dumps(row), flush=True)
    pos = [it.path for it in visual_items if it.planted == "watermark"]
    neg = [it.path for it in visual_items if it.planted == "clean"]
    emit(
        kind="metric",
        planted="watermark",
        check="watermark_visual, every original of the split",
        catalens=prf({p: visual.get(p, False) for p in pos + neg}, pos, neg),
    )
    if a.ocr_only:
        return
    clean_white = [it.path for it in items if it.planted == "clean" and it.white_bg]
    fp = sum(verdict.get((p, "blur"), False) for p in clean_white)
    row = {
        "kind": "metric",
        "what": "blur FPR on clean white-background originals (>= 90% of the border near-white)",
        "catalens": round(fp / len(clean_white), 4) if clean_white else None,
        "n": len(clean_white),
    }
    if cv_flags and clean_white:
        row["cleanvision"] = round(
            sum(cv_flags["blurry"].get(p, False) for p in clean_white) / len(clean_white), 4
        )
    print(json.dumps(row), flush=True)
    flagged_clean = {
        c: sum(verdict.get((it.path, c), False) for it in items if it.planted == "clean")
        for c in PIXEL_CHECKS
    }
    emit(
        kind="metric",
        what="clean originals flagged per check",
        n=sum(it.planted == "clean" for it in items),
        counts=flagged_clean,
    )

    if a.no_speed:
        return
    # ---- speed: pixel checks on 1200 px originals, 2 workers, median of 3 runs; then + OCR + NSFW
    full = [
        QCItem(it.path, Path(it.path))
        for it in load_items(out)
        if it.planted == "clean" and it.dataset == "myntra"
    ]
    rates = []
    for _ in range(3):
        r = run_checks(full, profile_with(PIXEL_CHECKS), settings)
        rates.append(len(full) / r.seconds)
    emit(
        kind="speed",
        what="pixel checks, 900x1200 JPEG, 2 workers",
        images=len(full),
        images_per_s_median=round(statistics.median(rates), 1),
        runs=[round(x, 1) for x in rates],
    )
    sub = full[:40]
    r = run_checks(
        sub, profile_with(PIXEL_CHECKS + ["text", "watermark", "watermark_visual", "nsfw"]), settings
    )
    emit(
        kind="speed",
        what="pixel + OCR + NSFW, 900x1200 JPEG, 2 workers",
        images=len(sub),
        images_per_s=round(len(sub) / r.seconds, 2),
    )
    if cv_flags:
        from cleanvision import Imagelab

        t = time.perf_counter()
        lab = Imagelab(filepaths=[q.source for q in full], verbose=False)
        lab.find_issues(
            {k: {} for k in ("blurry", "dark", "light", "grayscale", "low_information")},
            n_jobs=2,
            verbose=False,
        )
        emit(
            kind="speed",
            what="cleanvision same 5 issue types, same images",
            images=len(full),
            images_per_s=round(len(full) / (time.perf_counter() - t), 1),
        )
    _ = by_path


if __name__ == "__main__":
    main()
