"""catalens: understand e-commerce product photos offline.

The public entry point is :class:`catalens.Catalog`; heavy modules load lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from catalens.classify.colour.features import ColourResult
    from catalens.classify.results import (
        BrandReport,
        BrandTag,
        ClassifierEvaluation,
        ClassifierInfo,
        ClassifyReport,
        FieldMetrics,
        FieldPrediction,
        ImagePrediction,
        TrainOverlap,
    )
    from catalens.core import Catalog
    from catalens.explain.explainer import Explanation
    from catalens.ingest.job import JobReport
    from catalens.quality.result import CheckResult, ImageQC
    from catalens.quality.runner import QCReport
    from catalens.recommend.engine import Recommendation, RecommendResult
    from catalens.search.dedup import DedupReport
    from catalens.search.engine import SearchResult

# the public results: typed dataclasses with ``to_dict()`` (what the CLI's --json and the REST API print)
_PUBLIC = {
    "Catalog": "catalens.core",
    "JobReport": "catalens.ingest.job",
    "SearchResult": "catalens.search.engine",
    "DedupReport": "catalens.search.dedup",
    "QCReport": "catalens.quality.runner",
    "ImageQC": "catalens.quality.result",
    "CheckResult": "catalens.quality.result",
    "RecommendResult": "catalens.recommend.engine",
    "Recommendation": "catalens.recommend.engine",
    "Explanation": "catalens.explain.explainer",
    "ImagePrediction": "catalens.classify.results",
    "FieldPrediction": "catalens.classify.results",
    "ClassifyReport": "catalens.classify.results",
    "ClassifierEvaluation": "catalens.classify.results",
    "FieldMetrics": "catalens.classify.results",
    "TrainOverlap": "catalens.classify.results",
    "ClassifierInfo": "catalens.classify.results",
    "BrandTag": "catalens.classify.results",
    "BrandReport": "catalens.classify.results",
    "ColourResult": "catalens.classify.colour.features",
}
__all__ = [
    "BrandReport",
    "BrandTag",
    "Catalog",
    "CheckResult",
    "ClassifierEvaluation",
    "ClassifierInfo",
    "ClassifyReport",
    "ColourResult",
    "DedupReport",
    "Explanation",
    "FieldMetrics",
    "FieldPrediction",
    "ImagePrediction",
    "ImageQC",
    "JobReport",
    "QCReport",
    "RecommendResult",
    "Recommendation",
    "SearchResult",
    "TrainOverlap",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(module), name)
