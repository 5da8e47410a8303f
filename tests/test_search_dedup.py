"""Copy verification (trim, coarse gate, ECC alignment) and the dedup neighbour search, on synthetic data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from catalens.search import copyfeat
from catalens.search.neighbours import neighbour_pairs
from tests.test_search_catalog import photo_like


def _scene(tmp_path: Path, seed: int) -> Image.Image:
    """A full-frame photo (no uniform margin), so a crop cuts into the content."""
    img = Image.open(photo_like(tmp_path / f"s{seed}.png", seed)).convert("RGB")
    return img.crop((40, 30, 200, 300))


def _check(a: Image.Image, b: Image.Image) -> tuple[float, float, float]:
    """(coarse structure, aligned structure, aligned colour) of one pair."""
    t = copyfeat.parse([copyfeat.describe(a), copyfeat.describe(b)])
    ia, ib = np.array([0]), np.array([1])
    co = copyfeat.coarse(t, ia, ib)
    st, col, _ = copyfeat.align(t, 0, 1, int(co.window[0]), bool(co.a_in_b[0]))
    return float(co.structure[0]), st, col


def test_trim_strips_added_border_and_background() -> None:
    img = Image.new("RGB", (100, 120), (255, 255, 255))
    texture = np.random.default_rng(0).integers(0, 160, (50, 40, 3), dtype=np.uint8)
    img.paste(Image.fromarray(texture), (30, 40))  # a textured product: rows 40-89, columns 30-69
    boxed = ImageOps.expand(img, border=9, fill=(20, 40, 120))
    assert np.abs(np.subtract(copyfeat.trim_box(np.asarray(img)), (40, 90, 30, 70))).max() <= 2
    t0, b0, l0, r0 = copyfeat.trim_box(np.asarray(boxed))
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


def test_partial_recolour_fails_the_p90_colour_check_but_a_logo_passes(tmp_path: Path) -> None:
    """Another colour of the lower garment of a model shot (a fifth of the frame) is no copy; a logo is."""
    from PIL import ImageDraw

    from catalens.search.dedup import DedupOptions

    img = _scene(tmp_path, 5)
    w, h = img.size
    import cv2

    lab = cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2LAB).astype(np.float32)
    lower = lab[4 * h // 5 :]  # the lower fifth (trousers of a model shot) in another hue, same lightness
    a, b = lower[..., 1] - 128, lower[..., 2] - 128
    lower[..., 1], lower[..., 2] = 128 - a, 128 - b
    part = Image.fromarray(cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB))
    logo = img.copy()
    ImageDraw.Draw(logo).ellipse((w // 2, h // 5, w // 2 + w // 12, h // 5 + w // 12), fill=(200, 40, 160))
    opts = DedupOptions()
    t = copyfeat.parse([copyfeat.describe(x) for x in (img, part, logo)])
    co = copyfeat.coarse(t, np.array([0, 0]), np.array([1, 2]))
    st_p, c75_p, c90_p = copyfeat.align(t, 0, 1, int(co.window[0]), bool(co.a_in_b[0]))
    st_l, c75_l, c90_l = copyfeat.align(t, 0, 2, int(co.window[1]), bool(co.a_in_b[1]))
    assert st_l >= opts.min_structure and c75_l <= opts.max_colour and c90_l <= opts.max_colour_p90
    # same structure and 75th-percentile colour as a copy: only the 90th percentile tells them apart
    assert st_p >= opts.min_structure and c75_p <= opts.max_colour, (st_p, c75_p)
    assert c90_p > opts.max_colour_p90, (st_p, c75_p, c90_p)
