"""Which features an image tower returns: the plain pooled embedding or a multi-layer "hypercolumn".

A spec selects the hypercolumn with ``options`` (no torch needed to read them)::

    ("features", "hypercolumn")      # default: the plain pooled pre-logits embedding
    ("stages", "1,2,3,4,5,6")        # indices into the backbone's ``blocks`` whose outputs are pooled
    ("regions", "whole,centre")      # where each stage is averaged: the whole map, its centre half
    ("stage_weight", "0.3")          # norm of the concatenated stage part (the final part has norm 1)

The hypercolumn embedding is ``[l2(final) | w * l2(mean_r(stage_s)) for r in regions for s in
stages]`` with ``w = stage_weight / sqrt(len(regions) * len(stages))``: the final pooled embedding
followed by the averages of each chosen intermediate stage over each region (``whole``: the whole
feature map; ``centre``: the central box, half the height and half the width, where a catalog
photo's product sits), every part L2-normalised so that no part dominates a cosine by its scale.
Intermediate stages keep colour, texture and layout cues that the ImageNet head discards (on
myntra-dev they lift baseColour, gender and articleType; see bench/RESULTS.md, "classify:
hypercolumn features").
Linear probes standardise columns, so ``stage_weight`` matters only to cosine uses (search,
prototypes, dedup).

:func:`feature_tag` hashes these options; it is appended to the model version, so changing them
re-embeds ("embed once, use everywhere" keys embeddings by model id and version).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from catalens.errors import ModelError
from catalens.models.spec import ModelSpec

FEATURE_KINDS = ("pooled", "hypercolumn")
REGIONS = ("whole", "centre")
DEFAULT_STAGES = (1, 2, 3, 4, 5, 6)
DEFAULT_REGIONS = ("whole",)
DEFAULT_STAGE_WEIGHT = 0.3


@dataclass(frozen=True)
class FeatureConfig:
    """Parsed feature options of a spec (``kind`` ``"pooled"`` means the plain embedding)."""

    kind: str = "pooled"
    stages: tuple[int, ...] = ()
    stage_weight: float = 0.0
    regions: tuple[str, ...] = ()

    @property
    def part_weight(self) -> float:
        """Scale of each L2-normalised stage part (the stage parts together have norm ``stage_weight``)."""
        parts = len(self.stages) * len(self.regions)
        return self.stage_weight / math.sqrt(parts) if parts else 0.0


def feature_config(spec: ModelSpec) -> FeatureConfig:
    """The spec's :class:`FeatureConfig`; :class:`ModelError` names a bad option."""
    kind = (spec.option("features") or "pooled").strip().lower()
    if kind not in FEATURE_KINDS:
        raise ModelError(f"model {spec.name!r}: unknown features={kind!r}; use one of {FEATURE_KINDS}")
    if kind == "pooled":
        return FeatureConfig()
    raw = spec.option("stages")
    try:
        stages = tuple(int(s) for s in raw.split(",") if s.strip()) if raw else DEFAULT_STAGES
        weight = float(spec.option("stage_weight") or DEFAULT_STAGE_WEIGHT)
    except ValueError as exc:
        raise ModelError(
            f"model {spec.name!r}: stages must be comma-separated block indices and stage_weight a number "
            f"(got stages={raw!r}, stage_weight={spec.option('stage_weight')!r})"
        ) from exc
    if not stages or len(set(stages)) != len(stages) or min(stages) < 0:
        raise ModelError(f"model {spec.name!r}: stages must be distinct block indices >= 0, got {raw!r}")
    if not weight > 0 or not math.isfinite(weight):
        raise ModelError(f"model {spec.name!r}: stage_weight must be > 0, got {weight}")
    raw_regions = spec.option("regions")
    regions = (
        tuple(r.strip().lower() for r in raw_regions.split(",") if r.strip())
        if raw_regions
        else DEFAULT_REGIONS
    )
    if not regions or len(set(regions)) != len(regions) or not set(regions) <= set(REGIONS):
        raise ModelError(
            f"model {spec.name!r}: regions must be distinct names from {REGIONS}, got {raw_regions!r}"
        )
    return FeatureConfig(kind, tuple(sorted(stages)), weight, regions)


def feature_tag(spec: ModelSpec) -> str:
    """``""`` for plain embeddings, else ``"h"`` + 6 hex characters hashing the feature options."""
    cfg = feature_config(spec)
    if cfg.kind == "pooled":
        return ""
    payload = json.dumps([cfg.kind, list(cfg.stages), round(cfg.stage_weight, 6), list(cfg.regions)])
    return "h" + hashlib.sha256(payload.encode()).hexdigest()[:6]


def hypercolumn_spec(base: ModelSpec, name: str, **changes: object) -> ModelSpec:
    """A copy of ``base`` named ``name`` with hypercolumn features (``changes``: other spec fields,
    e.g. ``input_size`` / ``crop_pct``; ``stages`` / ``stage_weight`` / ``regions`` as options)."""
    from dataclasses import replace

    stages = changes.pop("stages", DEFAULT_STAGES)
    weight = changes.pop("stage_weight", DEFAULT_STAGE_WEIGHT)
    regions = changes.pop("regions", DEFAULT_REGIONS)
    options = dict(base.options)
    options.update(
        features="hypercolumn",
        stages=",".join(str(s) for s in stages),  # type: ignore[union-attr]
        stage_weight=str(weight),
        regions=",".join(str(r) for r in regions),  # type: ignore[union-attr]
    )
    return replace(base, name=name, dim=None, options=tuple(options.items()), **changes)  # type: ignore[arg-type]
