"""Product colour: foreground separation, k-means in CIELAB, names from a retail palette.

1. Foreground. The image is shrunk to at most 128 px. If its border is nearly uniform (a studio
   background, white or not), the foreground is every pixel farther than ``BG_DELTA_E`` from the
   border colour (CIELAB distance), cleaned with a morphological opening. Otherwise (a cluttered
   user photo) OpenCV GrabCut runs from a centre rectangle. A mask under 3% of the image falls
   back to a centre ellipse. On a plain near-white backdrop, callers that ask for it
   (``detect_on_white``; ``Catalog.colours`` does) use the packaged product detector's mask instead:
   it gained on held-out white-background photos and lost on grey ones (bench/quality_mask.py).
2. K-means (k=5) on the foreground pixels in CIELAB; each cluster is named by the nearest palette
   colour or shade of one (CIE76 distance; ``SHADES``); clusters with the same name merge;
   percentages are of the foreground.
   Skin-tone pixels are dropped when a model wears the product; percentages weight pixels
   towards the centre of the frame.
3. "Multi" when no colour reaches 35% and at least three colours hold 15% or more.

:func:`colour_features` (palette histogram + Lab statistics of the foreground) feeds the learned
calibration onto a catalog's own colour labels (``--colour-features`` in training).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# retail palette: name -> sRGB
PALETTE: dict[str, tuple[int, int, int]] = {
    "Black": (20, 20, 22),
    "White": (245, 245, 243),
    "Grey": (128, 128, 130),
    "Charcoal": (60, 62, 66),
    "Silver": (192, 192, 196),
    "Navy Blue": (25, 35, 80),
    "Blue": (40, 90, 190),
    "Turquoise Blue": (40, 180, 190),
    "Teal": (0, 120, 120),
    "Green": (40, 140, 60),
    "Olive": (110, 110, 45),
    "Lime Green": (160, 210, 60),
    "Yellow": (240, 210, 40),
    "Mustard": (200, 160, 40),
    "Gold": (200, 165, 80),
    "Orange": (240, 130, 30),
    "Peach": (250, 190, 160),
    "Red": (200, 30, 40),
    "Maroon": (110, 20, 35),
    "Pink": (240, 140, 170),
    "Magenta": (200, 40, 140),
    "Purple": (110, 50, 140),
    "Lavender": (180, 160, 210),
    "Brown": (110, 70, 40),
    "Tan": (190, 150, 100),
    "Beige": (225, 205, 170),
    "Cream": (245, 235, 205),
    "Khaki": (180, 170, 120),
}
# Extra naming prototypes: a garment's colour spreads over shades (light, shadow) and a name like
# "Blue" covers a region of CIELAB far larger than one point. Naming uses these with PALETTE;
# the calibration descriptor (colour_calib.py) keeps one point per name.
SHADES: list[tuple[str, tuple[int, int, int]]] = [
    ("Black", (45, 45, 50)),
    ("White", (225, 225, 228)),
    ("Grey", (95, 95, 100)),
    ("Grey", (165, 165, 168)),
    ("Navy Blue", (40, 50, 90)),
    ("Blue", (60, 130, 200)),
    ("Blue", (110, 160, 215)),
    ("Blue", (160, 200, 235)),
    ("Blue", (70, 90, 150)),
    ("Green", (20, 90, 50)),
    ("Green", (90, 170, 100)),
    ("Green", (150, 205, 160)),
    ("Red", (220, 60, 60)),
    ("Red", (160, 25, 35)),
    ("Maroon", (90, 25, 40)),
    ("Pink", (250, 190, 210)),
    ("Pink", (225, 100, 140)),
    ("Purple", (150, 100, 180)),
    ("Brown", (75, 50, 35)),
    ("Brown", (145, 100, 65)),
    ("Yellow", (250, 230, 120)),
    ("Orange", (250, 165, 90)),
    ("Teal", (30, 100, 110)),
]
BG_DELTA_E = 12.0
MULTI = "Multi"


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8/float (..., 3) -> CIELAB (D65)."""
    c = np.asarray(rgb, np.float64) / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


PALETTE_NAMES = list(PALETTE)
PALETTE_LAB = rgb_to_lab(np.array([PALETTE[n] for n in PALETTE_NAMES], np.float64))
_NAMING = [(n, PALETTE[n]) for n in PALETTE_NAMES] + SHADES
_NAMING_LAB = rgb_to_lab(np.array([rgb for _, rgb in _NAMING], np.float64))
_NAMING_INDEX = np.array([PALETTE_NAMES.index(n) for n, _ in _NAMING])


@dataclass
class ColourResult:
    colours: list[tuple[str, float, tuple[int, int, int]]]  # name, fraction, mean sRGB
    primary: str
    foreground_fraction: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "primary": self.primary,
            "colours": [
                {"name": n, "percent": round(100 * f, 1), "rgb": list(rgb)} for n, f, rgb in self.colours
            ],
            "foreground_percent": round(100 * self.foreground_fraction, 1),
            "foreground_method": self.method,
        }


def _small(img: Any, side: int = 128) -> np.ndarray:
    im = img.convert("RGB")
    im.thumbnail((side, side))
    return np.asarray(im, np.uint8)


def _border(arr: np.ndarray) -> np.ndarray:
    """The pixels (N, 3) of the outer twentieth of each side."""
    h, w, _ = arr.shape
    b = max(2, min(h, w) // 20)
    return np.concatenate(
        [
            arr[:b].reshape(-1, 3),
            arr[-b:].reshape(-1, 3),
            arr[:, :b].reshape(-1, 3),
            arr[:, -b:].reshape(-1, 3),
        ]
    )


def white_backdrop(arr: np.ndarray) -> bool:
    """Whether the photo's border is a plain near-white studio backdrop (median colour: every channel
    >= 230, channel spread <= 15, and 80% of the border within 6 CIELAB units of it)."""
    border = _border(arr)
    med = np.median(border, axis=0)
    if med.min() < 230 or med.max() - med.min() > 15:
        return False
    blab = rgb_to_lab(border)
    return bool(np.percentile(np.linalg.norm(blab - np.median(blab, axis=0), axis=1), 80) < 6.0)


def foreground_mask(arr: np.ndarray) -> tuple[np.ndarray, str]:
    """Boolean foreground mask of an RGB array and the method used ("border" or "grabcut")."""
    import cv2

    h, w, _ = arr.shape
    lab = rgb_to_lab(arr)
    blab = rgb_to_lab(_border(arr))
    bg = np.median(blab, axis=0)
    spread = np.percentile(np.linalg.norm(blab - bg, axis=1), 80)
    kernel = np.ones((3, 3), np.uint8)
    if spread < 6.0:
        mask = (np.linalg.norm(lab - bg, axis=-1) > BG_DELTA_E).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
        method = "border"
    else:
        gc = np.zeros((h, w), np.uint8)
        rect = (max(1, w // 10), max(1, h // 10), max(2, w - 2 * (w // 10)), max(2, h - 2 * (h // 10)))
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        try:
            cv2.grabCut(cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), gc, rect, bgd, fgd, 4, cv2.GC_INIT_WITH_RECT)
            mask = np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
        except cv2.error:
            mask = np.zeros((h, w), np.uint8)
        method = "grabcut"
    if mask.mean() < 0.03:
        yy, xx = np.mgrid[:h, :w]
        mask = ((((yy - h / 2) / (0.35 * h)) ** 2 + ((xx - w / 2) / (0.35 * w)) ** 2) <= 1).astype(np.uint8)
        method += "+centre"
    return mask.astype(bool), method


def detected_mask(img: Any) -> np.ndarray | None:
    """The packaged product detector's product-pixel mask of a PIL image (at most 384 px), or None."""
    from catalens.detect.detector import photo_product_mask

    return photo_product_mask(img, max_side=384)


def _resize_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    import cv2

    small = cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return small.astype(bool)


def _kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = min(k, len(x))
    centres = x[rng.choice(len(x), k, replace=False)]
    for _ in range(iters):
        d = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
        lab = d.argmin(1)
        for j in range(k):
            sel = x[lab == j]
            if len(sel):
                centres[j] = sel.mean(0)
    return centres, lab


def name_lab(lab: np.ndarray) -> np.ndarray:
    """Index into :data:`PALETTE_NAMES` of the nearest palette colour or shade of each Lab row."""
    d = np.linalg.norm(np.asarray(lab)[:, None, :] - _NAMING_LAB[None], axis=-1)
    return _NAMING_INDEX[d.argmin(1)]


def skin_mask(rgb: np.ndarray) -> np.ndarray:
    """Skin-tone pixels (the classic YCrCb box: 133 <= Cr <= 173, 77 <= Cb <= 127)."""
    import cv2

    ycc = cv2.cvtColor(np.ascontiguousarray(rgb, np.uint8).reshape(-1, 1, 3), cv2.COLOR_RGB2YCrCb)[:, 0]
    cr, cb = ycc[:, 1].astype(int), ycc[:, 2].astype(int)
    return (cr >= 133) & (cr <= 173) & (cb >= 77) & (cb <= 127)


def dominant_colours(
    img: Any,
    k: int = 5,
    max_pixels: int = 4000,
    *,
    product_mask: np.ndarray | None = None,
    detect_on_white: bool = False,
) -> ColourResult:
    """The product's dominant colours (foreground only), named and with percentages.

    Skin-tone pixels are left out when the rest holds at least 40% of the foreground (a model
    wearing the product). Percentages weight pixels towards the centre of the frame (Gaussian,
    sigma = 30% of each side), where the product sits in a catalog photo and where other worn
    items (trousers under a shirt, hair) are not. ``primary`` is "Multi" when no colour reaches
    35% and at least three hold 15% or more.

    ``product_mask`` (bool, the image's size or any size of the same shape ratio), e.g. the product
    detector's mask, replaces the foreground separation when it covers at least 3% of the image.
    ``detect_on_white``: on a plain near-white backdrop, run the packaged product detector and use its
    mask (off a white backdrop the backdrop-colour separation stays: see bench/RESULTS.md "QC on the
    product mask" for how this was chosen).
    """
    arr = _small(img)
    if product_mask is None and detect_on_white and white_backdrop(arr):
        product_mask = detected_mask(img)
    given = None if product_mask is None else _resize_mask(product_mask, arr.shape[:2])
    if given is not None and given.mean() >= 0.03:
        mask, method = given, "mask"
    else:
        mask, method = foreground_mask(arr)
    h, w = mask.shape
    yy, xx = np.nonzero(mask)
    weight = np.exp(-(((xx - (w - 1) / 2) / (0.3 * w)) ** 2 + ((yy - (h - 1) / 2) / (0.3 * h)) ** 2) / 2)
    px = arr[yy, xx]
    skin = skin_mask(px)
    if skin.any() and (~skin).sum() >= 0.4 * len(px):  # a model wearing the product: drop the skin
        px, weight = px[~skin], weight[~skin]
        method += "-skin"
    px = px.astype(np.float64)
    if len(px) > max_pixels:
        pick = np.random.default_rng(0).choice(len(px), max_pixels, replace=False)
        px, weight = px[pick], weight[pick]
    lab = rgb_to_lab(px)
    centres, assign = _kmeans(lab, k)
    names = name_lab(centres)
    total = float(weight.sum()) or 1.0
    frac: dict[str, float] = {}
    rgb_sum: dict[str, np.ndarray] = {}
    count: dict[str, int] = {}
    for j in range(len(centres)):
        sel = assign == j
        if not sel.any():
            continue
        n = PALETTE_NAMES[names[j]]
        frac[n] = frac.get(n, 0.0) + float(weight[sel].sum()) / total
        rgb_sum[n] = rgb_sum.get(n, np.zeros(3)) + px[sel].sum(0)
        count[n] = count.get(n, 0) + int(sel.sum())
    colours = sorted(
        ((n, float(f), tuple(int(v) for v in rgb_sum[n] / max(count[n], 1))) for n, f in frac.items()),
        key=lambda t: -t[1],
    )
    big = [c for c in colours if c[1] >= 0.15]
    primary = MULTI if colours[0][1] < 0.35 and len(big) >= 3 else colours[0][0]
    return ColourResult(colours, primary, float(mask.mean()), method)  # type: ignore[arg-type]


def colour_features(img: Any) -> np.ndarray:
    """Fixed-length colour descriptor of the foreground: palette histogram (soft) + Lab stats.

    ``len(PALETTE) + 9`` values: soft-assigned palette fractions, Lab mean, Lab std, and the Lab
    of the largest k-means cluster, scaled to about unit range.
    """
    arr = _small(img, 96)
    mask, _ = foreground_mask(arr)
    lab = rgb_to_lab(arr[mask].astype(np.float64))
    if len(lab) > 3000:
        lab = lab[np.random.default_rng(0).choice(len(lab), 3000, replace=False)]
    d = np.linalg.norm(lab[:, None, :] - PALETTE_LAB[None], axis=-1)
    w = np.exp(-((d - d.min(1, keepdims=True)) ** 2) / (2 * 8.0**2))
    w /= w.sum(1, keepdims=True)
    hist = w.mean(0)
    centres, assign = _kmeans(lab.copy(), 3, iters=8)
    top = centres[np.bincount(assign, minlength=len(centres)).argmax()]
    stats = np.concatenate([lab.mean(0), lab.std(0), top]) / 50.0
    return np.concatenate([hist * 3.0, stats]).astype(np.float32)
