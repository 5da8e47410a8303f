"""Text search that finds photos with no title (issue 20 item 9): plain cosine vs ranking per image group.

    python bench/search_text_untitled.py --work /tmp/text-untitled --half dev       # choose here
    python bench/search_text_untitled.py --work /tmp/text-untitled --half lockbox   # report once

Catalog (built in ``--work`` on the first run, then reused): myntra-dev products split by the md5 of
``text-untitled:<id>``: 80% ingested with their titles (``titled``; the text projection is trained on
them), 20% ingested *without* a title (``held``), each also as a 60x80 thumbnail copy (JPEG 90, its
own untitled product ``thumb-<id>``). The held products are halved by the same md5 into ``dev`` and
``lockbox``; their catalog titles are the queries (titles the projection never saw).

Measured per half, for ``plain`` (the cosine of the projected title, the ranking before) and
``groups`` (``Catalog.search_text``: image groups ranked apart and merged by the score standardised
within each group):
- exact-item R@10 at 225x300 (the held product's own photo in the top 10) and at 60x80 (its thumbnail);
- category P@10: the share of the top 10 with the query product's articleType;
- the share of untitled photos in the top 10;
- for titled queries (``--titled-queries`` titles of titled products, seeded sample): category P@10,
  plain vs groups, to show what the interleaving costs a shopper searching the titled catalog.
Variants tried on dev: 2 - groups by title state x size (exact R@10 0.280 at 225x300, 0.154 at 60x80,
category P@10 0.714, titled queries 0.726), then by size only (thumbnail or not: 0.298, 0.151, 0.714,
0.731; shipped, ``text.BY_TITLE = False``); the lock-box was run once, with the second.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "myntra-dev"


def u(key: str) -> float:
    return int(hashlib.md5(f"text-untitled:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def build(work: Path) -> None:
    from catalens.core import Catalog

    rows = list(csv.DictReader(open(DATA / "labels.csv", encoding="utf-8")))
    work.mkdir(parents=True, exist_ok=True)
    titled = work / "titled.csv"
    held = work / "held.csv"
    thumbs = work / "thumbs"
    thumbs.mkdir(exist_ok=True)
    with open(titled, "w", newline="") as ft, open(held, "w", newline="") as fh:
        wt, wh = csv.writer(ft), csv.writer(fh)
        wt.writerow(["image", "id", "productDisplayName", "articleType"])
        wh.writerow(["image", "id", "articleType"])
        for r in rows:
            path = DATA / r["image"]
            if u(r["id"]) < 0.8:
                wt.writerow([str(path), r["id"], r["productDisplayName"], r["articleType"]])
                continue
            wh.writerow([str(path), r["id"], r["articleType"]])
            im = Image.open(path).convert("RGB")
            im.thumbnail((60, 80) if im.height >= im.width else (80, 60), Image.Resampling.LANCZOS)
            thumb = thumbs / f"{r['id']}.jpg"
            im.save(thumb, "JPEG", quality=90)
            wh.writerow([str(thumb), f"thumb-{r['id']}", r["articleType"]])
    with Catalog.open(work / "home") as cat:
        cat.ingest(titled, id_col="id", text_col="productDisplayName")
        cat.ingest(held, id_col="id")
        cat.train_text_projection()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--half", choices=("dev", "lockbox"), required=True)
    ap.add_argument("--titled-queries", type=int, default=200)
    args = ap.parse_args()
    from catalens.core import Catalog
    from catalens.search.text import image_groups, text_query_vector

    t0 = time.perf_counter()
    if not (args.work / "home").exists():
        build(args.work)
    built = time.perf_counter() - t0
    rows = list(csv.DictReader(open(DATA / "labels.csv", encoding="utf-8")))
    kind = {r["id"]: r["articleType"] for r in rows}
    kind.update({f"thumb-{r['id']}": r["articleType"] for r in rows})
    half = [r for r in rows if u(r["id"]) >= 0.8 and (u(f"half:{r['id']}") < 0.5) == (args.half == "dev")]
    titled = [r for r in rows if u(r["id"]) < 0.8]
    rng = np.random.default_rng(0 if args.half == "dev" else 1)
    titled = [titled[i] for i in rng.choice(len(titled), args.titled_queries, replace=False)]
    out: dict[str, object] = {"half": args.half, "held_queries": len(half), "titled_queries": len(titled)}
    with Catalog.open(args.work / "home") as cat:
        s = cat.searcher()
        untitled = {p for p in kind if p.startswith("thumb-") or u(p) >= 0.8}

        def plain(text: str) -> list:  # type: ignore[type-arg]
            return s.search(text_query_vector(cat, s, text), 10)

        def groups(text: str) -> list:  # type: ignore[type-arg]
            return cat.search_text(text, 10)

        for name, fn in (("plain", plain), ("groups", groups)):
            hit, hit_thumb, prec, share = [], [], [], []
            for r in half:
                res = fn(r["productDisplayName"])
                ids = [x.product_id for x in res]
                hit.append(r["id"] in ids)
                hit_thumb.append(f"thumb-{r['id']}" in ids)
                prec.append(np.mean([kind.get(p or "") == r["articleType"] for p in ids]) if ids else 0.0)
                share.append(np.mean([p in untitled for p in ids]) if ids else 0.0)
            tprec = []
            for r in titled:
                ids = [x.product_id for x in fn(r["productDisplayName"])]
                tprec.append(np.mean([kind.get(p or "") == r["articleType"] for p in ids]) if ids else 0.0)
            out[name] = {
                "exact_R@10_225x300": round(float(np.mean(hit)), 4),
                "exact_R@10_60x80": round(float(np.mean(hit_thumb)), 4),
                "category_P@10": round(float(np.mean(prec)), 4),
                "untitled_share_top10": round(float(np.mean(share)), 4),
                "titled_queries_category_P@10": round(float(np.mean(tprec)), 4),
            }
        out["image_groups"] = {g: len(v[0]) for g, v in image_groups(s).items()}
    out["build_seconds"] = round(built, 1)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
