"""Small learned quality models shipped inside the package (``catalens/quality/data/NAME.npz``).

A model is a scikit-learn gradient-boosted tree ensemble (binary), stored as flat node arrays
(``NAME.npz``: feature, threshold, left, right, leaf value per node, the root of each tree and the
baseline log-odds) plus ``NAME.json``: the feature version and names it was trained on, the decision
threshold chosen on held-out data, and how it was trained (data, degradations, metrics). It is
evaluated here with NumPy - all trees step down together, one vector operation per depth level -
so predicting needs neither scikit-learn nor a model runtime. A model whose feature version differs
from the code's refuses to load instead of giving silently wrong scores.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from catalens.errors import ConfigError

_lock = threading.Lock()
_loaded: dict[str, LearnedModel] = {}
ARRAYS = ("feature", "threshold", "left", "right", "is_leaf", "value", "roots", "baseline")


def data_dir() -> Path:
    """The folder holding the packaged models."""
    return Path(str(resources.files("catalens.quality") / "data"))


def trees_from_sklearn(model: Any) -> dict[str, np.ndarray]:
    """Flatten a fitted binary ``HistGradientBoostingClassifier`` into the stored node arrays."""
    if getattr(model, "n_trees_per_iteration_", 1) != 1:
        raise ValueError("only binary classifiers are supported")
    parts = [p[0].nodes for p in model._predictors]
    sizes = np.array([len(n) for n in parts])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    nodes = np.concatenate(parts)
    shift = np.repeat(offsets, sizes)
    leaf = nodes["is_leaf"].astype(bool)
    return {
        "feature": nodes["feature_idx"].astype(np.int32),
        "threshold": nodes["num_threshold"].astype(np.float64),
        "left": np.where(leaf, 0, nodes["left"] + shift).astype(np.int64),
        "right": np.where(leaf, 0, nodes["right"] + shift).astype(np.int64),
        "is_leaf": leaf,
        "value": nodes["value"].astype(np.float64),
        "roots": offsets.astype(np.int64),
        "baseline": np.asarray(model._baseline_prediction, np.float64).ravel()[:1],
    }


@dataclass
class LearnedModel:
    """A loaded packaged model: ``predict(features) -> probability of the positive class``."""

    name: str
    meta: dict[str, Any]
    trees: dict[str, np.ndarray]

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Positive-class probabilities for a (n, d) or (d,) feature array."""
        x = np.atleast_2d(np.asarray(features, np.float64))
        d = len(self.meta["feature_names"])
        if x.shape[1] != d:
            raise ConfigError(f"quality model {self.name!r} expects {d} features, got {x.shape[1]}")
        x = np.nan_to_num(x, nan=0.0)
        t = self.trees
        rows = np.arange(len(x))[:, None]
        node = np.broadcast_to(t["roots"], (len(x), len(t["roots"]))).copy()
        while True:
            leaf = t["is_leaf"][node]
            if leaf.all():
                break
            go_left = x[rows, t["feature"][node]] <= t["threshold"][node]
            step = np.where(go_left, t["left"][node], t["right"][node])
            node = np.where(leaf, node, step)
        raw = t["baseline"][0] + t["value"][node].sum(axis=1)
        return (1.0 / (1.0 + np.exp(-raw))).astype(np.float32)


def save_learned(folder: Path, name: str, trees: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / f"{name}.npz", **trees)
    (folder / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")


def load_learned(name: str, *, feature_version: str, folder: Path | None = None) -> LearnedModel:
    """Load (once per process) the packaged model ``name``; it must match ``feature_version``."""
    base = folder or data_dir()
    key = f"{base}:{name}"
    model = _loaded.get(key)
    if model is not None:
        return model
    with _lock:
        model = _loaded.get(key)
        if model is None:
            arrays_path, meta_path = base / f"{name}.npz", base / f"{name}.json"
            if not arrays_path.is_file() or not meta_path.is_file():
                raise ConfigError(
                    f"quality model {name!r} not found in {base} (need {name}.npz and {name}.json)"
                )
            meta = json.loads(meta_path.read_text())
            if meta.get("feature_version") != feature_version:
                raise ConfigError(
                    f"quality model {name!r} was trained on features {meta.get('feature_version')!r}, "
                    f"but this code computes {feature_version!r}: retrain it "
                    "(python -m catalens.quality.training.exposure_trees)"
                )
            with np.load(arrays_path) as z:
                missing = [a for a in ARRAYS if a not in z]
                if missing:
                    raise ConfigError(f"quality model {arrays_path} lacks arrays: {', '.join(missing)}")
                trees = {a: z[a] for a in ARRAYS}
            model = _loaded[key] = LearnedModel(name=name, meta=meta, trees=trees)
    return model
