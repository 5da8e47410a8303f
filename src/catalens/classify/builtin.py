"""The out-of-the-box classifier: ImageNet-1k classes of the packaged Lite0 -> e-commerce taxonomy.

The taxonomy and the class -> node mapping live in ``data/ecommerce.yaml`` (documented there;
``catalens classify taxonomy --builtin --mapping`` prints it). For an image, the 1000-way softmax of the
Lite0 classifier is computed; the probabilities of the ImageNet classes mapped to a node are
summed (category = sum over its subcategories, subcategory = sum over its types, the article
types). Each level answers its best guess (consistent down the hierarchy) with its probability;
``needs_review`` is the abstain flag, set when that probability is below ``unknown_below``.

The Lite0 classifier is a Linear layer on the pooled 1280-d feature ``f``: ``logits = W f + b``.
Stored vectors are L2-normalised (``e = f / |f|``), so on stored vectors the head uses
``f ~= TYPICAL_NORM * e`` (the median feature norm measured on catalog and user photos,
about 14.5; 10th-90th percentile 12.7-17.1). When the image itself is at hand (``catalens
classify photo.jpg``) the exact norm is used.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from catalens.classify.classifier import Classifier, FieldHead
from catalens.classify.taxonomy import Taxonomy, load_taxonomy

BUILTIN_MODEL = "efficientnet-lite0"
TYPICAL_NORM = 14.5
UNKNOWN = "unknown"


def imagenet_names() -> list[str]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(info.num_classes())]


def mapping_table(tax: Taxonomy | None = None) -> list[dict[str, object]]:
    """One row per ImageNet class: index, name, taxonomy node (or None)."""
    tax = tax or load_taxonomy("builtin")
    node_of = {i: " > ".join(node) for node, idx in tax.imagenet.items() for i in idx}
    return [{"index": i, "imagenet": name, "node": node_of.get(i)} for i, name in enumerate(imagenet_names())]


def aggregation(tax: Taxonomy, level: int, n_classes: int = 1000) -> tuple[list[str], np.ndarray]:
    """(node names of a hierarchy level, (n_classes, n_nodes) 0/1 matrix)."""
    names = list(dict.fromkeys(p[level] for p in tax.paths))
    col = {n: j for j, n in enumerate(names)}
    m = np.zeros((n_classes, len(names)), np.float32)
    for node, idx in tax.imagenet.items():
        if len(node) > level:
            m[idx, col[node[level]]] = 1.0
    return names, m


@lru_cache(maxsize=1)
def _lite0_head() -> tuple[np.ndarray, np.ndarray, str | None]:
    from catalens.models import load_torch_model
    from catalens.models.loader import weights_file_digest
    from catalens.models.registry import get_spec

    tower = load_torch_model(BUILTIN_MODEL, with_classifier=True)
    fc = tower.backbone.get_classifier()
    w = fc.weight.detach().cpu().numpy().astype(np.float32)
    b = fc.bias.detach().cpu().numpy().astype(np.float32)
    digest = weights_file_digest(get_spec(BUILTIN_MODEL))
    return w, b, digest


def builtin_classifier() -> Classifier:
    """The built-in taxonomy classifier (fields ``category``, ``subcategory`` and ``type``)."""
    tax = load_taxonomy("builtin")
    w, b, digest = _lite0_head()
    heads: dict[str, FieldHead] = {}
    for level, fname in enumerate(tax.hierarchy):
        names, m = aggregation(tax, level, w.shape[0])
        heads[fname] = FieldHead(
            name=fname,
            classes=names,
            W=w,
            b=b,
            kind="imagenet-map",
            threshold=tax.unknown_below,
            parent=tax.parent_of(fname),
            aggregate=m,
            input_scale=TYPICAL_NORM,
        )
    return Classifier(
        name="builtin",
        version=f"ecommerce-{digest[:12] if digest else 'unknown'}",
        method="imagenet-map",
        model=BUILTIN_MODEL,
        model_version=None,
        heads=heads,
        paths=[list(p) for p in tax.paths],
        extra={"hierarchy": tax.hierarchy, "taxonomy": tax.name, "abstain_below": tax.unknown_below},
    )
