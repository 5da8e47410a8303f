"""catalens.explain: heatmaps and explanations.

* label heatmaps: :class:`Explainer` + a target (:class:`ImageNetTarget`, :class:`HeadTarget`,
  :func:`classifier_target`) -> :class:`Explanation` (overlay PNG, raw map, regions as boxes);
  methods ``gradcam``, ``gradcam++``, ``rollout`` (ViT), ``lib:<pytorch-grad-cam method>``;
* match explanations: :func:`explain_match` -> :class:`MatchExplanation`;
* drawing: :func:`draw_regions` (boxes, explanation regions, quality check results);
* faithfulness: :func:`faithfulness` (deletion / insertion AUC).

Importing this package is cheap; torch loads with the submodules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from catalens.explain.explainer import Explainer, Explanation, load_explain_model
    from catalens.explain.faithfulness import faithfulness
    from catalens.explain.layers import register_adapter, spatial_layer
    from catalens.explain.match import MatchExplanation, explain_match
    from catalens.explain.methods import method_names, register_method
    from catalens.explain.render import draw_regions, overlay
    from catalens.explain.targets import HeadTarget, ImageNetTarget, classifier_target, resolve_label

_LAZY = {
    "Explainer": "catalens.explain.explainer",
    "Explanation": "catalens.explain.explainer",
    "load_explain_model": "catalens.explain.explainer",
    "faithfulness": "catalens.explain.faithfulness",
    "register_adapter": "catalens.explain.layers",
    "spatial_layer": "catalens.explain.layers",
    "MatchExplanation": "catalens.explain.match",
    "explain_match": "catalens.explain.match",
    "method_names": "catalens.explain.methods",
    "register_method": "catalens.explain.methods",
    "draw_regions": "catalens.explain.render",
    "overlay": "catalens.explain.render",
    "HeadTarget": "catalens.explain.targets",
    "ImageNetTarget": "catalens.explain.targets",
    "classifier_target": "catalens.explain.targets",
    "resolve_label": "catalens.explain.targets",
}

__all__ = [
    "Explainer",
    "Explanation",
    "load_explain_model",
    "faithfulness",
    "register_adapter",
    "spatial_layer",
    "MatchExplanation",
    "explain_match",
    "method_names",
    "register_method",
    "draw_regions",
    "overlay",
    "HeadTarget",
    "ImageNetTarget",
    "classifier_target",
    "resolve_label",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'catalens.explain' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
