"""The colour descriptor as a classifier input: on by default for colour fields only, versioned per
classifier, the thumbnail view's own descriptor, scored the same way on files, stored images and the
web page's tags."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from catalens.classify.colour.calibration import (
    DESCRIPTOR_DIM,
    DESCRIPTORS,
    LEGACY_DESCRIPTOR,
    describe,
    descriptor_version,
)
from catalens.classify.train import colour_fields
from catalens.cli import app
from catalens.core import Catalog
from catalens.errors import ClassifierError

pytestmark = pytest.mark.usefixtures("catalog_backend")  # each test on SQLite and on PostgreSQL

runner = CliRunner()
COLOURS = {"Red": (200, 30, 40), "Blue": (40, 60, 190)}


def _garment(path: Path, colour: tuple[int, int, int], shape: str, seed: int) -> Path:
    """A garment-like shape of one colour on a white backdrop (a little noise so no two are alike)."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (240, 320), (255, 255, 255))
    d = ImageDraw.Draw(img)
    box = [
        int(rng.integers(40, 70)),
        int(rng.integers(50, 80)),
        int(rng.integers(170, 200)),
        int(rng.integers(240, 280)),
    ]
    (d.rectangle if shape == "Tshirts" else d.ellipse)(box, fill=colour)
    arr = np.asarray(img, np.int16) + rng.integers(-6, 7, (320, 240, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def shop(fake_encoder, home: Path, tmp_path: Path) -> Path:
    rows = ["image,id,title,kind,baseColour"]
    for i in range(20):
        name = "Red" if i % 2 == 0 else "Blue"
        kind = "Tshirts" if (i // 2) % 2 == 0 else "Shoes"
        p = _garment(tmp_path / "imgs" / f"p{i}.png", COLOURS[name], kind, i)
        rows.append(f"{p},P{i},Item {i} {kind},{kind},{name}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    with Catalog.open(home) as cat:
        cat.ingest(tmp_path / "labels.csv", id_col="id", text_col="title")
    return tmp_path / "labels.csv"


def test_colour_fields_are_named_by_colour() -> None:
    got = colour_fields(["gender", "baseColour", "color", "primary_COLOUR", "articleType", "colourway"])
    assert got == ["baseColour", "color", "primary_COLOUR", "colourway"]


def test_descriptor_versions_are_a_registry_and_old_classifiers_keep_theirs() -> None:
    from catalens.classify.classifier import Classifier

    assert list(DESCRIPTORS.names()) == ["colour-v2", "colour-v3"]
    with pytest.raises(
        ClassifierError, match="unknown colour descriptor 'colour-v9'; known: colour-v2, colour-v3"
    ):
        describe(Image.new("RGB", (60, 80), "white"), "colour-v9")
    old = Classifier(
        name="o", version="1", method="linear", model="m", model_version=None, heads={}, input="image+colour"
    )
    assert descriptor_version(old) == LEGACY_DESCRIPTOR == "colour-v2"
    old.extra["colour_descriptor"] = "colour-v3"
    assert descriptor_version(old) == "colour-v3"
    red = Image.new("RGB", (120, 160), "white")
    ImageDraw.Draw(red).rectangle([30, 30, 90, 130], fill=COLOURS["Red"])
    for v in DESCRIPTORS.names():
        d = describe(red, v)
        assert d.shape == (DESCRIPTOR_DIM,) and np.isfinite(d).all()


def test_default_gives_the_descriptor_to_colour_heads_only(shop: Path, home: Path, tmp_path: Path) -> None:
    with Catalog.open(home) as cat:
        clf = cat.train_classifier("c", ["kind", "baseColour"], labels=shop, model="fake-encoder", holdout=0)
        plain = cat.train_classifier(
            "p", ["kind", "baseColour"], labels=shop, model="fake-encoder", holdout=0, use_colour=False
        )
        every = cat.train_classifier(
            "e", ["kind", "baseColour"], labels=shop, model="fake-encoder", holdout=0, use_colour=True
        )
        assert clf.input == "image+colour" and plain.input == "image" and every.input == "image+colour"
        assert clf.extra["colour_descriptor"] == "colour-v3" and clf.extra["colour_fields"] == ["baseColour"]
        assert (
            every.extra["colour_fields"] == ["kind", "baseColour"] and "colour_descriptor" not in plain.extra
        )
        kind, colour = clf.head("kind"), clf.head("baseColour")
        assert clf.dim == plain.dim + DESCRIPTOR_DIM
        for h in (kind, kind.small):
            assert not h.W[:, -DESCRIPTOR_DIM:].any()  # kind never sees the descriptor
        # ... so its head is the one trained without colour features
        assert np.allclose(kind.W[:, : plain.dim], plain.head("kind").W, atol=1e-5)
        assert np.allclose(kind.small.W[:, : plain.dim], plain.head("kind").small.W, atol=1e-5)
        assert (
            np.abs(colour.W[:, -DESCRIPTOR_DIM:]).sum() > 0
            and np.abs(every.head("kind").W[:, -DESCRIPTOR_DIM:]).sum() > 0
        )
        # descriptors were stored per version: the photos' own and their thumbnails'
        from sqlalchemy import func, select

        from catalens.classify.tables import ImageFeatureCache

        with cat.db.session() as s:
            kinds = dict(
                s.execute(select(ImageFeatureCache.kind, func.count()).group_by(ImageFeatureCache.kind)).all()
            )
        assert kinds["colour-v3"] == 20 and kinds["colour-v3@view-thumb-v1"] == 20
        # new photos: files (full size and thumbnails), stored images and the saved classifier agree
        new = [
            _garment(tmp_path / "new" / f"{n}{k}.png", COLOURS[n], k, 100 + j)
            for j, (n, k) in enumerate(
                [("Red", "Shoes"), ("Blue", "Tshirts"), ("Blue", "Shoes"), ("Red", "Tshirts")]
            )
        ]
        thumbs = []
        for p in new:
            t = p.with_name(p.stem + "_small.jpg")
            Image.open(p).resize((60, 80), Image.Resampling.LANCZOS).save(t, quality=90)
            thumbs.append(t)
        want = ["Red", "Blue", "Blue", "Red"]
        assert [r.fields["baseColour"].label for r in cat.classify(new, "c")] == want
        assert [r.fields["baseColour"].label for r in cat.classify(thumbs, "c")] == want
        rep = cat.classify_all("c", store=False)  # stored images: the stored descriptors
        assert rep.images == 20 and rep.labels["baseColour"] == {"Red": 10, "Blue": 10}


def test_views_get_their_own_descriptor_and_a_missing_file_is_named(shop: Path, home: Path) -> None:
    from catalens.classify.colour.calibration import colour_descriptors, view_descriptors
    from catalens.classify.labels import read_labels

    with Catalog.open(home) as cat:
        ls = read_labels(cat.db, shop, ["baseColour"])
        own = colour_descriptors(cat, ls.shas, version="colour-v3")
        view, problems = view_descriptors(cat, ls.shas, own, "thumb", version="colour-v3")
        assert problems == [] and view.shape == own.shape and not np.allclose(view, own)
        # a thumbnail's descriptor is the one its own file gets
        rec = cat.db.image(ls.shas[0])
        from catalens.classify.thumbnail_views import VIEWS, view_image
        from catalens.imageio import open_image

        thumb = view_image(open_image(rec.stored_path or rec.source, draft_to=160).image, VIEWS["thumb"])
        assert np.allclose(view[0], describe(thumb, "colour-v3"), atol=1e-5)
    gone = Path(str(shop.parent / "imgs" / "p3.png"))
    gone.unlink()
    with Catalog.open(home) as cat:
        from catalens.classify.tables import ImageFeatureCache

        with cat.db.session() as s:
            s.query(ImageFeatureCache).filter(ImageFeatureCache.kind.like("colour-v3@%")).delete()
        ls = read_labels(cat.db, shop, ["baseColour"])
        view, problems = view_descriptors(cat, ls.shas, own, "thumb", version="colour-v3")
        assert len(problems) == 1 and "p3.png" in problems[0]
        assert np.allclose(view[3], own[3])  # keeps the photo's own descriptor


def test_cli_colour_features_switch(shop: Path, home: Path) -> None:
    base = ["--home", str(home), "classify", "train", "k", "--labels", str(shop), "--field", "kind",
            "--field", "baseColour", "--model", "fake-encoder", "--json"]  # fmt: skip
    for extra, want in (
        ([], "image+colour"),
        (["--no-colour-features"], "image"),
        (["--colour-features"], "image+colour"),
    ):
        r = runner.invoke(app, [*base, *extra])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["input"] == want, extra
    r = runner.invoke(app, [*base[:-1], "--method", "prototype", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["input"] == "image"  # only linear heads by default


def test_no_colour_features_by_default_with_titles(shop: Path, home: Path) -> None:
    with Catalog.open(home) as cat:
        clf = cat.train_classifier(
            "t", ["kind", "baseColour"], labels=shop, model="fake-encoder", holdout=0, title_words=True
        )
        assert clf.input == "image+words" and "colour_descriptor" not in clf.extra


def test_an_unreadable_file_is_named_and_the_batch_goes_on(shop: Path, home: Path) -> None:
    """A photo whose file is gone after ingest: training uses the average descriptor in its row and names
    it; scoring the stored images warns with its name; nothing is cached for it."""
    from catalens.errors import CatalensWarning

    (shop.parent / "imgs" / "p5.png").unlink()
    (shop.parent / "imgs" / "p6.png").write_bytes(b"\xff\xd8 not a jpeg any more")
    with Catalog.open(home) as cat:
        clf = cat.train_classifier("c", ["kind", "baseColour"], labels=shop, model="fake-encoder", holdout=0)
        bad = clf.extra["colour_problems"]
        assert (
            bad["count"] == 2
            and any("p5.png" in p for p in bad["first"])
            and any("p6.png" in p for p in bad["first"])
        )
        with pytest.warns(
            CatalensWarning, match=r"2 image\(s\) could not be read for their colour descriptor.*p5.png"
        ):
            rep = cat.classify_all("c", store=False)
        assert rep.images == 20
        from sqlalchemy import func, select

        from catalens.classify.tables import ImageFeatureCache

        with cat.db.session() as s:
            n = s.execute(select(func.count()).where(ImageFeatureCache.kind == "colour-v3")).scalar_one()
        assert n == 18
    r = runner.invoke(app, ["--home", str(home), "classify", "train", "k", "--labels", str(shop), "--field", "baseColour",
                            "--model", "fake-encoder"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "could not be read for their colour descriptor" in r.output and "p5.png" in r.output


def test_cli_all_names_the_unreadable_file_as_a_warning(shop: Path, home: Path) -> None:
    with Catalog.open(home) as cat:
        cat.train_classifier("c", ["baseColour"], labels=shop, model="fake-encoder", holdout=0)
        from catalens.classify.tables import ImageFeatureCache

        with cat.db.session() as s:  # descriptors computed again at scoring time
            s.query(ImageFeatureCache).delete()
    (shop.parent / "imgs" / "p2.png").unlink()
    r = runner.invoke(app, ["--home", str(home), "classify", "--all", "-c", "c", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["images"] == 20
    assert "warning:" in r.stderr and "p2.png" in r.stderr and "colour descriptor" in r.stderr


def test_classify_all_ticks_progress(shop: Path, home: Path) -> None:
    with Catalog.open(home) as cat:
        cat.train_classifier("c", ["baseColour"], labels=shop, model="fake-encoder", holdout=0)
        ticks: list[tuple[str, int | None, int]] = []

        def factory(stage: str, total: int | None):  # type: ignore[no-untyped-def]
            return lambda n: ticks.append((stage, total, n))

        rep = cat.classify_all("c", store=False, batch=8, progress=factory)
    assert (
        rep.images == 20
        and [t[2] for t in ticks] == [8, 8, 4]
        and {t[:2] for t in ticks} == {("classify", 20)}
    )
