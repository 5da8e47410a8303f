"""Fused image+title classifiers: hashed title words, sentence embeddings (a fake text encoder), CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from catalens.cli import app
from catalens.core import Catalog
from tests.conftest import make_product_image

pytestmark = pytest.mark.usefixtures("catalog_backend")  # each test on SQLite and on PostgreSQL

N = 24
runner = CliRunner()


def _run(home: Path, *args: str):
    return runner.invoke(app, ["--home", str(home), *args])


def test_title_words_are_stable_hashed_bags() -> None:
    from catalens.classify.text_features import WORDS_DIM, title_tokens, word_features

    toks = title_tokens("Nike Men Blue T-Shirts")
    assert {"w:nike", "w:shirts", "p:t_shirts", "l:shirts", "s:shirt", "s:tshirt", "ls:shirt"} <= set(toks)
    assert "s:tshirt" in title_tokens("Roadster Men Tshirts")  # "T-Shirts" and "Tshirts" meet
    assert "s:dress" in title_tokens("W Women Dresses") and "s:glass" in title_tokens("Glass")
    X = word_features(["Nike Men Blue T-Shirts", "nike men blue t shirts", None, ""])
    assert X.shape == (4, WORDS_DIM) and X.dtype == np.float32
    assert np.allclose(X[0], X[1]) and np.isclose(np.linalg.norm(X[0]), 1.0)
    assert not X[2].any() and not X[3].any()
    # same columns in another process would need the same hash: CRC-32, not Python's salted hash()
    import zlib

    assert X[0, zlib.crc32(b"w:nike") % WORDS_DIM] > 0


@pytest.fixture
def shop(fake_encoder: object, home: Path, tmp_path: Path) -> Path:
    """24 products that all look alike; only the title tells the kind."""
    root = tmp_path / "imgs"
    rows = ["image,id,productDisplayName,kind"]
    for i in range(N):
        p = make_product_image(root / f"p{i}.png", seed=0)
        im = Image.open(p).convert("RGB")
        im.putpixel((i, 0), (i * 9 % 256, 7, 200))
        im.save(p)
        kind = "Tshirts" if i % 2 == 0 else "Shoes"
        title = f"Brand{i % 5} Men Blue {'T-Shirt' if kind == 'Tshirts' else 'Running Shoes'}"
        rows.append(f"{p},P{i},{title},{kind}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    with Catalog.open(home) as cat:
        cat.ingest(tmp_path / "labels.csv", id_col="id", text_col="productDisplayName")
    return tmp_path / "labels.csv"


def test_train_title_words_classify_with_title_and_eval(shop: Path, home: Path) -> None:
    r = _run(home, "classify", "train", "fused", "--labels", str(shop), "--field", "kind", "--title-words",
             "--model", "fake-encoder", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["input"] == "image+words"
    ev = json.loads(_run(home, "classify", "eval", "-c", "fused", "--labels", str(shop), "--allow-train-overlap").stdout)
    assert ev["fields"]["kind"]["accuracy"] == 1.0  # the images alone cannot tell the kinds apart
    r = _run(home, "classify", "--all", "-c", "fused", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["labels"]["kind"] == {"Tshirts": 12, "Shoes": 12}
    img = str(next((shop.parent / "imgs").glob("p1.png")))
    for title, want in (("Acme Women Trail Running Shoes", "Shoes"), ("Acme Women T-Shirt", "Tshirts")):
        r = _run(home, "classify", img, "-c", "fused", "--title", title, "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)[0]["fields"]["kind"]["label"] == want
    r = _run(home, "classify", img, "-c", "fused")
    assert r.exit_code != 0 and "--title" in " ".join(r.output.split())


def test_text_model_and_words_fuse_in_order(shop: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--text-model`` adds the sentence embedding before the words (a fake 8-d text encoder)."""
    import catalens.models as models

    class FakeText:
        def encode(self, texts: list[str]) -> np.ndarray:
            v = np.array([[len(t), t.count("Shoes"), 1, 0, 0, 0, 0, 0] for t in texts], np.float32)
            return v / np.linalg.norm(v, axis=1, keepdims=True)

    monkeypatch.setattr(models, "load_text_encoder", lambda name, **kw: FakeText(), raising=False)
    with Catalog.open(home) as cat:
        clf = cat.train_classifier("tw", ["kind"], labels=shop, model="fake-encoder", text_model="fake-text",
                                   title_words=True, method="linear")  # fmt: skip
        assert clf.input == "image+text+words" and clf.text_model == "fake-text"
        from catalens.classify.text_features import WORDS_DIM

        assert clf.dim == 16 + 8 + WORDS_DIM
        res = cat.evaluate_classifier("tw", shop, allow_train_overlap=True)
        assert res.fields["kind"].accuracy == 1.0
        img = next((shop.parent / "imgs").glob("p0.png"))
        out = cat.classify([img], "tw", titles=["Zed Men Shoes"])
        assert out[0].fields["kind"].label == "Shoes"


def test_fused_training_needs_titles(fake_encoder: object, home: Path, tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    rows = ["image,id,kind"]
    for i in range(6):
        p = make_product_image(root / f"q{i}.png", seed=i % 2)
        im = Image.open(p).convert("RGB")
        im.putpixel((i, 0), (i * 9 % 256, 7, 200))
        im.save(p)
        rows.append(f"{p},Q{i},{'A' if i % 2 else 'B'}")
    (tmp_path / "l.csv").write_text("\n".join(rows) + "\n")
    with Catalog.open(home) as cat:
        cat.ingest(tmp_path / "l.csv", id_col="id")
    r = _run(home, "classify", "train", "x", "--labels", str(tmp_path / "l.csv"), "--field", "kind", "--title-words",
             "--model", "fake-encoder", "--method", "prototype")  # fmt: skip
    assert r.exit_code != 0 and "titles" in " ".join(r.output.split())
