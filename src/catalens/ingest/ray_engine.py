"""The Ray engine of ingest and embed jobs: read, hash, decode, preprocess and embed on a Ray cluster.

Each worker is a Ray actor that loads the model once and runs, per batch of source items, what the
local engine runs on its threads and in its inference step (:meth:`ItemPreparer.prepare`, then
``encoder.preprocess``/``encode``, L2-normalised). It sends back, per item, the image hash, the
image record and its vector, or the failure with its reason. This process (the driver) stores the
results through the local engine's own batch write path (:meth:`IngestRunner.run` with
``prepared=``), so both engines share one definition of idempotence (content hash), resumability
(whole batches committed), failure records, progress and exit status.

Sources must be readable from every node (a shared file system at the same path, or URLs). The
bytes of URL images come back with the result, and the driver writes them into the home's blobs.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from catalens.catalog.db import NewImage
from catalens.errors import ClusterError
from catalens.ingest.job import Failure, IngestRunner, ItemPreparer, _Prepared
from catalens.ingest.ray_pool import ActorPool, cluster_cpus, connect, remote_class
from catalens.ingest.sources import SourceItem
from catalens.vectors import l2_normalize

if TYPE_CHECKING:
    from catalens.config import Settings

log = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    """What a worker sends back for one batch (lists aligned with the batch's items)."""

    identity: tuple[str, str, int] | None  # the worker's (model id, version, dim); None without a model
    shas: list[str | None]
    images: list[NewImage | None]
    failures: list[Failure | None]
    vectors: np.ndarray | None = None  # (k, dim) float32, L2-normalised: one row per index in vector_of
    vector_of: list[int] = field(default_factory=list)
    blobs: dict[int, tuple[bytes, str]] = field(default_factory=dict)  # URL images: (bytes, format)


class _WorkerPreparer(ItemPreparer):
    """``prepare`` on a worker: a URL image's bytes are kept for the driver to store (the home may
    not be on this node); the path it will have is recorded as usual."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._local = threading.local()

    def _store_blob(self, sha: str, data: bytes, fmt: str) -> str:
        self._local.blob = (data, fmt)
        return str(self.blob_root / sha[:2] / f"{sha}.{fmt.lower()}")

    def prepare_with_blob(self, item: SourceItem) -> tuple[_Prepared, tuple[bytes, str] | None]:
        self._local.blob = None
        prep = self.prepare(item)
        return prep, self._local.blob


class IngestWorker:
    """A Ray actor: one model load, then batches of source items prepared and embedded."""

    def __init__(
        self,
        settings: Settings,
        spec: Any | None,
        device: str,
        cache_dir: str,
        known: frozenset[str],
        embedded: frozenset[str],
        cwd: str,
    ) -> None:
        if os.path.isdir(cwd):  # relative sources resolve as on the driver (shared file system)
            os.chdir(cwd)
        encoder = load_worker_encoder(spec, device, cache_dir) if spec is not None else None
        self.encoder = encoder
        self.identity = (encoder.model_id, encoder.version, int(encoder.dim)) if encoder is not None else None
        self.preparer = _WorkerPreparer(settings, encoder, set(known), set(embedded))
        self.pool = ThreadPoolExecutor(max(1, settings.workers), thread_name_prefix="catalens-ray-prepare")

    def ready(self) -> tuple[str, str, int] | None:
        return self.identity

    def run(self, items: list[SourceItem]) -> BatchOutcome:
        done = list(self.pool.map(self.preparer.prepare_with_blob, items))
        out = BatchOutcome(
            identity=self.identity,
            shas=[p.sha for p, _ in done],
            images=[p.image for p, _ in done],
            failures=[p.failure for p, _ in done],
            blobs={i: blob for i, (_, blob) in enumerate(done) if blob is not None},
        )
        out.vector_of = [i for i, (p, _) in enumerate(done) if p.tensor is not None]
        if out.vector_of and self.encoder is not None:
            x = np.stack([done[i][0].tensor for i in out.vector_of]).astype(np.float32, copy=False)
            out.vectors = l2_normalize(self.encoder.encode(x)).astype(np.float32, copy=False)
        return out


def load_worker_encoder(spec: Any, device: str, cache_dir: str) -> Any:
    """The model, loaded once per worker, with as many ONNX Runtime (or OpenVINO) threads as Ray
    gave it CPUs (not one per core of the node: the node's other workers use those)."""
    import ray

    from catalens.models import load_image_encoder
    from catalens.models.runtime import OnnxImageEncoder, OpenVinoImageEncoder

    cache = cache_dir if cache_dir and os.path.isdir(cache_dir) else None
    encoder = load_image_encoder(spec, device=device, cache_dir=cache)
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    threads = max(1, int(cpus))
    if isinstance(encoder, OnnxImageEncoder | OpenVinoImageEncoder) and encoder.threads != threads:
        encoder = encoder.with_threads(threads)
    return encoder


@dataclass
class RayEngine:
    """``prepare_with`` of :func:`catalens.ingest.job.run_job`: items prepared and embedded on
    the cluster at ``address``, by ``workers`` actors (default: one per CPU of the cluster)."""

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    device: str = "auto"
    pool: ActorPool | None = None

    def __call__(self, runner: IngestRunner, items: Iterable[SourceItem]) -> Iterator[_Prepared]:
        import ray

        addr = connect(self.address)
        settings = runner.settings
        enc = runner.encoder
        want = (enc.model_id, enc.version, int(enc.dim)) if enc is not None else None
        known_ref = ray.put(frozenset(runner.known))
        embedded_ref = ray.put(frozenset(runner.embedded))
        actor_cls = remote_class(IngestWorker, num_cpus=self.cpus_per_worker)
        spec = getattr(enc, "spec", None) if enc is not None else None
        if enc is not None and spec is None:
            raise ClusterError(f"model {enc.model_id!r} has no spec that Ray workers can load it from")

        def make() -> Any:
            return actor_cls.remote(
                settings, spec, self.device, str(settings.cache_dir), known_ref, embedded_ref, os.getcwd()
            )

        size = self.workers or max(1, int(cluster_cpus() // self.cpus_per_worker))
        self.pool = ActorPool(make, size, what=f"Ray worker (cluster {addr})")
        batch = max(1, settings.batch_size)
        chunks = _chunks(items, batch)
        for originals, out in self.pool.map(chunks):
            if out.identity != want:
                raise ClusterError(
                    f"a Ray worker embeds with {out.identity}, the catalog's model is {want}: "
                    "install the same catalens and model weights on every node"
                )
            vec_of = dict(zip(out.vector_of, range(len(out.vector_of)), strict=True))
            for i, item in enumerate(originals):
                image, failure = out.images[i], out.failures[i]
                if i in out.blobs and image is not None:
                    data, fmt = out.blobs[i]
                    image = replace(image, stored_path=runner._store_blob(image.sha256, data, fmt))
                if failure is not None:
                    failure = Failure(item.source, failure.kind, failure.reason)
                vector = out.vectors[vec_of[i]] if i in vec_of and out.vectors is not None else None
                yield _Prepared(item, sha=out.shas[i], image=image, failure=failure, vector=vector)
        log.info("first Ray worker ready after %.2f s", self.pool.first_ready_s or 0.0)
        if self.pool.lost:
            log.warning(
                "%d Ray worker(s) lost during the job; %d batch(es) ran again on the others",
                self.pool.lost,
                self.pool.retried,
            )


def _chunks(items: Iterable[SourceItem], size: int) -> Iterator[tuple[list[SourceItem], list[SourceItem]]]:
    """(original items, items as shipped: file paths made absolute) in batches of ``size``."""
    batch: list[SourceItem] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch, [_absolute(it) for it in batch]
            batch = []
    if batch:
        yield batch, [_absolute(it) for it in batch]


def _absolute(item: SourceItem) -> SourceItem:
    if item.path is not None and not Path(item.path).is_absolute():
        return replace(item, path=Path(item.path).absolute())
    return item
