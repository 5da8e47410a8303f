"""Full-detail copy verification (catalens.search.copydetail) and its place in dedup's verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from catalens.search import copydetail
from catalens.search.dedup import DedupOptions, Verification, detail_is_copy, refine


def studio_shot(
    seed: int, size: tuple[int, int] = (300, 400), colour: tuple[int, int, int] | None = None
) -> Image.Image:
    """A textured product (woven pattern, stitching, a print) on a white studio background."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(img)
    body = colour or tuple(int(c) for c in rng.integers(40, 200, 3))
    box = (int(w * 0.18), int(h * 0.12), int(w * 0.82), int(h * 0.9))
    d.rounded_rectangle(box, radius=18, fill=body)
    for _ in range(60):  # print and stitching: corners for keypoints
        x, y = int(rng.integers(box[0] + 8, box[2] - 20)), int(rng.integers(box[1] + 8, box[3] - 20))
        ink = tuple(int(c) for c in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            d.rectangle((x, y, x + int(rng.integers(4, 16)), y + int(rng.integers(4, 16))), fill=ink)
        else:
            d.line((x, y, x + int(rng.integers(-20, 20)), y + int(rng.integers(-20, 20))), fill=ink, width=2)
    return img.filter(ImageFilter.GaussianBlur(0.6))


def view(img: Image.Image) -> copydetail.DetailView:
    return copydetail.view_of(img)


def paste_label(img: Image.Image, frac: float = 0.06) -> Image.Image:
    out = img.copy()
    w, h = out.size
    bw = int((frac * w * h * 2.5) ** 0.5)
    bh = int(frac * w * h / bw)
    d = ImageDraw.Draw(out)
    d.rectangle((w - bw - 6, h - bh - 6, w - 6, h - 6), fill=(30, 90, 200), outline=(255, 255, 255), width=2)
    d.text((w - bw, h - bh), "SHOP 42", fill=(255, 255, 255))
    return out


OPTS = DedupOptions()


def test_copies_pass_the_detail_rule() -> None:
    orig = studio_shot(1)
    a = view(orig)
    copies = {
        "resize": orig.resize((120, 160), Image.Resampling.BICUBIC),
        "border": ImageOps.expand(orig, border=14, fill=(0, 0, 0)),
        "crop": orig.crop((12, 20, 300, 380)),
        "label": paste_label(orig),
    }
    for name, img in copies.items():
        d = copydetail.compare(a, view(img))
        assert detail_is_copy(OPTS, d), (name, d.to_dict())


def test_other_product_and_recolour_fail_the_detail_rule() -> None:
    a = view(studio_shot(1))
    other = copydetail.compare(a, view(studio_shot(2)))  # another product on the same background
    assert not detail_is_copy(OPTS, other), other.to_dict()
    # the same template in another colour: registered, but the product's pixels disagree
    arr = np.asarray(studio_shot(1)).astype(np.int16)
    mask = (arr < 240).any(axis=2)
    recol = arr.copy()
    recol[mask] = recol[mask][:, [2, 0, 1]]
    d = copydetail.compare(a, view(Image.fromarray(recol.astype(np.uint8))))
    assert d.aligned and d.inliers >= OPTS.detail_min_inliers
    assert not detail_is_copy(OPTS, d), d.to_dict()


def test_load_view_of_a_bad_file_is_none(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    assert copydetail.load_view(str(bad)) is None
    assert copydetail.load_view(str(tmp_path / "missing.jpg")) is None
    good = tmp_path / "good.jpg"
    studio_shot(3, size=(900, 1200)).save(good, quality=90)
    v = copydetail.load_view(str(good))
    assert v is not None and max(v.rgb.shape[:2]) == copydetail.SIDE and v.native == 1200


def _verification(n: int) -> Verification:
    from catalens.search import copy_descriptor

    k = len(copy_descriptor.SCORE_FIELDS)
    ones = np.ones(n, dtype=bool)
    scores = np.ones((n, k), dtype=np.float32)  # structure 1, colour 1 ...: a coarse "copy"
    return Verification(
        ones, ones, np.ones(n, np.float32), np.ones(n, np.float32), np.ones(n, np.float32), scores
    )


@pytest.mark.parametrize("detail", [True, False])
def test_refine_overrules_a_coarse_copy_only_when_it_can_see(detail: bool) -> None:
    views = {
        "a": view(studio_shot(1)),
        "b": view(studio_shot(2)),  # not a copy of a, though the coarse stage said so
        "flat1": view(Image.new("RGB", (200, 260), (250, 250, 250))),  # no keypoints: cannot tell
        "flat2": view(Image.new("RGB", (200, 260), (249, 250, 250))),
    }
    opts = DedupOptions(detail=detail)
    cos = np.array([0.9, 0.9], dtype=np.float32)
    verdict = np.array(["copy", "copy"], dtype=object)
    out, scores = refine(
        opts, cos, _verification(2), verdict, ["a", "flat1"], ["b", "flat2"], views.__getitem__
    )
    if detail:
        assert out[0] != "copy" and 0 in scores
        assert out[1] == "copy" and 1 not in scores  # the coarse verdict stands
    else:
        assert list(out) == ["copy", "copy"] and scores == {}


def test_refine_with_an_unreadable_image_keeps_the_coarse_verdict() -> None:
    views = {"a": view(studio_shot(1)), "gone": None}
    cos = np.array([0.9], dtype=np.float32)
    out, scores = refine(
        OPTS, cos, _verification(1), np.array(["copy"], dtype=object), ["a"], ["gone"], views.__getitem__
    )
    assert out[0] == "copy" and scores == {}


def test_thumbnail_copies_are_registered_by_their_frames() -> None:
    """A 0.4 resize of a 60x80 thumbnail (24x32) has no keypoints worth matching: the frames are
    compared (method "frame"); another product's thumbnail of the same shape is not a copy."""
    thumb = studio_shot(4, size=(300, 400)).resize((60, 80), Image.Resampling.LANCZOS)
    a = view(thumb)
    tiny = thumb.resize((24, 32), Image.Resampling.BICUBIC)
    d = copydetail.compare(a, view(tiny), OPTS.detail_min_inliers, OPTS.detail_min_inlier_ratio)
    assert d.method == "frame" and d.aligned and detail_is_copy(OPTS, d), d.to_dict()
    other = studio_shot(5, size=(300, 400)).resize((24, 32), Image.Resampling.BICUBIC)
    o = copydetail.compare(a, view(other), OPTS.detail_min_inliers, OPTS.detail_min_inlier_ratio)
    assert not detail_is_copy(OPTS, o), o.to_dict()
    # another shape (a crop) is never frame-registered, nor are photos over FRAME_MAX_NATIVE
    squat = thumb.crop((0, 0, 60, 60)).resize((24, 24))
    assert copydetail.compare(a, view(squat), 15, 0.25).method != "frame"
    big = studio_shot(6, size=(300, 400))
    flat = copydetail.compare(view(big), view(Image.new("RGB", (150, 200), "white")), 15, 0.25)
    assert flat.method == "" and not flat.aligned


def test_refine_takes_a_frame_copy_of_a_thumbnail_without_keypoints() -> None:
    thumb = studio_shot(7, size=(300, 400)).resize((45, 60), Image.Resampling.LANCZOS)
    views = {"t": view(thumb), "r": view(thumb.resize((18, 24), Image.Resampling.BICUBIC))}
    cos = np.array([0.7], dtype=np.float32)
    rank = np.zeros(1, dtype=np.int64)  # each other's nearest: picked although the coarse stage said no
    verdict = np.array([""], dtype=object)
    out, scores = refine(OPTS, cos, _verification(1), verdict, ["t"], ["r"], views.__getitem__, rank=rank)
    assert out[0] == "copy" and scores[0].method == "frame", scores[0].to_dict()


def test_refine_loads_each_view_about_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pairs are checked in an order whose photos were loaded shortly before (reverse Cuthill-McKee):
    a chain of look-alikes given in random order loads each photo once with a 4-view cache."""
    from catalens.search import dedup

    rng = np.random.default_rng(0)
    names = [f"img{i:04d}" for i in rng.permutation(400)]  # keys unrelated to the chain's order
    pairs = [(names[i], names[i + 1]) for i in range(399)]
    pairs = [pairs[i] for i in rng.permutation(len(pairs))]
    loads: list[str] = []

    def load(key: str) -> None:
        loads.append(key)
        return None  # unreadable: the coarse verdict stands, no comparison

    monkeypatch.setattr(dedup, "VIEW_CACHE", 4)
    n = len(pairs)
    cos = np.full(n, 0.9, dtype=np.float32)
    verdict = np.array(["copy"] * n, dtype=object)
    out, _ = refine(
        OPTS, cos, _verification(n), verdict, [a for a, _ in pairs], [b for _, b in pairs], load, workers=1
    )
    assert list(out) == ["copy"] * n
    assert len(loads) == len(set(loads)) == 400
    order = dedup.cache_friendly_order(np.arange(n), [a for a, _ in pairs], [b for _, b in pairs])
    assert sorted(order) == list(range(n))
