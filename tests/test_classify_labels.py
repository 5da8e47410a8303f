"""Labels CSV rows resolve to stored images, including byte-identical copies stored once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import make_product_image

from catalens import Catalog
from catalens.classify.errors import LabelsError
from catalens.classify.labels import read_labels


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
