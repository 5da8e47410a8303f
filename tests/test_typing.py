"""The typed core (issue 19): ``mypy --strict`` on the Catalog, its mixins and what they return. The
check must fail on an ``Any`` leaking out of a typed function (the second test proves it does)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")

SRC = Path(__file__).resolve().parents[1] / "src" / "catalens"
TYPED = [
    "__init__.py",
    "core.py",
    "catalog_base.py",
    "registry.py",
    "ocr.py",
    "catalog/products.py",
    "quality/summary.py",
    "search/duplicates.py",
    "quality/checks/duplicates.py",
    "api/insights.py",
    "classify/results.py",  # public results (the others are checked where the Catalog returns them)
    "quality/result.py",
    *sorted(str(p.relative_to(SRC)) for p in SRC.glob("*/catalog_methods.py")),
]
FLAGS = ["--strict", "--follow-imports=silent", "--ignore-missing-imports", "--no-error-summary"]


def _mypy(paths: list[str], cache: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "mypy", *FLAGS, "--cache-dir", str(cache), *paths]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=SRC.parents[1])


def test_core_catalog_methods_and_results_type_check(tmp_path: Path) -> None:
    assert len(TYPED) >= 12  # the core, every task's catalog methods
    res = _mypy([str(SRC / p) for p in TYPED], tmp_path / "cache")
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_check_fails_on_an_any_leak(tmp_path: Path) -> None:
    leak = tmp_path / "leak.py"
    leak.write_text(
        "import json\n\n\ndef count(text: str) -> int:\n    return json.loads(text)\n", encoding="utf-8"
    )
    res = _mypy([str(leak)], tmp_path / "cache")
    assert res.returncode != 0 and "Returning Any" in res.stdout


def test_public_results_are_exported_typed_dataclasses() -> None:
    import dataclasses

    import catalens

    for name in catalens.__all__:
        if name in ("Catalog", "__version__", "Recommendation"):
            continue
        cls = getattr(catalens, name)
        assert dataclasses.is_dataclass(cls) and callable(getattr(cls, "to_dict", None)), name
    with pytest.raises(AttributeError):
        catalens.NoSuchThing  # noqa: B018


def test_catalog_open_takes_every_setting_by_name() -> None:
    """Issue 19: ``Catalog.open`` names each :class:`~catalens.config.Settings` field it forwards (typed
    keywords, no ``**settings``), and documents them."""
    import dataclasses
    import inspect

    from catalens.config import Settings
    from catalens.core import Catalog

    params = inspect.signature(Catalog.open).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values())
    assert set(params) == {f.name for f in dataclasses.fields(Settings)}
    doc = inspect.getdoc(Catalog.open) or ""
    assert all(f"``{p}``" in doc for p in params), doc


def test_every_public_catalog_method_documents_its_arguments() -> None:
    """Issue 19: the public ``Catalog`` methods say what each argument does (a newcomer reads them)."""
    import inspect

    from catalens.core import Catalog

    gaps = {}
    for name, fn in inspect.getmembers(Catalog, predicate=inspect.isfunction):
        if name.startswith("_"):
            continue
        doc = inspect.getdoc(fn) or ""
        params = [p for p in inspect.signature(fn).parameters if p not in ("self", "cls")]
        missing = [p for p in params if f"``{p}``" not in doc]
        if not doc or missing:
            gaps[name] = missing or ["(no docstring)"]
    assert not gaps, gaps
