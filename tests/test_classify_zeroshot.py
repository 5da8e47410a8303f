"""Zero-shot classification with CLIP-type models (tiny random hf CLIP; a stub text tower for logic)."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from catalens.classify.predict import field_probas, predict_rows
from catalens.classify.taxonomy import parse_taxonomy
from catalens.classify.zeroshot import prompt_name, templates_for, zeroshot_classifier
from catalens.cli import app
from catalens.errors import ClassifierError
from tests.conftest import make_product_image

pytestmark = pytest.mark.usefixtures("catalog_backend")  # each test on SQLite and on PostgreSQL

TAX = parse_taxonomy(
    {
        "name": "tiny-shop",
        "hierarchy": ["category", "type"],
        "tree": {"Apparel": ["Tshirts", "Jeans"], "Footwear": ["CasualShoes"]},
        "attributes": {"colour": ["Navy Blue", "Red"]},
    }
)


class WordEncoder:
    """Text tower stub: a prompt's vector is the sum of one-hot vectors of its known words."""

    version = "stub-v1"
    WORDS = ["apparel", "footwear", "tshirts", "jeans", "casual", "navy", "red"]

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(self.WORDS) + 1), np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().replace(",", " ").split():
                if w in self.WORDS:
                    out[i, self.WORDS.index(w)] += 1.0
            out[i, -1] = 0.1  # shared template component
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _image_vec(*words: str) -> np.ndarray:
    v = np.zeros(len(WordEncoder.WORDS) + 1, np.float32)
    for w in words:
        v[WordEncoder.WORDS.index(w)] = 1.0
    return v / np.linalg.norm(v)


def test_prompt_names_and_field_templates() -> None:
    assert prompt_name("CasualShoes") == "casual shoes" and prompt_name("Navy Blue") == "navy blue"
    assert prompt_name("Bags_and-Wallets") == "bags and wallets"
    assert templates_for("baseColour")[0] != templates_for("articleType")[0]


def test_zeroshot_heads_pick_the_matching_class_and_keep_the_hierarchy(monkeypatch) -> None:
    import catalens.models as models
    from catalens.models.registry import get_spec

    base = get_spec("minilm")  # any spec with a text tower
    monkeypatch.setattr(models, "get_spec", lambda name: base)
    clf = zeroshot_classifier("stub-clip", TAX, text_encoder=WordEncoder())
    assert clf.fields == ["category", "type", "colour"] and clf.method == "zeroshot"
    assert clf.head("type").W.shape == (3, len(WordEncoder.WORDS) + 1)
    np.testing.assert_allclose(np.linalg.norm(clf.head("type").W, axis=1), 1.0, atol=1e-5)
    X = np.stack(
        [
            _image_vec("jeans", "apparel", "red"),
            _image_vec("casual", "footwear", "navy"),
            _image_vec("tshirts"),
        ]
    )
    rows = predict_rows(clf, field_probas(clf, X))
    assert [r["type"].label for r in rows] == ["Jeans", "CasualShoes", "Tshirts"]
    assert [r["category"].label for r in rows] == ["Apparel", "Footwear", "Apparel"]
    assert [r["colour"].label for r in rows[:2]] == ["Red", "Navy Blue"]
    # an image of "tshirts" whose category evidence says footwear still gets a consistent path
    odd = predict_rows(clf, field_probas(clf, _image_vec("tshirts", "footwear", "footwear")[None]))[0]
    assert (odd["category"].label, odd["type"].label) in {("Apparel", "Tshirts"), ("Footwear", "CasualShoes")}


def test_zeroshot_errors_name_the_problem() -> None:
    with pytest.raises(ClassifierError, match="no text tower"):
        zeroshot_classifier("efficientnet-lite0", TAX)
    from catalens.errors import CatalensError

    with pytest.raises(CatalensError, match="(?i)to supply them|local"):
        zeroshot_classifier("hf:openai/clip-vit-base-patch32", TAX)


def test_tiny_clip_zero_shot_end_to_end(tiny_hf_clip, tmp_path) -> None:
    """Real text tower + image tower of a tiny random CLIP: valid probabilities, CLI wiring, saving."""
    name = f"hf:{tiny_hf_clip}"
    clf = zeroshot_classifier(name)  # the built-in e-commerce taxonomy
    assert clf.dim == 16 and set(clf.fields) >= {"category", "subcategory", "gender", "colour"}
    P = field_probas(clf, np.random.default_rng(0).standard_normal((4, 16)).astype(np.float32))
    for f, p in P.items():
        assert p.shape == (4, len(clf.classes(f))) and np.allclose(p.sum(1), 1.0, atol=1e-4)
    img = make_product_image(tmp_path / "p.jpg", 3, size=(60, 80))
    home = tmp_path / "home"
    r = CliRunner().invoke(app, ["--home", str(home), "classify", str(img), "--zero-shot", name, "--json"])
    assert r.exit_code == 0, r.output
    import json

    out = json.loads(r.stdout)[0]
    assert out["classifier"] == "zeroshot"
    # the CLI's answer is the tiny CLIP's own on this image (not merely one of the classes)
    from PIL import Image

    from catalens.models import load_image_encoder
    from catalens.vectors import l2_normalize

    enc = load_image_encoder(name)
    own = field_probas(clf, l2_normalize(enc.encode(enc.preprocess(Image.open(img).convert("RGB"))[None])))
    for f in ("gender", "colour"):  # no hierarchy above them: the top class
        assert out["fields"][f]["label"] == clf.classes(f)[int(own[f][0].argmax())], (f, out["fields"][f])
    for f in ("category", "gender", "colour"):
        got = out["fields"][f]
        assert got["prob"] == pytest.approx(float(own[f][0][clf.classes(f).index(got["label"])]), abs=1e-3)
    r = CliRunner().invoke(
        app,
        [
            "--home",
            str(home),
            "classify",
            "train",
            "zs",
            "--method",
            "zeroshot",
            "--model",
            name,
            "--field",
            "category",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["method"] == "zeroshot"
    r = CliRunner().invoke(app, ["--home", str(home), "classify", str(img), "-c", "zs", "--json"])
    assert (
        r.exit_code == 0
        and json.loads(r.stdout)[0]["fields"]["category"]["label"] == out["fields"]["category"]["label"]
    )
    r = CliRunner().invoke(
        app, ["--home", str(home), "classify", str(img), "--zero-shot", "efficientnet-lite0"]
    )
    assert r.exit_code != 0 and "no text tower" in r.output
