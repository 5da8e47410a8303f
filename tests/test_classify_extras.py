"""Vectorised prediction, brand tagging helpers, the colour descriptor and the per-image cache."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from catalens.classify.brand.tagger import brand_from_title, brand_labels, match_brand, train_brand_tagger
from catalens.classify.classifier import Classifier, FieldHead, softmax
from catalens.classify.colour.calibration import DESCRIPTOR_DIM, colour_descriptor, skin_mask
from catalens.classify.heads import fit_linear, fit_prototype
from catalens.classify.predict import field_probas, predict_arrays, predict_rows, topk


def _clf(seed: int = 0) -> Classifier:
    rng = np.random.default_rng(seed)
    heads = {
        "m": FieldHead(
            "m", ["A", "B"], rng.standard_normal((2, 8)).astype(np.float32), np.zeros(2, np.float32)
        ),
        "s": FieldHead(
            "s",
            ["a1", "a2", "b1"],
            rng.standard_normal((3, 8)).astype(np.float32),
            np.zeros(3, np.float32),
            temperature=2.0,
        ),
        "c": FieldHead(
            "c", ["x", "y", "z", "w"], rng.standard_normal((4, 8)).astype(np.float32), np.ones(4, np.float32)
        ),
    }
    return Classifier(
        "t",
        "v",
        "linear",
        "m",
        None,
        heads,
        paths=[["A", "a1"], ["A", "a2"], ["B", "b1"]],
        extra={"hierarchy": ["m", "s"]},
    )


def test_stacked_probas_equal_per_head_softmax_and_arrays_match_rows() -> None:
    clf = _clf()
    X = np.random.default_rng(1).standard_normal((50, 8)).astype(np.float32)
    P = field_probas(clf, X)
    for f, h in clf.heads.items():
        ref = softmax((X @ h.W.T + h.b) / h.temperature)
        np.testing.assert_allclose(P[f], ref, rtol=1e-5, atol=1e-6)
    A = predict_arrays(clf, P, top_k=2)
    rows = predict_rows(clf, P, top_k=2)
    for i, r in enumerate(rows):
        for f in clf.fields:
            assert r[f].label == clf.classes(f)[A[f].label[i]] and [c for c, _ in r[f].top_k] == [
                clf.classes(f)[j] for j in A[f].top_idx[i]
            ]
        assert (r["m"].label, r["s"].label) in {("A", "a1"), ("A", "a2"), ("B", "b1")}
    # joint decoding = brute force over the allowed paths
    for i in range(len(X)):
        best = max([(0, 0), (0, 1), (1, 2)], key=lambda p: np.log(P["m"][i, p[0]]) + np.log(P["s"][i, p[1]]))
        assert (A["m"].label[i], A["s"].label[i]) == best


def test_topk_sorted_and_exact() -> None:
    p = np.random.default_rng(2).random((30, 12)).astype(np.float32)
    for k in (1, 3, 6, 12):
        idx, val = topk(p, k)
        np.testing.assert_array_equal(idx, np.argsort(-p, axis=1)[:, :k])
        np.testing.assert_allclose(val, np.take_along_axis(p, idx, 1))


def test_linear_warm_start_and_centred_prototypes() -> None:
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 1.0, (40, 6)) for c in (-2, 0, 2)]).astype(np.float32)
    y = np.repeat(np.arange(3), 40)
    W, b = fit_linear(X, y, 3)
    W2, b2 = fit_linear(X, y, 3, init=(W, b), max_iter=5)
    assert ((X @ W2.T + b2).argmax(1) == y).mean() >= ((X @ W.T + b).argmax(1) == y).mean() - 0.02
    mu = X.mean(0)
    Wc, bc = fit_prototype(X, y, 3, centre=mu)
    Xc = X - mu
    ref = (Xc / np.linalg.norm(Xc, axis=1, keepdims=True)) @ Wc.T
    assert ((X @ Wc.T + bc).argmax(1) == ref.argmax(1)).all()


def test_brand_from_titles_and_fuzzy_ocr_match() -> None:
    assert brand_from_title("Nike Women As Trophy Swo White T-Shirts") == "Nike"
    assert brand_from_title("U.S. Polo Assn. Men Blue Shirt") == "U.S. Polo Assn."
    assert brand_from_title("Puma Men's Calibre Shoe") == "Puma"
    assert brand_from_title("Reebok T-shirt White Polo Tshirt") is None  # no gender word
    assert brand_labels(["ADIDAS Men Tee", "Adidas Women Tee", "Adidas Men Cap"]) == ["Adidas"] * 3
    brands = ["Nike", "Adidas", "Puma", "U.S. Polo Assn."]
    assert match_brand([("NIKE", 0.99), ("athletic", 0.9)], brands) == ("Nike", 1.0)
    assert match_brand([("US POLO", 0.95)], brands)[0] is None  # too far from "uspoloassn"
    assert match_brand([("ADIDAAS", 0.9)], brands)[0] == "Adidas"
    assert match_brand([("PUMA", 0.3)], brands)[0] is None  # low OCR confidence ignored
    assert match_brand([("hello", 0.99)], brands)[0] is None


def test_brand_tagger_learns_logos_and_abstains() -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 16)) * 2
    titles, X = [], []
    for i in range(240):
        k = i % 4
        titles.append(["Nike Men Tee", "Puma Women Shoe", "Biba Women Kurta", None][k])
        X.append(centres[k] + rng.standard_normal(16))
    titles += ["Rare Men Tee"] * 3
    X += [rng.standard_normal(16) * 3 for _ in range(3)]
    X = np.asarray(X, np.float32)
    tagger = train_brand_tagger(X, titles, min_examples=10)
    assert tagger.brands == ["Biba", "Nike", "Puma"] and "Rare" in tagger.all_brands
    out = tagger.predict(X[:12], [[("PUMA", 0.99)]] + [[] for _ in range(11)])
    assert out[0] == {"brand": "Puma", "prob": 1.0, "source": "ocr"}
    truth = [["Nike", "Puma", "Biba", None][i % 4] for i in range(1, 12)]
    logo = [r["brand"] for r in out[1:]]
    assert all(p == t for p, t in zip(logo, truth, strict=True) if t is not None)


def _photo(colour: tuple[int, int, int], skin: bool = False) -> Image.Image:
    a = np.full((300, 225, 3), 250, np.uint8)
    a[60:260, 50:175] = colour
    if skin:
        a[20:60, 80:145] = (224, 172, 140)  # a face above the garment
    return Image.fromarray(a)


def test_colour_descriptor_separates_colours_and_drops_skin() -> None:
    red, blue = colour_descriptor(_photo((200, 30, 40))), colour_descriptor(_photo((40, 60, 190)))
    assert red.shape == (DESCRIPTOR_DIM,) and red.dtype == np.float32
    assert np.linalg.norm(red - blue) > 1.0
    assert skin_mask(np.array([[224, 172, 140], [40, 60, 190]], np.uint8)).tolist() == [True, False]
    with_face = colour_descriptor(_photo((40, 60, 190), skin=True))
    assert with_face[-1] > 0.05  # skin fraction
    # the skin-free Lab histogram is unchanged by the face; the all-pixel one is not
    n = 5 * 7 * 7
    assert np.abs(with_face[n : 2 * n] - blue[n : 2 * n]).sum() < np.abs(with_face[:n] - blue[:n]).sum()


def test_colour_descriptor_on_a_given_product_mask() -> None:
    """A mask given (e.g. the product detector's) is the foreground: a red garment on a blue
    backdrop described on its mask matches the same garment on white."""
    on_white = colour_descriptor(_photo((200, 30, 40)))
    a = np.asarray(_photo((200, 30, 40))).copy()
    garment = (a == (200, 30, 40)).all(axis=2)
    a[~garment] = (40, 60, 190)  # a saturated blue backdrop
    own = colour_descriptor(Image.fromarray(a))
    given = colour_descriptor(Image.fromarray(a), garment)
    assert np.linalg.norm(given - on_white) < np.linalg.norm(own - on_white)
    assert np.allclose(colour_descriptor(Image.fromarray(a), np.zeros_like(garment)), own)  # empty: own split


@pytest.mark.usefixtures("catalog_backend")  # on SQLite and on PostgreSQL
def test_feature_cache_computes_once(tmp_path) -> None:
    from catalens.catalog.db import CatalogDB
    from catalens.classify.cache import cached, decode_vector, encode_vector
    from catalens.config import Settings

    db = CatalogDB(Settings(home=tmp_path).database_url)
    calls: list[str] = []

    def compute(sha: str) -> bytes:
        calls.append(sha)
        return encode_vector(np.full(3, len(calls), np.float32))

    first = cached(db, "test-v1", ["a", "b", "a"], compute, batch=1)
    again = cached(db, "test-v1", ["b", "a", "c"], compute)
    assert calls == ["a", "b", "c"]
    assert decode_vector(again["a"]).tolist() == decode_vector(first["a"]).tolist() == [1.0, 1.0, 1.0]
