"""``catalens qc --ray``: decode and run the per-image checks on a Ray cluster.

Each worker is a Ray actor that instantiates the profile's checks once (OCR / NSFW models loaded
once per worker) and runs :func:`catalens.quality.runner.check_item` on batches of items, exactly
what the local engine's threads run. The driver keeps the input order, runs the batch checks
(duplicates) and stores the results as usual. Files must be readable from every node.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from catalens.config import Settings
from catalens.ingest.ray_pool import ActorPool, cluster_cpus, connect, remote_class
from catalens.quality.profiles import Profile
from catalens.quality.result import ImageQC
from catalens.quality.runner import ItemsMap, QCItem, check_item

BATCH = 16


class QCWorker:
    """A Ray actor holding one profile's per-image checks, set up once."""

    def __init__(self, profile: Profile, settings: Settings, cwd: str) -> None:
        if os.path.isdir(cwd):
            os.chdir(cwd)
        import cv2

        cv2.setNumThreads(1)
        self.profile, self.settings = profile.name, settings
        self.checks = profile.instantiate()
        for c in self.checks:
            if c.scope != "batch":
                c.setup()

    def ready(self) -> bool:
        return True

    def run(self, items: list[QCItem]) -> list[tuple[ImageQC, dict[str, Any]]]:
        return [check_item(it, self.checks, self.profile, self.settings) for it in items]


def ray_items_map(address: str | None, profile: Profile, settings: Settings) -> ItemsMap:
    """The ``map_items`` of :func:`catalens.quality.runner.run_checks` for the cluster at ``address``."""

    def map_items(
        items: list[QCItem], tick: Callable[[int], None] | None
    ) -> list[tuple[ImageQC, dict[str, Any]]]:
        addr = connect(address)
        actor_cls = remote_class(QCWorker)
        pool = ActorPool(
            lambda: actor_cls.remote(profile, settings, os.getcwd()),
            cluster_cpus(),
            what=f"Ray QC worker (cluster {addr})",
        )
        done: list[Any] = [None] * len(items)
        batches = ((i, items[i : i + BATCH]) for i in range(0, len(items), BATCH))
        for start, results in pool.map(batches):
            done[start : start + len(results)] = results
            if tick:
                tick(len(results))
        return done

    return map_items
