"""Image encoders: preprocessed batches -> raw embeddings, on ONNX Runtime (CPU) or torch.

``load_image_encoder(name)`` picks the runtime from ``device``:

* ``"auto"`` (default): torch on CUDA when a GPU is usable, else ONNX Runtime on CPU;
* ``"cpu"`` / ``"onnx"``: ONNX Runtime on CPU;  ``"cpu-torch"``: eager torch on CPU;
* ``"openvino"``: OpenVINO on CPU (the ``openvino`` extra), on the same ONNX export, at
  OpenVINO's default inference precision for the CPU: bf16 where the CPU has native bf16
  (AVX512-BF16 / AMX), else f32. Its embeddings carry a runtime tag in their version
  (``-ovbf16``, ``-ovf32``), so they are never mixed with the fp32 ones in a store;
* ``"cuda"`` / ``"cuda:N"``: torch on that GPU (fp16 autocast, channels-last).

ONNX models are exported once per (model, weights) and cached as
``<cache_dir>/onnx/<safe model id>-<weights hash[:16]>.onnx`` (written to a temporary file,
checked against torch, then atomically renamed). For single-file weights (the packaged models,
``file:`` models) a cached export loads without importing torch at all. When the export fails
or does not match torch, a warning is logged and the torch encoder is used instead.

Exporting is done by :mod:`catalens.models.export` (TorchScript exporter first, dynamo
exporter as fallback; see there).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from catalens.errors import ModelError
from catalens.models.preprocess import Preprocessor
from catalens.models.registry import get_spec
from catalens.models.spec import ModelSpec, make_version, safe_id, with_runtime

log = logging.getLogger(__name__)


@runtime_checkable
class ImageEncoder(Protocol):
    """What every image encoder offers. ``encode`` returns raw (not normalised) embeddings."""

    model_id: str
    version: str
    dim: int
    spec: ModelSpec
    preprocess: Preprocessor
    backend: str

    def encode(self, batch: np.ndarray) -> np.ndarray: ...


def cpu_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


class _EncoderBase:
    backend = "base"

    def __init__(self, spec: ModelSpec, version: str, dim: int) -> None:
        self.spec = spec
        self.model_id = spec.name
        self.version = version
        self.dim = int(dim)
        self.preprocess = Preprocessor(spec)

    def _check(self, batch: np.ndarray) -> np.ndarray:
        arr = np.asarray(batch)
        if arr.ndim != 4 or tuple(arr.shape[1:]) != tuple(self.spec.input_size):
            raise ModelError(
                f"model {self.model_id!r} expects a batch of shape (N, {', '.join(map(str, self.spec.input_size))}),"
                f" got {tuple(arr.shape)}"
            )
        return np.ascontiguousarray(arr, dtype=np.float32)

    def encode_images(self, images: list[Any]) -> np.ndarray:
        """Preprocess PIL images and encode them (convenience for small batches)."""
        return self.encode(self.preprocess.batch(images))

    def encode(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_id!r}, version={self.version!r}, dim={self.dim})"


class _StreamedEncoder(_EncoderBase):
    """A CPU runtime that runs a large batch as ``threads`` parts at once, one thread each, and a
    small one as a single call on all threads. Subclasses say how to run the two: :meth:`_run_whole`
    and :meth:`_run_parts`."""

    STREAM_MIN = 4  # images per thread from which a batch is split
    threads = 1
    streams = True

    def encode(self, batch: np.ndarray) -> np.ndarray:
        arr = self._check(batch)
        n = arr.shape[0]
        if n == 0:
            return np.zeros((0, self.dim), np.float32)
        if not self.streams or self.threads < 2 or n < self.STREAM_MIN * self.threads:
            return self._run_whole(arr)
        parts = [np.ascontiguousarray(p) for p in np.array_split(arr, self.threads)]
        return np.concatenate(self._run_parts(parts))

    def _run_whole(self, arr: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def _run_parts(self, parts: list[np.ndarray]) -> list[np.ndarray]:  # pragma: no cover - overridden
        raise NotImplementedError


class OnnxImageEncoder(_StreamedEncoder):
    """ONNX Runtime on CPU (all graph optimisations, ``threads`` = one per core).

    Small batches run in one call with ``threads`` intra-op threads (lowest latency for a single
    query). Batches of at least ``STREAM_MIN`` images per thread are split into ``threads``
    parts that run concurrently, one intra-op thread each, on a second session: a convolution
    network's operators on a few images parallelise poorly inside ONNX Runtime, so several
    single-threaded runs use the cores better (``bench/embed_throughput.py``, bench/RESULTS.md
    "foundation"). ``streams=False`` turns it off.
    """

    backend = "onnx-cpu"

    def __init__(
        self,
        path: str | Path,
        spec: ModelSpec,
        version: str,
        *,
        threads: int | None = None,
        streams: bool = True,
    ) -> None:
        self.path = Path(path)
        self.threads = max(1, threads or cpu_threads())
        self.streams = streams and self.threads > 1
        self.session = self._new_session(self.threads)
        self._stream_session: Any = None
        self._pool: Any = None
        self._lock = threading.Lock()
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        shape = list(inp.shape)
        if len(shape) != 4 or [int(s) if isinstance(s, int) else None for s in shape[1:]] != list(
            spec.input_size
        ):
            raise ModelError(f"{path}: ONNX input shape {shape} does not match {spec.input_size}")
        self.input_name, self.output_name = inp.name, out.name
        dim = out.shape[-1] if isinstance(out.shape[-1], int) else None
        if dim is None:
            dim = self.session.run(None, {inp.name: np.zeros((1, *spec.input_size), np.float32)})[0].shape[-1]
        super().__init__(spec, version, int(dim))

    def with_threads(self, threads: int) -> OnnxImageEncoder:
        """The same model on ``threads`` threads (a Ray worker gets as many as its CPUs)."""
        return OnnxImageEncoder(self.path, self.spec, self.version, threads=threads, streams=self.streams)

    def _new_session(self, threads: int) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle intra-op threads would otherwise spin between operators and take the cores
        # that the decode/preprocess threads of the ingest pipeline need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def _run(self, session: Any, arr: np.ndarray) -> np.ndarray:
        return np.asarray(session.run([self.output_name], {self.input_name: arr})[0], dtype=np.float32)

    def _streams(self) -> tuple[Any, Any]:
        with self._lock:
            if self._stream_session is None:
                from concurrent.futures import ThreadPoolExecutor

                self._stream_session = self._new_session(1)  # Run() is thread-safe: one session
                self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="catalens-onnx")
            return self._stream_session, self._pool

    def _run_whole(self, arr: np.ndarray) -> np.ndarray:
        return self._run(self.session, arr)

    def _run_parts(self, parts: list[np.ndarray]) -> list[np.ndarray]:
        session, pool = self._streams()
        futures = [pool.submit(self._run, session, p) for p in parts[1:]]
        first = self._run(session, parts[0])  # this thread runs one part
        return [first, *(f.result() for f in futures)]


OPENVINO_HINT = "device 'openvino' needs OpenVINO: pip install 'catalens[openvino]'"


class OpenVinoImageEncoder(_StreamedEncoder):
    """OpenVINO on CPU, on the cached ONNX export, threaded like :class:`OnnxImageEncoder`.

    ``precision`` ``None`` keeps OpenVINO's default inference precision for the CPU (bf16 on CPUs
    with native bf16, f32 elsewhere); ``"f32"`` / ``"bf16"`` force one. The version passed in is
    the model's reference version; the encoder's ``version`` adds ``-ov<precision>``
    (:func:`~catalens.models.spec.with_runtime`). Batches of at least ``STREAM_MIN`` images per
    thread run as ``threads`` parallel requests of one thread each; smaller ones as one request
    on all threads (measured in ``bench/embed_runtime.py``).
    """

    backend = "openvino-cpu"

    def __init__(
        self,
        path: str | Path,
        spec: ModelSpec,
        version: str,
        *,
        threads: int | None = None,
        precision: str | None = None,
    ) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise ModelError(OPENVINO_HINT) from exc
        self.path = Path(path)
        self.threads = max(1, threads or cpu_threads())
        self.requested_precision = precision
        self._core = ov.Core()
        model = self._core.read_model(str(self.path))
        shape = model.inputs[0].get_partial_shape()
        dims = [d.get_length() if d.is_static else None for d in list(shape)]
        if len(dims) != 4 or dims[1:] != list(spec.input_size):
            raise ModelError(f"{path}: input shape {shape} does not match {spec.input_size}")
        self._config: dict[str, Any] = {"INFERENCE_NUM_THREADS": self.threads, "ENABLE_CPU_PINNING": False}
        if precision:
            self._config["INFERENCE_PRECISION_HINT"] = precision
        self._model = model
        self._latency = self._core.compile_model(
            model, "CPU", self._config | {"NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
        )
        self.precision = self._latency.get_property("INFERENCE_PRECISION_HINT").to_string()
        self._request = self._latency.create_infer_request()
        self._queue: Any = None
        self._lock = threading.Lock()
        out_dim = model.outputs[0].get_partial_shape()[-1]
        if out_dim.is_static:
            dim = out_dim.get_length()
        else:
            probe = np.zeros((1, *spec.input_size), np.float32)
            dim = np.asarray(self._request.infer({0: probe})[0]).shape[-1]
        self.base_version = version
        super().__init__(spec, with_runtime(version, f"ov{self.precision}"), int(dim))

    def with_threads(self, threads: int) -> OpenVinoImageEncoder:
        """The same model on ``threads`` threads (a Ray worker gets as many as its CPUs)."""
        return OpenVinoImageEncoder(
            self.path, self.spec, self.base_version, threads=threads, precision=self.requested_precision
        )

    def _streams(self) -> Any:
        if self._queue is None:
            import openvino as ov

            config = self._config | {"NUM_STREAMS": self.threads}
            compiled = self._core.compile_model(self._model, "CPU", config)
            self._queue = ov.AsyncInferQueue(compiled, self.threads)
        return self._queue

    def _run_whole(self, arr: np.ndarray) -> np.ndarray:
        with self._lock:  # one infer request per stream: calls take turns
            return np.array(self._request.infer({0: arr})[0], dtype=np.float32)

    def _run_parts(self, parts: list[np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            queue = self._streams()
            out: list[Any] = [None] * len(parts)

            def done(request: Any, i: int) -> None:
                out[i] = np.array(request.get_output_tensor(0).data, dtype=np.float32)

            queue.set_callback(done)
            for i, part in enumerate(parts):
                queue.start_async({0: part}, i)
            queue.wait_all()
            return out


class TorchImageEncoder(_EncoderBase):
    """Eager torch: ``inference_mode``, channels-last, fp16 autocast on CUDA."""

    def __init__(self, tower: Any, spec: ModelSpec, version: str, device: str = "cpu") -> None:
        import torch

        self.device = torch.device(device)
        self.backend = f"torch-{self.device.type}"
        self.tower = tower.to(self.device).eval()
        self.tower.with_logits = False
        # channels-last helps convnets on CUDA and on CPU (oneDNN): 1.6x for Lite0 on CPU
        self._channels_last = spec.source in ("packaged", "timm", "file")
        if self._channels_last:
            self.tower = self.tower.to(memory_format=torch.channels_last)
        super().__init__(spec, version, tower.dim)

    def encode(self, batch: np.ndarray) -> np.ndarray:
        import torch

        arr = self._check(batch)
        if arr.shape[0] == 0:
            return np.zeros((0, self.dim), np.float32)
        x = torch.from_numpy(arr).to(self.device, non_blocking=True)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.float16):
                    out = self.tower.embed(x)
            else:
                out = self.tower.embed(x)
        return out.float().cpu().numpy()


# --- ONNX cache ---------------------------------------------------------------------------------


def onnx_cache_path(spec: ModelSpec, digest: str, cache_dir: str | Path) -> Path:
    from catalens.models.features import feature_tag

    tag = feature_tag(spec)  # "" for plain embeddings: their cached exports keep their names
    return Path(cache_dir) / "onnx" / f"{safe_id(spec.name)}-{digest[:16]}{'-' + tag if tag else ''}.onnx"


def _onnx_encoder(path: Path, spec: ModelSpec, version: str, dev: str) -> ImageEncoder:
    if dev == "openvino":
        return OpenVinoImageEncoder(path, spec, version)
    return OnnxImageEncoder(path, spec, version)


def _open_cached(path: Path, spec: ModelSpec, version: str, dev: str = "onnx") -> ImageEncoder | None:
    if not path.is_file():
        return None
    try:
        encoder = OnnxImageEncoder(path, spec, version, threads=1 if dev != "onnx" else None)
    except Exception as exc:  # corrupt or stale file: export again
        log.warning("ignoring cached ONNX model %s (%s); exporting again", path, exc)
        path.unlink(missing_ok=True)
        return None
    return encoder if dev == "onnx" else _onnx_encoder(path, spec, version, dev)


# --- factory -------------------------------------------------------------------------------


def _cuda_maybe_present() -> bool:
    if "torch" in sys.modules:
        return True
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidia0")


def resolve_device(device: str | None) -> str:
    """Normalise a device request to ``"onnx"``, ``"openvino"``, ``"cpu-torch"`` or ``"cuda[:N]"``."""
    dev = (device or "auto").strip().lower()
    if dev == "auto":
        if _cuda_maybe_present():
            import torch

            if torch.cuda.is_available():
                return "cuda"
        return "onnx"
    if dev in ("cpu", "onnx", "onnx-cpu"):
        return "onnx"
    if dev in ("cpu-torch", "torch", "torch-cpu"):
        return "cpu-torch"
    if dev in ("openvino", "ov", "openvino-cpu", "cpu-openvino"):
        import importlib.util

        if importlib.util.find_spec("openvino") is None:
            raise ModelError(OPENVINO_HINT)
        return "openvino"
    if dev == "cuda" or dev.startswith("cuda:"):
        import torch

        if not torch.cuda.is_available():
            raise ModelError(f"device {device!r} requested but CUDA is not available")
        return dev
    raise ModelError(f"unknown device {device!r}; use auto, cpu, cpu-torch, openvino or cuda[:N]")


def load_image_encoder(
    name_or_spec: str | ModelSpec | None = None,
    *,
    device: str | None = "auto",
    cache_dir: str | Path | None = None,
) -> ImageEncoder:
    """An :class:`ImageEncoder` for a model name or spec (default: settings' default model)."""
    from catalens.config import load_settings

    settings = None
    if name_or_spec is None or cache_dir is None:
        settings = load_settings()
    spec = get_spec(name_or_spec if name_or_spec is not None else settings.default_model)  # type: ignore[union-attr]
    if not spec.has_image:
        raise ModelError(f"model {spec.name!r} is text-only; use load_text_encoder")
    dev = resolve_device(device)
    from catalens.models.loader import build_image_tower, weights_file_digest

    if dev not in ("onnx", "openvino"):
        tower, digest = build_image_tower(spec)
        return TorchImageEncoder(
            tower, spec, make_version(digest, spec), "cpu" if dev == "cpu-torch" else dev
        )

    root = Path(cache_dir) if cache_dir is not None else settings.cache_dir  # type: ignore[union-attr]
    digest = weights_file_digest(spec)
    if digest is not None:  # single-file weights: a cached export needs no torch
        cached = _open_cached(onnx_cache_path(spec, digest, root), spec, make_version(digest, spec), dev)
        if cached is not None:
            return cached
    tower, digest = build_image_tower(spec)
    version = make_version(digest, spec)
    path = onnx_cache_path(spec, digest, root)
    cached = _open_cached(path, spec, version, dev)
    if cached is not None:
        return cached
    try:
        from catalens.models import export

        exporter = export.export_onnx(tower, spec, path)
        log.info("exported %s to ONNX with the %s exporter: %s", spec.name, exporter, path)
        encoder = OnnxImageEncoder(path, spec, version, threads=1 if dev != "onnx" else None)
    except Exception as exc:
        if dev == "openvino":  # OpenVINO reads the ONNX export: without one it cannot run
            raise ModelError(f"device 'openvino': ONNX export of {spec.name} failed: {exc}") from exc
        log.warning("ONNX export of %s failed, using torch on CPU instead: %s", spec.name, exc)
        warnings.warn(
            f"ONNX export of {spec.name} failed, using torch on CPU: {exc}", RuntimeWarning, stacklevel=2
        )
        return TorchImageEncoder(tower, spec, version, "cpu")
    return encoder if dev == "onnx" else _onnx_encoder(path, spec, version, dev)
