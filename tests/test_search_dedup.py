"""Copy verification (trim, coarse gate, ECC alignment) and the dedup neighbour search, on synthetic data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from catalens.search import copy_descriptor
from catalens.search.neighbours import neighbour_pairs
from tests.test_search_catalog import photo_like


def _scene(tmp_path: Path, seed: int) -> Image.Image:
    """A full-frame photo (no uniform margin), so a crop cuts into the content."""
    img = Image.open(photo_like(tmp_path / f"s{seed}.png", seed)).convert("RGB")
    return img.crop((40, 30, 200, 300))


def _check(a: Image.Image, b: Image.Image) -> tuple[float, float, float]:
    """(coarse structure, aligned structure, aligned colour) of one pair."""
    t = copy_descriptor.parse([copy_descriptor.describe(a), copy_descriptor.describe(b)])
    ia, ib = np.array([0]), np.array([1])
    co = copy_descriptor.coarse(t, ia, ib)
    st, col, _ = copy_descriptor.align(t, 0, 1, int(co.window[0]), bool(co.a_in_b[0]))
    return float(co.structure[0]), st, col


def test_trim_strips_added_border_and_background() -> None:
    img = Image.new("RGB", (100, 120), (255, 255, 255))
    texture = np.random.default_rng(0).integers(0, 160, (50, 40, 3), dtype=np.uint8)
    img.paste(Image.fromarray(texture), (30, 40))  # a textured product: rows 40-89, columns 30-69
    boxed = ImageOps.expand(img, border=9, fill=(20, 40, 120))
    assert np.abs(np.subtract(copy_descriptor.trim_box(np.asarray(img)), (40, 90, 30, 70))).max() <= 2
    t0, b0, l0, r0 = copy_descriptor.trim_box(np.asarray(boxed))
    assert abs(t0 - 49) <= 2 and abs(b0 - 99) <= 2 and abs(l0 - 39) <= 2 and abs(r0 - 79) <= 2


def test_anisotropic_crop_aligns_and_recolour_does_not(tmp_path: Path) -> None:
    img = _scene(tmp_path, 3)
    w, h = img.size
    crop = img.crop((int(0.09 * w), int(0.02 * h), w, int(0.97 * h)))  # 9% in x, 5% in y
    small = crop.resize((int(crop.width * 0.6), int(crop.height * 0.6)))
    _, st, col = _check(img, small)
    assert st >= 0.95 and col <= 12, (st, col)
    hsv = np.asarray(img.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + 90) % 256
    recoloured = Image.fromarray(hsv, "HSV").convert("RGB")
    _, st2, col2 = _check(img, recoloured)
    assert st2 >= 0.9 and col2 > 12, (st2, col2)  # same structure, another colour
    other = _scene(tmp_path, 11)
    _, st3, _ = _check(img, other)
    assert st3 < 0.95, st3


def test_neighbour_pairs_approximate_path_finds_near_duplicates() -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((1500, 64)).astype(np.float32)
    dups = base[:300] + 0.05 * rng.standard_normal((300, 64)).astype(np.float32)
    x = np.concatenate([base, dups])
    a, b, cos = neighbour_pairs(x, 5, 0.9, exact_max=10**9)
    ea, eb, _ = neighbour_pairs(x, 5, 0.9, exact_max=100)  # forces PCA + IVF
    exact = set(zip(a.tolist(), b.tolist(), strict=True))
    approx = set(zip(ea.tolist(), eb.tolist(), strict=True))
    planted = {(i, 1500 + i) for i in range(300)}
    assert planted <= exact and len(planted & approx) >= 0.97 * len(planted)
    assert np.all(a < b) and np.all(cos >= 0.9)


def _verdicts(images: list[Image.Image], pairs: list[tuple[int, int]]) -> list[str]:
    """dedup's verdict ("copy", "variant", "reshoot" or "") of each pair of ``images``."""
    from catalens.search.dedup import DedupOptions, classify, verify

    descs = {str(i): copy_descriptor.describe(im) for i, im in enumerate(images)}
    a, b = [str(i) for i, _ in pairs], [str(j) for _, j in pairs]
    cos = np.ones(len(pairs), dtype=np.float32)
    opts = DedupOptions()
    return list(classify(opts, np.full(len(pairs), np.nan, np.float32), verify(descs, a, b, cos, opts)))


def _product(tmp_path: Path, seed: int) -> Image.Image:
    return Image.open(photo_like(tmp_path / f"p{seed}.png", seed)).convert("RGB")


def _recolour(img: Image.Image) -> Image.Image:
    """The same template with the product in another hue (white background kept)."""
    import cv2

    arr = np.asarray(img)
    lab = cv2.cvtColor(arr, cv2.COLOR_RGB2LAB).astype(np.int16)
    fg = copy_descriptor.foreground(arr)
    lab[fg, 1], lab[fg, 2] = 256 - lab[fg, 1], 256 - lab[fg, 2]
    return Image.fromarray(cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB))


def _labelled(img: Image.Image, frac: float, where: str) -> Image.Image:
    """An opaque seller label covering ``frac`` of the photo, on the product or on the background."""
    from PIL import ImageDraw

    w, h = img.size
    bw, bh = int((frac * w * h * 2.5) ** 0.5), int((frac * w * h / 2.5) ** 0.5)
    x0, y0 = (w // 2 - bw // 2, h // 2) if where == "product" else (2, h - bh - 2)
    out = img.copy()
    d = ImageDraw.Draw(out)
    d.rectangle((x0, y0, x0 + bw, y0 + bh), fill=(30, 120, 40))
    d.text((x0 + 4, y0 + bh // 3), "Kavya Traders", fill=(255, 255, 255))
    return out


def test_copy_with_a_pasted_label_is_a_copy_and_a_recoloured_template_is_a_variant(tmp_path: Path) -> None:
    img = _product(tmp_path, 5)
    images = [
        img,
        _labelled(img, 0.08, "product"),
        _labelled(img, 0.06, "background").resize((180, 240)),
        _recolour(img),
        _product(tmp_path, 9),
    ]
    got = _verdicts(images, [(0, 1), (0, 2), (0, 3), (0, 4)])
    assert got[0] == "copy" and got[1] == "copy", got
    assert got[2] == "variant", got  # same template, other colour: a family, not a duplicate
    assert got[3] != "copy", got


def test_qc_duplicates_check_agrees_with_dedup(tmp_path: Path) -> None:
    from catalens.quality.checks.duplicates import DuplicatesCheck
    from catalens.quality.context import QCImage

    img = _product(tmp_path, 7)
    images = [img, _labelled(img, 0.07, "product"), _recolour(img), _product(tmp_path, 8)]
    paths = []
    for i, im in enumerate(images):
        paths.append(tmp_path / f"q{i}.png")
        im.save(paths[-1])
    check = DuplicatesCheck()
    items = []
    for p in paths:
        q = QCImage.load(p, max_bytes=10**8, max_pixels=10**8, max_side=10**5)
        items.append((str(p), check.fingerprint(q)))
    res = check.run_batch(items)
    flagged = {i for i, r in enumerate(res) if r is not None and r.verdict != "pass"}
    verdicts = _verdicts(images, [(0, 1), (0, 2), (0, 3)])
    assert flagged == {1 + k for k, v in enumerate(verdicts) if v == "copy"} == {1}, (flagged, verdicts)
    assert res[1] is not None and res[1].details["of"] == str(paths[0])
