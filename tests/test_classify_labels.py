"""Labels CSV rows resolve to stored images (byte-identical copies too); display colour naming."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import make_product_image

from catalens import Catalog
from catalens.classify.labels import read_labels
from catalens.errors import LabelsError

pytestmark = pytest.mark.usefixtures("catalog_backend")  # each test on SQLite and on PostgreSQL


def test_labels_row_naming_a_byte_identical_copy_resolves(tmp_path: Path, fake_encoder) -> None:  # type: ignore[no-untyped-def]
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    a = make_product_image(imgs / "a.jpg", 1)
    make_product_image(imgs / "b.jpg", 2)
    shutil.copy(a, imgs / "copy_of_a.jpg")  # same bytes: stored once, under the first path seen
    cat = Catalog.open(tmp_path / "home")
    cat.ingest(imgs)
    labels = tmp_path / "labels.csv"
    labels.write_text("image,kind\nimgs/a.jpg,shirt\nimgs/b.jpg,shoe\nimgs/copy_of_a.jpg,shirt\n")
    got = read_labels(cat.db, labels, ["kind"])
    assert len(got.shas) == 2  # the copy is the same image: one training row
    labels.write_text("image,kind\nimgs/a.jpg,shirt\nimgs/missing.jpg,shoe\n")
    with pytest.raises(LabelsError, match="1 of 2 rows name images not in the catalog"):
        read_labels(cat.db, labels, ["kind"])
    cat.close()


def test_colour_names_shades_and_ignores_the_model_wearing_it() -> None:
    """A light-blue shirt on a model (skin-tone face and arms, dark trousers below) on white."""
    from PIL import Image, ImageDraw

    from catalens.classify.colour.features import dominant_colours

    img = Image.new("RGB", (150, 200), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.ellipse([55, 5, 95, 45], fill=(224, 172, 140))  # face
    d.rectangle([20, 50, 130, 60], fill=(224, 172, 140))  # arms
    d.rectangle([40, 50, 110, 130], fill=(110, 160, 215))  # the shirt: a light blue
    d.rectangle([45, 130, 105, 198], fill=(40, 45, 60))  # trousers
    res = dominant_colours(img)
    assert res.primary == "Blue", res.to_dict()
    assert "skin" in res.method and all(n != "Peach" for n, _, _ in res.colours)
    # without the model, a pale sky-blue product is still Blue (not Silver or Lavender)
    sky = Image.new("RGB", (120, 160), (255, 255, 255))
    sky.paste((160, 200, 235), (30, 30, 90, 130))
    assert dominant_colours(sky).primary == "Blue"


def test_labels_rows_fall_back_to_the_product_id(tmp_path: Path, fake_encoder) -> None:  # type: ignore[no-untyped-def]
    """A labels CSV copied away from its images (paths no longer resolve) still matches by id."""
    imgs = tmp_path / "shop"
    imgs.mkdir()
    for i in range(3):
        make_product_image(imgs / f"{i}.jpg", 10 + i)
    (imgs / "labels.csv").write_text("image,id,kind\n0.jpg,P0,shirt\n1.jpg,P1,shoe\n2.jpg,P2,shoe\n")
    cat = Catalog.open(tmp_path / "home")
    cat.ingest(imgs / "labels.csv", id_col="id")
    copied = tmp_path / "elsewhere" / "labels.csv"
    copied.parent.mkdir()
    copied.write_text("image,id,kind\nimages/0.jpg,P0,shirt\nimages/x.jpg,P1,shoe\nimages/y.jpg,NOPE,shoe\n")
    with pytest.raises(LabelsError, match=r"1 of 3 rows .*images/y.jpg"):
        read_labels(cat.db, copied, ["kind"])
    got = read_labels(cat.db, copied, ["kind"], skip_unknown=True)
    assert len(got.shas) == 2
    cat.close()
