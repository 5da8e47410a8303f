"""Thumbnail training views (catalens.classify.thumbnail_views): shapes, parsing, splits by image, caching, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from catalens.classify.labels import LabelSet
from catalens.classify.thumbnail_views import VIEWS, parse_views, view_image
from catalens.classify.train import _Stack, fit_field, train_on_matrix
from catalens.cli import app
from catalens.core import Catalog
from catalens.errors import ClassifierError
from tests.conftest import make_product_image

pytestmark = pytest.mark.usefixtures("catalog_backend")  # each test on SQLite and on PostgreSQL

runner = CliRunner()


@pytest.mark.parametrize(
    ("size", "mode", "expect"),
    [((300, 400), "RGB", (60, 80)), ((400, 300), "RGB", (80, 60)), ((900, 1200), "RGBA", (60, 80)),
     ((50, 40), "L", (50, 40)), ((120, 400), "RGB", (24, 80))],
)  # fmt: skip
def test_view_image_fits_the_box_oriented_like_the_photo(size, mode, expect) -> None:
    im = Image.new(mode, size, 128)
    v = view_image(im, VIEWS["thumb"])
    assert v.size == expect and v.mode == "RGB" and v.format == "JPEG"


def test_parse_views() -> None:
    assert parse_views("auto", "linear") == ("thumb",)
    assert parse_views(None, "prototype") == ()
    assert parse_views("none", "linear") == ()
    assert parse_views("thumb", "prototype") == ("thumb",)
    assert parse_views(["thumb", "thumb"], "linear") == ("thumb",)
    with pytest.raises(ClassifierError, match="unknown view"):
        parse_views("tiny,thumb", "linear")


def test_stack_rows_keep_views_of_an_image_together() -> None:
    X = np.arange(10, dtype=np.float32).reshape(5, 2)
    st = _Stack([X, X + 100], np.arange(5))
    Xs, ys = st.rows(np.array([1, 3]))
    assert ys.tolist() == [1, 3, 1, 3]
    assert Xs[:, 0].tolist() == [2, 6, 102, 106]


def test_fit_field_with_views_calibrates_on_held_out_images_only() -> None:
    rng = np.random.default_rng(0)
    n, dim = 200, 8
    y = rng.integers(0, 2, n)
    X = (rng.standard_normal((n, dim)) + y[:, None] * 1.5).astype(np.float32)
    # the "view" carries the signal on other columns: a head trained on both must use both
    V = np.roll(X, 4, axis=1)
    values = ["a" if c else "b" for c in y]
    head, info = fit_field(X, values, "f", "linear", views=[V])
    assert info["held_out"]["n_rows"] == 2 * info["held_out"]["n"] and info["n_train"] == n
    acc_x = ((X @ head.W.T + head.b).argmax(1) == (1 - y)).mean()  # classes sorted: a=1 -> column 0
    acc_v = ((V @ head.W.T + head.b).argmax(1) == (1 - y)).mean()
    assert acc_x > 0.8 and acc_v > 0.8
    head2, info2 = fit_field(X, values, "f", "linear", views=[V], calibration="crossfit")
    assert info2["held_out"]["n"] == n and info2["n_train"] == n


def test_train_on_matrix_rejects_misaligned_views() -> None:
    X = np.zeros((6, 4), np.float32)
    labels = LabelSet([f"s{i}" for i in range(6)], [None] * 6, [None] * 6, {"f": ["a", "b"] * 3}, "t")
    with pytest.raises(ClassifierError, match="not aligned"):
        train_on_matrix(X, labels, ["f"], "linear", name="x", model="m", model_version=None,
                        views={"thumb": np.zeros((5, 4), np.float32)})  # fmt: skip


@pytest.fixture
def shop(fake_encoder, home: Path, tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    rows = ["image,id,kind"]
    for i in range(16):
        size = (40, 50) if i == 15 else (240, 320)  # the last one is already thumbnail-sized
        p = make_product_image(root / f"p{i}.png", seed=i % 2, size=size)
        im = Image.open(p).convert("RGB")
        im.putpixel((i, 0), (i * 9 % 256, 7, 200))
        im.save(p)
        rows.append(f"{p},P{i},{'Tshirts' if i % 2 == 0 else 'Shoes'}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    with Catalog.open(home) as cat:
        cat.ingest(tmp_path / "labels.csv", id_col="id")
    return tmp_path / "labels.csv"


def _cached_views(cat: Catalog) -> int:
    from sqlalchemy import func, select

    from catalens.classify.tables import ImageFeatureCache

    with cat.db.session() as s:
        return s.execute(select(func.count()).where(ImageFeatureCache.kind.like("view-thumb-%"))).scalar_one()


def _fixed_head(cls_idx: int, n: int = 2, dim: int = 4):
    from catalens.classify.classifier import FieldHead

    b = np.full(n, -10.0, np.float32)
    b[cls_idx] = 10.0
    return FieldHead(name="f", classes=["a", "b"], W=np.zeros((n, dim), np.float32), b=b)


def test_small_heads_score_small_photos_only_and_survive_save_load(tmp_path: Path) -> None:
    from catalens.classify.classifier import Classifier, load_classifier, save_classifier
    from catalens.classify.predict import Ensemble, field_probas, small_rows

    head = _fixed_head(0)
    head.small = _fixed_head(1)
    clf = Classifier(name="r", version="", method="linear", model="m", model_version=None,
                     heads={"f": head}, extra={"small_view": "thumb"})  # fmt: skip
    x = np.zeros((4, 4), np.float32)
    sizes = [(60, 80), (225, 300), (120, 160), (0, 0)]
    assert small_rows(clf, sizes).tolist() == [True, False, True, False]
    assert field_probas(clf, x, sizes=sizes)["f"].argmax(1).tolist() == [1, 0, 1, 0]
    assert field_probas(clf, x)["f"].argmax(1).tolist() == [0, 0, 0, 0]
    save_classifier(tmp_path, clf)
    back = load_classifier(tmp_path, "r")
    assert back.head("f").small is not None and np.allclose(back.head("f").small.b, head.small.b)
    assert field_probas(back, x, sizes=sizes)["f"].argmax(1).tolist() == [1, 0, 1, 0]
    plain = Classifier(name="q", version="", method="linear", model="m", model_version=None,
                       heads={"f": _fixed_head(0)})  # fmt: skip
    assert small_rows(plain, sizes) is None
    ens = Ensemble([back, back])
    assert ens.proba([x, x], sizes=sizes)["f"].argmax(1).tolist() == [1, 0, 1, 0]
    # needs-review: small rows use the small head's threshold
    from catalens.classify.predict import predict_arrays

    back.head("f").small.threshold = 1.5  # nothing reaches it
    probs = field_probas(back, x, sizes=sizes)
    assert predict_arrays(back, probs, sizes=sizes)["f"].review.tolist() == [True, False, True, False]
    assert predict_arrays(back, probs)["f"].review.tolist() == [False] * 4
    assert predict_arrays(back, probs, sizes=sizes, threshold=0.5)["f"].review.tolist() == [False] * 4


def test_train_computes_views_once_and_survives_a_missing_file(shop: Path, home: Path, fake_encoder) -> None:
    with Catalog.open(home) as cat:
        clf = cat.train_classifier("k", ["kind"], labels=shop, model="fake-encoder", holdout=0)
        assert clf.extra["views"] == ["thumb"] and "view_problems" not in clf.extra
        assert clf.head("kind").small is not None and clf.extra["small_view"] == "thumb"
        assert "small_held_out" in clf.extra["fields_info"]["kind"]
        assert _cached_views(cat) == 15  # the 40x50 photo is its own view
        calls = fake_encoder.calls
        cat.train_classifier("k", ["kind"], labels=shop, model="fake-encoder", holdout=0)
        assert fake_encoder.calls == calls  # cached: nothing encoded again
        clf = cat.train_classifier("p", ["kind"], labels=shop, model="fake-encoder", method="prototype")
        assert clf.extra["views"] == [] and clf.head("kind").small is None
        with pytest.raises(ClassifierError, match="finetune"):
            cat.train_classifier(
                "f", ["kind"], labels=shop, model="fake-encoder", method="finetune", train_views="thumb"
            )
    # a file gone after ingest: training goes on, the file is named, stored views stay
    gone = shop.parent / "imgs" / "p3.png"
    gone.unlink()
    with Catalog.open(home) as cat:
        from catalens.classify.tables import ImageFeatureCache

        with cat.db.session() as s:
            s.query(ImageFeatureCache).delete()
        clf = cat.train_classifier("k", ["kind"], labels=shop, model="fake-encoder", holdout=0)
        probs = clf.extra["view_problems"]
        assert probs["count"] == 1 and "p3.png" in probs["first"][0]
        assert _cached_views(cat) == 14


def test_cli_views_option(shop: Path, home: Path) -> None:
    r = runner.invoke(app, ["--home", str(home), "classify", "train", "k", "--labels", str(shop), "--field", "kind",
                            "--model", "fake-encoder", "--views", "none", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["views"] == []
    r = runner.invoke(app, ["--home", str(home), "classify", "train", "k", "--labels", str(shop), "--field", "kind",
                            "--model", "fake-encoder"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "stored + thumb" in r.output
    r = runner.invoke(app, ["--home", str(home), "classify", "train", "k", "--labels", str(shop), "--field", "kind",
                            "--model", "fake-encoder", "--views", "huge"])  # fmt: skip
    assert r.exit_code != 0 and "unknown view" in r.output


def test_small_photos_are_routed_to_the_small_head(shop: Path, home: Path, tmp_path: Path) -> None:
    from catalens.classify.classifier import save_classifier

    with Catalog.open(home) as cat:
        clf = cat.train_classifier("k", ["kind"], labels=shop, model="fake-encoder")
        # make the small head say "Tshirts" whatever it sees: routing becomes visible
        small = clf.head("kind").small
        small.W[:] = 0
        small.b[:] = -20
        small.b[small.classes.index("Tshirts")] = 20
        clf.version = ""
        save_classifier(home, clf)
        big = shop.parent / "imgs" / "p1.png"  # a Shoes photo, 240x320
        tiny = tmp_path / "tiny.png"
        Image.open(big).resize((60, 80)).save(tiny)
        res = cat.classify([big, tiny], classifier="k")
        assert res[0].fields["kind"].label == "Shoes"
        assert res[1].fields["kind"].label == "Tshirts" and res[1].fields["kind"].prob > 0.99
        # stored images: the 40x50 catalog photo P15 (a Shoes photo) goes to the small head
        cat.classify_all("k")
        from sqlalchemy import select

        from catalens.catalog.schema import ProductImage
        from catalens.classify.tables import ClassPrediction

        with cat.db.session() as s:
            pred = dict(s.execute(select(ClassPrediction.image_sha256, ClassPrediction.label)).all())
            sha = dict(s.execute(select(ProductImage.product_id, ProductImage.image_sha256)).all())
        assert pred[sha["P15"]] == "Tshirts" and pred[sha["P1"]] == "Shoes"


def test_explanations_of_small_photos_use_the_small_head(shop: Path, home: Path) -> None:
    pytest.importorskip("torch")
    from catalens.explain.targets import classifier_target

    with Catalog.open(home) as cat:
        clf = cat.train_classifier("k", ["kind"], labels=shop, model="fake-encoder")
    small = classifier_target(home, "k", "kind", image_size=(60, 80))
    big = classifier_target(home, "k", "kind", image_size=(240, 320))
    plain = classifier_target(home, "k", "kind")
    assert "small-photo head" in small.name and "small" not in big.name and "small" not in plain.name
    assert np.allclose(small.head.weight.detach().numpy(), clf.head("kind").small.W, atol=1e-6)
    assert np.allclose(big.head.weight.detach().numpy(), clf.head("kind").W, atol=1e-6)
