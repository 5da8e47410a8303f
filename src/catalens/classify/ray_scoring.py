"""``catalens classify --all --ray``: score batches of stored inputs on a Ray cluster.

Each worker is a Ray actor that receives the classifier once and runs
:func:`catalens.classify.catalog_scoring.score_inputs` (probabilities, hierarchy, thresholds, top-k) on
the batches the driver reads from the catalog; the driver stores the predictions as usual.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from catalens.classify.catalog_scoring import score_inputs
from catalens.classify.predict import FieldArrays
from catalens.ingest.ray_pool import ActorPool, cluster_cpus, connect, remote_class


class ScoreWorker:
    """A Ray actor holding one classifier (or ensemble)."""

    def __init__(self, clf: Any) -> None:
        self.clf = clf

    def ready(self) -> bool:
        return True

    def run(self, work: tuple[list[np.ndarray], np.ndarray | None, dict[str, Any]]) -> dict[str, FieldArrays]:
        inputs, sizes, opts = work
        return score_inputs(self.clf, inputs, sizes, **opts)


def ray_score(
    address: str,
    clf: Any,
    batches: Iterable[tuple[Sequence[str], tuple[list[np.ndarray], np.ndarray | None]]],
    opts: dict[str, Any],
) -> Iterator[tuple[Sequence[str], dict[str, FieldArrays]]]:
    """``(image hashes, predictions)`` of each batch, in completion order."""
    import ray

    addr = connect(address)
    clf_ref = ray.put(clf)
    actor_cls = remote_class(ScoreWorker)
    pool = ActorPool(
        lambda: actor_cls.remote(clf_ref), cluster_cpus(), what=f"Ray classify worker (cluster {addr})"
    )
    yield from pool.map((part, (inputs, sizes, opts)) for part, (inputs, sizes) in batches)
