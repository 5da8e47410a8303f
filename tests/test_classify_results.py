"""Issue 19: the classification results are typed dataclasses whose ``to_dict()`` is exactly what the
methods returned before (so ``--json`` and the REST API print the same bytes).

The golden outputs below were printed by the code before the change (FakeEncoder catalog, the same
photos and labels); numbers are compared to 1e-4 (BLAS), everything else byte for byte.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import catalens
from catalens.cli import app
from catalens.core import Catalog
from tests.conftest import make_product_image

N = 24
runner = CliRunner()
NUM = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")

# `catalens classify run p0.png p1.png -c kinds --json` before the change
CLASSIFY_RUN_JSON = """\
[
  {
    "source": "{imgs}/p0.png",
    "classifier": "kinds",
    "fields": {
      "kind": {
        "label": "Tshirts",
        "prob": 0.504661,
        "needs_review": false,
        "top_k": [
          {
            "label": "Tshirts",
            "prob": 0.504661
          },
          {
            "label": "Shoes",
            "prob": 0.495339
          }
        ]
      },
      "gender": {
        "label": "Men",
        "prob": 0.501267,
        "needs_review": false,
        "top_k": [
          {
            "label": "Men",
            "prob": 0.501267
          },
          {
            "label": "Women",
            "prob": 0.498733
          }
        ]
      }
    }
  },
  {
    "source": "{imgs}/p1.png",
    "classifier": "kinds",
    "fields": {
      "kind": {
        "label": "Shoes",
        "prob": 0.504643,
        "needs_review": false,
        "top_k": [
          {
            "label": "Shoes",
            "prob": 0.504643
          },
          {
            "label": "Tshirts",
            "prob": 0.495357
          }
        ]
      },
      "gender": {
        "label": "Women",
        "prob": 0.501068,
        "needs_review": false,
        "top_k": [
          {
            "label": "Women",
            "prob": 0.501068
          },
          {
            "label": "Men",
            "prob": 0.498932
          }
        ]
      }
    }
  }
]"""

# `catalens classify --all -c kinds --json` before the change ("seconds" masked)
CLASSIFY_ALL_JSON = """\
{
  "classifier": "kinds",
  "images": 24,
  "needs_review": 0,
  "seconds": X,
  "stored": true,
  "labels": {
    "kind": {
      "Shoes": 12,
      "Tshirts": 12
    },
    "gender": {
      "Men": 12,
      "Women": 12
    }
  }
}"""

# `catalens classify eval -c kinds --json` (its held-out split) before the change
EVAL_JSON = """\
{
  "classifier": "kinds",
  "labels": "held-out split of kinds ({home}/classifiers/kinds/vX/holdout.csv)",
  "fields": {
    "kind": {
      "n": 6,
      "accuracy": 1.0,
      "macro_f1": 1.0,
      "weighted_f1": 1.0,
      "ece": 0.4953466057777405,
      "unknown_classes": []
    },
    "gender": {
      "n": 6,
      "accuracy": 0.16666666666666666,
      "macro_f1": 0.14285714285714285,
      "weighted_f1": 0.19047619047619047,
      "ece": 0.33450128634770715,
      "unknown_classes": []
    }
  },
  "train_overlap": {
    "rows": 0,
    "of": 6,
    "how": "listed"
  }
}"""

# `catalens brand tag p0.png p1.png -c brands --no-ocr --json` before the change
BRAND_TAG_JSON = """\
[
  {
    "source": "{imgs}/p0.png",
    "brand": "Nike",
    "prob": 0.988023,
    "by": "logo"
  },
  {
    "source": "{imgs}/p1.png",
    "brand": "Puma",
    "prob": 0.98885,
    "by": "logo"
  }
]"""


def _run(home: Path, *args: str) -> str:
    r = runner.invoke(app, ["--home", str(home), *args])
    assert r.exit_code == 0, r.output
    return r.stdout


def _same(got: str, want: str, tol: float = 1e-4) -> None:
    """Equal text once numbers are masked, and every number within ``tol``."""
    assert NUM.sub("#", got) == NUM.sub("#", want), got
    a, b = NUM.findall(got), NUM.findall(want)
    assert len(a) == len(b) and all(abs(float(x) - float(y)) <= tol for x, y in zip(a, b, strict=True)), got


@pytest.fixture
def shop(fake_encoder: object, home: Path, tmp_path: Path) -> Path:
    """24 products in two looks (kind follows the look; gender, brand in the titles), a classifier
    ``kinds`` (prototype, kind + gender, a quarter held out) and a brand tagger ``brands``."""
    imgs = tmp_path / "imgs"
    rows = ["image,id,productDisplayName,kind,gender,brand"]
    for i in range(N):
        p = make_product_image(imgs / f"p{i}.png", seed=i % 2)
        im = Image.open(p).convert("RGB")
        im.putpixel((i, 0), (i * 9 % 256, 7, 200))
        im.save(p)
        gender, brand = ("Women" if i % 3 == 0 else "Men"), ["Nike", "Puma"][i % 2]
        rows.append(
            f"{p},P{i},{brand} {gender} Item {i},{'Tshirts' if i % 2 == 0 else 'Shoes'},{gender},{brand}"
        )
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    with Catalog.open(home) as cat:
        cat.ingest(labels, id_col="id", text_col="productDisplayName")
    _run(home, "classify", "train", "kinds", "--labels", str(labels), "--field", "kind", "--field", "gender",
         "--method", "prototype", "--model", "fake-encoder", "--holdout", "0.25")  # fmt: skip
    _run(home, "brand", "train", "brands", "--min-examples", "5", "--model", "fake-encoder")
    return imgs


def test_cli_json_is_what_it_was(shop: Path, home: Path) -> None:
    files = [str(shop / "p0.png"), str(shop / "p1.png")]
    _same(
        _run(home, "classify", "run", *files, "-c", "kinds", "--json"),
        CLASSIFY_RUN_JSON.replace("{imgs}", str(shop)) + "\n",
    )
    got = re.sub(
        r'"seconds": [0-9.e-]+', '"seconds": X', _run(home, "classify", "--all", "-c", "kinds", "--json")
    )
    _same(got, CLASSIFY_ALL_JSON + "\n")
    got = re.sub(r"v\d{8}-\d{6}-\d{6}", "vX", _run(home, "classify", "eval", "-c", "kinds", "--json"))
    _same(got, EVAL_JSON.replace("{home}", str(home)) + "\n")
    got = _run(home, "brand", "tag", *files, "-c", "brands", "--no-ocr", "--json")
    _same(got, BRAND_TAG_JSON.replace("{imgs}", str(shop)) + "\n")


def test_to_dict_is_the_old_dict(shop: Path, home: Path) -> None:
    from catalens.classify.catalog_scoring import classify_images
    from catalens.classify.classifier import list_classifiers
    from catalens.classify.colour.features import dominant_colours
    from catalens.imageio import open_image

    files = [shop / f"p{i}.png" for i in range(4)]
    with Catalog.open(home) as cat:
        preds = cat.classify(files, "kinds", top_k=1, threshold=0.9)
        assert all(isinstance(p, catalens.ImagePrediction) for p in preds)
        assert all(isinstance(f, catalens.FieldPrediction) for p in preds for f in p.fields.values())
        assert preds[0].fields["kind"].needs_review and preds[0].fields["kind"].label == "Tshirts"
        # the dicts of the internal path the crops of `classify --each` still take, plus the source
        rows = classify_images(cat, [open_image(f).image for f in files], "kinds", top_k=1, threshold=0.9)
        assert [p.to_dict() for p in preds] == [
            {"source": str(f), **r} for f, r in zip(files, rows, strict=True)
        ]
        with pytest.raises(dataclasses.FrozenInstanceError):
            preds[0].source = "x"  # type: ignore[misc]

        infos = cat.classifiers()
        assert [c.to_dict() for c in infos] == list_classifiers(home)
        assert [c.name for c in infos] == ["brands", "kinds"] and infos[1].fields == ("kind", "gender")

        rep = cat.classify_all("kinds", store=False)
        assert isinstance(rep, catalens.ClassifyReport) and rep.images == N and not rep.stored
        d = rep.to_dict()
        assert list(d) == ["classifier", "images", "needs_review", "seconds", "stored", "labels"]
        assert d["seconds"] == round(rep.seconds, 3) and d["labels"] == {
            "kind": {"Shoes": 12, "Tshirts": 12},
            "gender": {"Men": 12, "Women": 12},
        }

        ev = cat.evaluate_classifier("kinds", report_dir=home.parent / "report")
        assert isinstance(ev, catalens.ClassifierEvaluation) and ev.fields["kind"].accuracy == 1.0
        assert ev.train_overlap == catalens.TrainOverlap(rows=0, of=6, how="listed") and ev.warning is None
        d = ev.to_dict()
        assert list(d) == ["classifier", "labels", "fields", "train_overlap", "report"]
        assert d["report"] == str(ev.report) and Path(d["report"]).is_file()
        assert list(d["fields"]["gender"]) == [
            "n",
            "accuracy",
            "macro_f1",
            "weighted_f1",
            "ece",
            "unknown_classes",
        ]
        over = cat.evaluate_classifier(
            "kinds", home.parent / "labels.csv", fields=["kind"], allow_train_overlap=True
        )
        d = over.to_dict()
        assert list(d) == ["classifier", "labels", "fields", "train_overlap", "warning"]
        assert d["train_overlap"] == {"rows": 18, "of": N, "how": "listed"} and "optimistic" in d["warning"]

        tags = cat.brands(files[:2], "brands", ocr=False)
        assert [(t.brand, t.by) for t in tags] == [("Nike", "logo"), ("Puma", "logo")]
        assert [t.to_dict() for t in tags] == [
            {"source": str(f), "brand": t.brand, "prob": round(t.prob, 6), "by": "logo"}
            for f, t in zip(files, tags, strict=False)
        ]
        rep_b = cat.brands_all("brands", store=False)
        assert isinstance(rep_b, catalens.BrandReport)
        assert {k: v for k, v in rep_b.to_dict().items() if k != "seconds"} == {
            "classifier": "brands",
            "images": N,
            "unknown": 0,
            "by_ocr": 0,
            "stored": False,
            "brands": {"Nike": 12, "Puma": 12},
        }

        col = cat.colours(files[0])
        assert isinstance(col, catalens.ColourResult)
        want = dominant_colours(open_image(files[0]).image, 5, 4000, detect_on_white=True).to_dict()
        assert col.to_dict() == want and list(want) == [
            "primary",
            "colours",
            "foreground_percent",
            "foreground_method",
        ]


def test_the_classify_results_are_exported() -> None:
    for name in ("ImagePrediction", "FieldPrediction", "ClassifyReport", "ClassifierEvaluation", "FieldMetrics",
                 "TrainOverlap", "ClassifierInfo", "BrandTag", "BrandReport", "ColourResult"):  # fmt: skip
        assert name in catalens.__all__ and dataclasses.is_dataclass(getattr(catalens, name)), name
    fp = catalens.FieldPrediction("a", 0.12345678, [("a", 0.12345678), ("b", 0.0)], False)
    assert fp.to_dict() == {
        "label": "a",
        "prob": 0.123457,
        "needs_review": False,
        "top_k": [{"label": "a", "prob": 0.123457}, {"label": "b", "prob": 0.0}],
    }
    ev = catalens.ClassifierEvaluation(
        "c", "labels.csv", {"f": catalens.FieldMetrics(2, 0.5, 0.5, 0.5, None)}
    )
    assert json.dumps(ev.to_dict()) == (
        '{"classifier": "c", "labels": "labels.csv", "fields": {"f": {"n": 2, "accuracy": 0.5, '
        '"macro_f1": 0.5, "weighted_f1": 0.5, "ece": null, "unknown_classes": []}}}'
    )
