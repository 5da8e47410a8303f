"""Could a cheap text-presence gate let photos skip the OCR read? (issue 21 item 1's first lever)

    python bench/quality_ocr_gate.py [--half dev] [--sides 192 256 320] [--speed-photos 60]

The OCR checks (``text``, ``watermark``) share one read: the DB text detector on the 640 px CLAHE copy,
then recognition of its boxes (``catalens.quality.checks.text_ocr.read_text``). A gate would be worth it
only if it is much cheaper than that read, says "no text" on most photos a catalogue checks, and never
says so on a photo whose read finds text (else an overlay passes unread). Two gates are measured on
the same photos:

* ``detector@S``: the same detector alone (no recognition) with its long side capped at S px;
* ``overlay-cnn>=t``: the packaged see-through overlay net's probability (computed for the
  ``watermark_visual`` check anyway, so free) at or above t.

Photos: the planted set's ``--half`` (``quality_planted_set.py``: clean, text-overlay and watermark copies
of myntra-dev and clothing-dev originals) and the first ``--speed-photos`` photos of myntra-fullres-dev
(``bench/quality_speed.py``'s set). Printed per gate and photo group: how many photos the gate lets
through, how many photos with text at 640 px it would skip ("missed"), and its milliseconds per photo
beside the full read's. A measurement only: nothing in src/ is chosen on it.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality_planted_set import build, load_items  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
THRESHOLDS = (0.005, 0.02, 0.1)


def ocr_input(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(the RGB photo, the CLAHE BGR copy at OCR_SIDE that the shared read sees)."""
    import cv2

    from catalens.quality.checks.text_ocr import OCR_SIDE, _clahe

    rgb = np.asarray(Image.open(path).convert("RGB"))
    h, w = rgb.shape[:2]
    f = OCR_SIDE / max(h, w)
    small = cv2.resize(
        rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
    )
    return rgb, cv2.cvtColor(_clahe(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)), cv2.COLOR_GRAY2BGR)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--half", choices=("dev", "test"), default="dev")
    ap.add_argument("--sides", type=int, nargs="+", default=[192, 256, 320])
    ap.add_argument("--speed-photos", type=int, default=60)
    ap.add_argument(
        "--planted", default="/tmp/catalens-planted2", help="the planted set's folder (built if missing)"
    )
    args = ap.parse_args()
    from catalens.ocr import ocr_engine
    from catalens.quality.cnn_models import load_net, prepare

    out = Path(args.planted)
    items = load_items(out) if (out / "items.jsonl").exists() else build(out, DATA)
    photos = [
        (it.path, it.planted)
        for it in items
        if it.split == args.half and it.planted in ("clean", "text_overlay", "watermark")
    ]
    speed = sorted((DATA / "myntra-fullres-dev" / "images").glob("*.jpg"))[: args.speed_photos]
    photos += [(str(p), "speed set (fullres, clean)") for p in speed]
    net, _ = load_net("overlay")
    name = net.get_inputs()[0].name
    rows: dict[str, list[tuple[int, list[int], float]]] = collections.defaultdict(list)
    ms: collections.Counter[str] = collections.Counter()
    for path, group in photos:
        rgb, bgr = ocr_input(path)
        t = time.perf_counter()
        full = ocr_engine(limit_type="max", side=640)(bgr)
        ms["full read (640 px)"] += time.perf_counter() - t
        found = 0 if full.boxes is None else len(full.boxes)
        gate = []
        for s in args.sides:
            t = time.perf_counter()
            det = ocr_engine(limit_type="max", side=s)(bgr, use_det=True, use_cls=False, use_rec=False)
            ms[f"detector@{s}"] += time.perf_counter() - t
            gate.append(0 if det.boxes is None else len(det.boxes))
        t = time.perf_counter()
        logit = float(np.asarray(net.run(None, {name: prepare(rgb)})[0]).ravel()[0])
        ms["overlay-cnn"] += time.perf_counter() - t
        rows[group].append((found, gate, 1.0 / (1.0 + np.exp(-logit))))
    n = len(photos)
    print(
        json.dumps(
            {
                "half": args.half,
                "photos": n,
                "ms_per_photo": {k: round(v / n * 1000, 1) for k, v in ms.items()},
            }
        )
    )
    for group, rs in rows.items():
        has = np.array([r[0] > 0 for r in rs])
        out_row: dict[str, object] = {"group": group, "photos": len(rs), "text_at_640": int(has.sum())}
        for i, s in enumerate(args.sides):
            through = np.array([r[1][i] > 0 for r in rs])
            out_row[f"detector@{s}"] = {"through": int(through.sum()), "missed": int((has & ~through).sum())}
        for t in THRESHOLDS:
            through = np.array([r[2] >= t for r in rs])
            out_row[f"overlay-cnn>={t}"] = {
                "through": int(through.sum()),
                "missed": int((has & ~through).sum()),
            }
        print(json.dumps(out_row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
