"""Fine-tuning the backbone (partial or full) with one head per field; ``--method finetune``.

Two training modes, chosen automatically (``FinetuneConfig.cache``):

* **cached** (default for partial fine-tuning on CPU): the frozen front of the network runs once
  per image for a few fixed views (view 0 clean, then augmented views; ``views=3``) and its
  activations are kept in fp16 (about 19 KB per view for EfficientNet-Lite0 with two blocks
  unfrozen); every epoch then runs only the unfrozen blocks + head convolution + heads. This is
  what makes a few thousand images trainable on two CPU cores.
* **online** (GPU, or full fine-tuning): every batch is augmented afresh on the device and the
  whole network runs, under ``torch.autocast`` (fp16) with a ``GradScaler`` on CUDA. The batch
  size is found by trying the largest (``max_batch``) and halving on out-of-memory.

Both: augmentations (:mod:`catalens.classify.finetune.data`; colour fields never learn from
colour-jittered views), class-balanced sampling (weights ``count ** -balance`` of the finest field),
a head warm-up on frozen features (linear probe first, then fine-tune), AdamW with a cosine
schedule, label smoothing, early stopping on a grouped validation split (by title) with the best
epoch restored, then temperature scaling and the abstain threshold fitted on that split.

:func:`finetune_classifier` (used by ``catalens classify train --method finetune``) saves two artefacts:

* the fine-tuned backbone as a model folder ``<home>/models/<name>/<version>/`` whose model id is
  ``file:<that folder>`` -- ``catalens embed --model file:...`` and the ONNX export work with it;
* a classifier (method ``finetune``) whose heads score that model's L2-normalised embeddings; its
  ``model`` is the new id, so it needs those embeddings (``catalens classify --all`` embeds the
  missing ones first).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from catalens.classify.classifier import Classifier, FieldHead, check_name, new_version, softmax
from catalens.classify.finetune.data import (
    AugmentConfig,
    balanced_weights,
    encode_targets,
    grouped_split,
    is_colour_field,
    load_uint8,
)
from catalens.classify.heads import MIN_EXAMPLES, abstain_threshold, fit_temperature
from catalens.classify.metrics import ece
from catalens.errors import ClassifierError, LabelsError

if TYPE_CHECKING:
    from catalens.catalog_base import CatalogParts

log = logging.getLogger(__name__)


@dataclass
class FinetuneConfig:
    """Options of a fine-tuning run (CLI: ``--unfreeze-blocks N | --full``, ``--epochs``, ``--device``)."""

    unfreeze_blocks: int | None = 2  # None: full fine-tuning
    epochs: int = 8
    device: str = "auto"  # auto | cpu | cuda[:N]
    batch_size: int | None = None  # None: GPU -> largest that fits (<= max_batch); CPU -> 64
    max_batch: int = 256
    lr: float | None = None  # backbone; default 5e-4 (cached partial) / 3e-4 (online)
    head_lr: float = 3e-3
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    balance: float = 0.5  # sampling weight count(class) ** -balance on balance_field
    balance_field: str | None = None  # default: the field with the most classes
    val_frac: float = 0.15
    patience: int = 2
    views: int = 3  # cached mode: view 0 clean + views-1 augmented
    cache: str = "auto"  # auto | on | off
    amp: bool | None = None  # default: on CUDA
    train_bn: bool | None = None  # update BatchNorm statistics; default: only for full fine-tuning
    warm_steps: int = 150  # head-only steps on frozen features before fine-tuning
    threads: int | None = None  # CPU threads; None: torch's default, or 1 on an oversubscribed machine
    time_budget_s: float | None = None  # stop after the epoch that crosses it
    seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["augment"] = self.augment.to_dict()
        return d


@dataclass
class FinetuneResult:
    net: Any  # FineTuneNet (best epoch restored, eval mode, CPU)
    classes: dict[str, list[str]]
    heads: dict[str, FieldHead]
    held_out: dict[str, dict[str, Any]]
    history: list[dict[str, Any]]
    best_epoch: int
    batch_size: int
    device: str
    mode: str  # cached | online
    prepare_s: float
    n_train: int
    n_val: int

    def summary(self) -> dict[str, Any]:
        return {
            "best_epoch": self.best_epoch,
            "batch_size": self.batch_size,
            "device": self.device,
            "mode": self.mode,
            "prepare_s": round(self.prepare_s, 2),
            "n_train": self.n_train,
            "n_val": self.n_val,
            "history": self.history,
        }


# --- classes --------------------------------------------------------------------------------------


def field_classes(
    values: Sequence[str | None], fname: str, *, drop_rare: bool, allowed: list[str] | None = None
) -> tuple[list[str], list[str]]:
    """(classes kept, classes dropped as rare) for one field; errors like the other methods."""
    counts = Counter(v for v in values if v is not None)
    if not counts:
        raise LabelsError(f"field {fname!r} is empty (no labelled row)")
    if allowed is not None:
        bad = sorted(set(counts) - set(allowed))
        if bad:
            raise LabelsError(f"field {fname!r}: values not in the taxonomy: {bad[:10]}")
    need = MIN_EXAMPLES["finetune"]
    rare = sorted(c for c, n in counts.items() if n < need)
    if rare and not drop_rare:
        raise LabelsError(
            f"field {fname!r}: {len(rare)} class(es) have fewer than {need} examples, the minimum for "
            f"--method finetune: {rare[:10]}; add examples, use --method prototype, or pass --drop-rare"
        )
    classes = sorted(c for c, n in counts.items() if n >= need)
    if len(classes) < 2:
        raise LabelsError(f"field {fname!r}: needs at least 2 classes with enough examples, got {classes}")
    return classes, rare


# --- devices, batch size ------------------------------------------------------------------------


def pick_device(device: str) -> str:
    import torch

    dev = (device or "auto").lower()
    if dev == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise ClassifierError(f"device {device!r} requested but CUDA is not available")
    if dev not in ("cpu",) and not dev.startswith("cuda"):
        raise ClassifierError(f"unknown device {device!r}; use auto, cpu or cuda[:N]")
    return dev


def largest_batch(try_step: Callable[[int], None], start: int, minimum: int = 2) -> int:
    """The largest batch size <= ``start`` (halving) for which ``try_step(b)`` does not run out of memory."""
    import torch

    b = start
    while True:
        try:
            try_step(b)
            return b
        except torch.cuda.OutOfMemoryError:
            if b <= minimum:
                raise
            torch.cuda.empty_cache()
            b //= 2


def cpu_threads_for_training() -> int | None:
    """1 when the load average exceeds the cores: with OpenMP barriers after every layer, two threads
    competing with other processes ran the network 5-40x slower than one (measured on 2 shared cores)."""
    import os

    try:
        load = os.getloadavg()[0]
        cores = len(os.sched_getaffinity(0))
    except (OSError, AttributeError):  # pragma: no cover - not on Linux
        return None
    return 1 if load > cores else None


# --- training core --------------------------------------------------------------------------------


class _Trainer:
    """One run: builds targets, runs warm-up + epochs with early stopping, calibrates."""

    def __init__(
        self,
        net: Any,
        images: np.ndarray,
        targets: dict[str, np.ndarray],
        tr: np.ndarray,
        va: np.ndarray,
        spec: Any,
        cfg: FinetuneConfig,
        device: str,
        cache_path: Path | None,
        progress: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        import torch

        self.torch = torch
        self.net, self.images, self.targets, self.tr, self.va = net, images, targets, tr, va
        self.spec, self.cfg, self.device, self.cache_path = spec, cfg, device, cache_path
        self.progress = progress or (lambda _: None)
        self.fields = list(targets)
        self.colour = {f: is_colour_field(f) for f in self.fields}
        self.cuda = device.startswith("cuda")
        self.amp = self.cuda if cfg.amp is None else bool(cfg.amp and self.cuda)
        cached = cfg.cache == "on" or (cfg.cache == "auto" and not self.cuda and not net.full)
        if cached and net.full:
            raise ClassifierError("cached activations need a frozen front: use --unfreeze-blocks, not --full")
        self.mode = "cached" if cached else "online"
        self.train_bn = net.full if cfg.train_bn is None else cfg.train_bn
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.mean, self.std = spec.mean, spec.std

    # -- inputs ------------------------------------------------------------------------------
    def _pixels(self, idx: np.ndarray, *, aug: bool, jitter_mask: np.ndarray | None = None) -> Any:
        from catalens.classify.finetune.data import augment, normalise, to_input

        torch = self.torch
        x = to_input(torch.from_numpy(self.images[idx]).to(self.device))
        if aug:
            x = augment(x, self.cfg.augment, jitter=False, generator=self.gen)
            if jitter_mask is not None and jitter_mask.any():
                m = torch.from_numpy(jitter_mask).to(self.device)
                x[m] = augment(
                    x[m],
                    AugmentConfig(crop=False, flip=False, jitter=self.cfg.augment.jitter),
                    jitter=True,
                    generator=self.gen,
                )
        return normalise(x, self.mean, self.std)

    def _build_cache(self) -> tuple[Any, Any, np.ndarray]:
        """fp16 front activations: (views, n_train, ...) and (n_val, ...); jittered flag per view."""
        torch = self.torch
        V = max(1, int(self.cfg.views))
        jittered = np.array([v >= 2 and v % 2 == 0 for v in range(V)])
        if self.cache_path is not None and self.cache_path.is_file():
            z = torch.load(self.cache_path, map_location="cpu", weights_only=True)
            if tuple(z["train"].shape[:2]) == (V, len(self.tr)) and len(z["val"]) == len(self.va):
                return z["train"], z["val"], jittered
        self.net.set_mode(False, train_bn=False)
        bs = 64

        def run(idx: np.ndarray, view: int) -> Any:
            parts = []
            for s in range(0, len(idx), bs):
                part = idx[s : s + bs]
                jm = np.full(len(part), bool(jittered[view]))
                x = self._pixels(part, aug=view > 0, jitter_mask=jm if jittered[view] else None)
                parts.append(self.net.front(x).to("cpu", torch.float16))
            return torch.cat(parts)

        train = torch.stack([run(self.tr, v) for v in range(V)])
        val = run(self.va, 0) if len(self.va) else train[0, :0]
        if self.cache_path is not None:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_path.with_suffix(".tmp")
            torch.save({"train": train, "val": val}, tmp)
            tmp.replace(self.cache_path)
        return train, val, jittered

    # -- loss --------------------------------------------------------------------------------
    def _loss(self, logits: dict[str, Any], rows: np.ndarray, jittered: np.ndarray) -> Any:
        torch = self.torch
        F = torch.nn.functional
        total = None
        for f in self.fields:
            y = torch.from_numpy(self.targets[f][rows].copy())
            if self.colour[f]:
                y[torch.from_numpy(jittered)] = -1
            y = y.to(self.device)
            if bool((y >= 0).any()):
                loss = F.cross_entropy(
                    logits[f].float(), y, ignore_index=-1, label_smoothing=self.cfg.label_smoothing
                )
                total = loss if total is None else total + loss
        return total

    # -- head warm-up --------------------------------------------------------------------------
    def _warm_heads(self, feats: Any, rows: np.ndarray, jittered: np.ndarray) -> None:
        """Linear-probe the heads on frozen embeddings (full batch, Adam) before fine-tuning."""
        torch = self.torch
        if self.cfg.warm_steps <= 0:
            return
        opt = torch.optim.Adam(self.net.heads.parameters(), lr=1e-2)
        self.net.heads.train()
        feats = feats.to(self.device).float()
        for _ in range(self.cfg.warm_steps):
            opt.zero_grad()
            loss = self._loss(self.net.head_logits(feats), rows, jittered)
            loss.backward()
            opt.step()

    # -- evaluation ----------------------------------------------------------------------------
    def _embed_val(self, val_cache: Any | None) -> Any:
        torch = self.torch
        self.net.set_mode(False, train_bn=False)
        outs = []
        with torch.no_grad(), torch.autocast("cuda", enabled=self.amp) if self.cuda else _null():
            for s in range(0, len(self.va), 128):
                if val_cache is not None:
                    e = self.net.tail(val_cache[s : s + 128].to(self.device).float())
                else:
                    e = self.net.embed(self._pixels(self.va[s : s + 128], aug=False))
                outs.append(e.float().cpu())
        return torch.cat(outs) if outs else torch.zeros(0, 1)

    def _val_scores(self, emb: Any) -> tuple[dict[str, float], float]:
        torch = self.torch
        if len(self.va) == 0:
            return {}, 0.0
        with torch.no_grad():
            self.net.heads.eval()
            logits = self.net.head_logits(emb.to(self.device))
        accs, loss = {}, 0.0
        for f in self.fields:
            y = self.targets[f][self.va]
            ok = y >= 0
            if ok.any():
                z = logits[f].float().cpu()
                accs[f] = float((z.argmax(1).numpy()[ok] == y[ok]).mean())
                loss += float(torch.nn.functional.cross_entropy(z[ok], torch.from_numpy(y[ok])))
        return accs, loss

    # -- run -----------------------------------------------------------------------------------
    def run(self) -> tuple[int, list[dict[str, Any]], int, float]:
        net = self.net.to(self.device)
        t0 = time.perf_counter()
        st = self._cache_stage(t0)
        self._warm_start(net, st)
        prepare_s = time.perf_counter() - t0
        self._make_optimiser(net, st)
        self._plan_batches(net, st)
        best_epoch, best_state, history = self._train_epochs(net, st)
        net.load_state_dict(best_state)
        net.set_mode(False, train_bn=False)
        self.val_emb = self._embed_val(st.val_cache)
        return best_epoch, history, st.bs, prepare_s

    def _cache_stage(self, t0: float) -> _RunState:
        """Cached mode: build (or load) the front activations and report them; online: no cache."""
        cache = val_cache = None
        jittered_views = np.zeros(1, bool)
        if self.mode == "cached":
            cache, val_cache, jittered_views = self._build_cache()
            self.progress(
                {
                    "stage": "cache",
                    "seconds": round(time.perf_counter() - t0, 1),
                    "views": int(cache.shape[0]),
                    "shape": list(cache.shape[2:]),
                }
            )
        return _RunState(cache, val_cache, jittered_views)

    def _warm_start(self, net: Any, st: _RunState) -> None:
        """Warm the heads up on frozen (pre-fine-tuning) embeddings of the clean training view."""
        torch = self.torch
        cache = st.cache
        net.set_mode(False, train_bn=False)
        with torch.no_grad():
            if cache is not None:
                feats = torch.cat(
                    [
                        net.tail(cache[0, s : s + 256].to(self.device).float()).float()
                        for s in range(0, len(self.tr), 256)
                    ]
                )
            else:
                feats = torch.cat(
                    [
                        net.embed(self._pixels(self.tr[s : s + 128], aug=False)).float()
                        for s in range(0, len(self.tr), 128)
                    ]
                )
        self._warm_heads(feats, self.tr, np.zeros(len(self.tr), bool))

    def _make_optimiser(self, net: Any, st: _RunState) -> None:
        """Sampling weights on the finest field, AdamW (backbone and head rates) and the grad scaler."""
        torch = self.torch
        cfg = self.cfg
        bf = cfg.balance_field or max(self.fields, key=lambda f: int(self.targets[f].max()) + 1)
        st.weights = balanced_weights(self.targets[bf][self.tr], cfg.balance) if cfg.balance > 0 else None
        lr = cfg.lr or (5e-4 if self.mode == "cached" else 3e-4)
        st.opt = torch.optim.AdamW(
            [
                {"params": [p for p in net.tail_parameters() if p.requires_grad], "lr": lr},
                {"params": list(net.heads.parameters()), "lr": cfg.head_lr},
            ],
            weight_decay=cfg.weight_decay,
        )
        st.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)

    def _step(
        self, net: Any, st: _RunState, idx: np.ndarray, views: np.ndarray | None, jit: np.ndarray
    ) -> float:
        """One optimiser step on the training rows ``idx`` (cached views or freshly augmented pixels)."""
        torch = self.torch
        cache = st.cache
        rows = self.tr[idx]
        with torch.autocast("cuda", enabled=self.amp) if self.cuda else _null():
            if cache is not None:
                a = cache[torch.from_numpy(views), torch.from_numpy(idx)].to(self.device).float()
                emb = net.tail(a)
            else:
                emb = net.embed(self._pixels(rows, aug=True, jitter_mask=jit))
            loss = self._loss(net.head_logits(emb), rows, jit)
        st.opt.zero_grad(set_to_none=True)
        st.scaler.scale(loss).backward()
        st.scaler.step(st.opt)
        st.scaler.update()
        return float(loss.detach())

    def _plan_batches(self, net: Any, st: _RunState) -> None:
        """Batch size (given, the largest that fits on CUDA, or 64), steps per epoch and the LR schedule."""
        torch = self.torch
        cfg = self.cfg
        cache = st.cache
        n = len(self.tr)
        if cfg.batch_size:
            bs = int(cfg.batch_size)
        elif self.cuda:
            net.set_mode(True, train_bn=self.train_bn)
            snap = net.snapshot()

            def probe(b: int) -> None:
                idx = self.rng.integers(0, n, min(b, n))
                views = None if cache is None else np.zeros(len(idx), np.int64)
                self._step(net, st, idx, views, np.zeros(len(idx), bool))
                torch.cuda.synchronize()

            bs = largest_batch(probe, min(cfg.max_batch, n))
            net.load_state_dict(snap)
            st.opt.state.clear()
        else:
            bs = 64
        bs = max(2, min(bs, n))
        st.bs = bs
        st.steps_per_epoch = steps_per_epoch = max(1, n // bs)
        total = steps_per_epoch * max(1, cfg.epochs)
        warm = max(1, total // 20)
        st.sched = torch.optim.lr_scheduler.LambdaLR(
            st.opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total)))
        )

    def _train_epochs(self, net: Any, st: _RunState) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
        """Epochs with early stopping on the validation split: (best epoch, its weights, history)."""
        cfg = self.cfg
        best = (-1.0, float("inf"))
        best_epoch, best_state, stale = 0, net.snapshot(), 0
        history: list[dict[str, Any]] = []
        acc0, loss0 = self._val_scores(self._embed_val(st.val_cache))
        history.append({"epoch": 0, "val_accuracy": acc0, "val_loss": round(loss0, 4)})
        self.progress(history[-1])
        best = (float(np.mean(list(acc0.values()))) if acc0 else 0.0, loss0)
        t_start = time.perf_counter()
        for epoch in range(1, cfg.epochs + 1):
            row, score = self._epoch(net, st, epoch)
            history.append(row)
            self.progress(row)
            if score[0] > best[0] or (score[0] == best[0] and score[1] < best[1]):
                best, best_epoch, best_state, stale = score, epoch, net.snapshot(), 0
            else:
                stale += 1
                if stale >= cfg.patience:
                    break
            if cfg.time_budget_s and time.perf_counter() - t_start > cfg.time_budget_s:
                break
        return best_epoch, best_state, history

    def _epoch(self, net: Any, st: _RunState, epoch: int) -> tuple[dict[str, Any], tuple[float, float]]:
        """One training epoch then validation: (history row, (mean accuracy, loss))."""
        torch = self.torch
        cache, bs, steps_per_epoch, weights = st.cache, st.bs, st.steps_per_epoch, st.weights
        n = len(self.tr)
        te = time.perf_counter()
        net.set_mode(True, train_bn=self.train_bn)
        if weights is not None:
            order = self.rng.choice(n, size=steps_per_epoch * bs, replace=True, p=weights)
        else:
            order = self.rng.permutation(np.resize(self.rng.permutation(n), steps_per_epoch * bs))
        losses = []
        for s in range(steps_per_epoch):
            idx = order[s * bs : (s + 1) * bs]
            if cache is not None:
                views = self.rng.integers(0, cache.shape[0], len(idx))
                jit = st.jittered_views[views]
            else:
                views, jit = None, self.rng.random(len(idx)) < 0.5
            losses.append(self._step(net, st, idx, views, jit))
            st.sched.step()
        if self.cuda:
            torch.cuda.synchronize()
        train_s = time.perf_counter() - te
        accs, vloss = self._val_scores(self._embed_val(st.val_cache))
        score = (float(np.mean(list(accs.values()))) if accs else 0.0, vloss)
        row = {
            "epoch": epoch,
            "train_loss": round(float(np.mean(losses)), 4),
            "val_accuracy": {k: round(v, 4) for k, v in accs.items()},
            "val_loss": round(vloss, 4),
            "epoch_s": round(train_s, 2),
            "images_per_s": round(steps_per_epoch * bs / train_s, 1),
        }
        return row, score


@dataclass
class _RunState:
    """What the steps of one training run share: cached activations, optimiser and batch plan."""

    cache: Any  # cached mode: fp16 front activations (views, n_train, ...); online: None
    val_cache: Any
    jittered_views: np.ndarray
    weights: np.ndarray | None = None  # sampling weights of the training rows (None: uniform)
    opt: Any = None
    scaler: Any = None
    sched: Any = None
    bs: int = 0
    steps_per_epoch: int = 0


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None


def finetune_arrays(
    images: np.ndarray,
    labels: dict[str, Sequence[str | None]],
    tower: Any,
    spec: Any,
    cfg: FinetuneConfig | None = None,
    *,
    groups: Sequence[str | None] | None = None,
    drop_rare: bool = False,
    allowed: dict[str, list[str]] | None = None,
    cache_path: Path | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> FinetuneResult:
    """Fine-tune ``tower`` (an :class:`~catalens.models.tower.ImageTower`, modified in place) on
    ``images`` (``uint8 (N, 3, H, W)``, see :func:`~catalens.classify.finetune.data.load_uint8`).

    ``labels[field][i]`` is the label of image ``i`` (``None``: unlabelled). ``groups[i]`` (e.g. the
    title) keeps related images on one side of the validation split.
    """
    import torch

    from catalens.classify.finetune.model import FineTuneNet

    cfg = cfg or FinetuneConfig()
    threads = cfg.threads or cpu_threads_for_training()
    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(cfg.seed)
    n = len(images)
    fields, classes, dropped = _all_field_classes(labels, n, drop_rare=drop_rare, allowed=allowed)
    if n < 4:
        raise LabelsError(f"fine-tuning needs more than {n} labelled images")
    targets = {f: encode_targets(labels[f], classes[f]) for f in fields}
    tr, va = grouped_split(n, list(groups) if groups is not None else [None] * n, cfg.val_frac, cfg.seed)
    device = pick_device(cfg.device)
    net = FineTuneNet(
        tower.backbone,
        int(tower.dim),
        {f: len(c) for f, c in classes.items()},
        unfreeze_blocks=cfg.unfreeze_blocks,
    )
    trainer = _Trainer(net, images, targets, tr, va, spec, cfg, device, cache_path, progress)
    best_epoch, history, bs, prepare_s = trainer.run()
    net = net.to("cpu").eval()
    heads, held = _calibrated_heads(net, trainer.val_emb, fields, classes, dropped, targets, va)
    return FinetuneResult(
        net=net,
        classes=classes,
        heads=heads,
        held_out=held,
        history=history,
        best_epoch=best_epoch,
        batch_size=bs,
        device=device,
        mode=trainer.mode,
        prepare_s=prepare_s,
        n_train=len(tr),
        n_val=len(va),
    )


def _all_field_classes(
    labels: dict[str, Sequence[str | None]],
    n: int,
    *,
    drop_rare: bool,
    allowed: dict[str, list[str]] | None,
) -> tuple[list[str], dict[str, list[str]], dict[str, list[str]]]:
    """(fields, classes kept per field, classes dropped as rare per field); labels must align with images."""
    fields = list(labels)
    if not fields:
        raise LabelsError("no field to train")
    classes: dict[str, list[str]] = {}
    dropped: dict[str, list[str]] = {}
    for f in fields:
        if len(labels[f]) != n:
            raise ClassifierError("images and labels are not aligned")
        classes[f], dropped[f] = field_classes(
            labels[f], f, drop_rare=drop_rare, allowed=(allowed or {}).get(f)
        )
    return fields, classes, dropped


def _calibrated_heads(
    net: Any,
    val_emb: Any,
    fields: list[str],
    classes: dict[str, list[str]],
    dropped: dict[str, list[str]],
    targets: dict[str, np.ndarray],
    va: np.ndarray,
) -> tuple[dict[str, FieldHead], dict[str, dict[str, Any]]]:
    """The trained heads as FieldHeads, temperature and threshold fitted on the validation split."""
    arrays = net.head_arrays()
    emb = val_emb.numpy()
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    heads: dict[str, FieldHead] = {}
    held: dict[str, dict[str, Any]] = {}
    for f in fields:
        W, b = arrays[f]
        head = FieldHead(name=f, classes=classes[f], W=W, b=b, kind="finetune")
        y = targets[f][va]
        ok = y >= 0
        if ok.sum() >= 5:
            z = head.logits(emb[ok])
            head.temperature = fit_temperature(z, y[ok])
            p = softmax(z / head.temperature)
            head.threshold = abstain_threshold(p, y[ok])
            held[f] = {
                "n": int(ok.sum()),
                "accuracy": float((p.argmax(1) == y[ok]).mean()),
                "ece": ece(p, y[ok]),
                "ece_uncalibrated": ece(softmax(z), y[ok]),
            }
        head.extra = {"dropped_rare": dropped[f]}
        heads[f] = head
    return heads, held


# --- catalog glue ---------------------------------------------------------------------------------


def hierarchy_paths(labels: dict[str, Sequence[str | None]], hier: list[str]) -> list[list[str]]:
    """Observed parent-first paths of the hierarchy fields (as :func:`train_on_matrix` records them)."""
    if len(hier) < 2:
        return []
    n = len(labels[hier[0]])
    rows = [tuple(labels[f][i] for f in hier) for i in range(n)]
    return [list(p) for p in dict.fromkeys(r for r in rows if all(v is not None for v in r))]


def catalog_images(cat: CatalogParts, shas: Sequence[str]) -> list[Any]:
    from catalens.imageio import open_image

    out = []
    for sha in shas:
        rec = cat.db.image(sha)
        if rec is None:
            raise LabelsError(f"image {sha} is not in the catalog")
        out.append(open_image(rec.stored_path or rec.source).image)
    return out


def finetune_classifier(
    cat: CatalogParts,
    name: str,
    labels: Any,
    fields: list[str],
    *,
    model: str,
    save: bool = True,
    hierarchy: list[str] | None = None,
    taxonomy: Any = None,
    drop_rare: bool = False,
    config: FinetuneConfig | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    **options: Any,
) -> Classifier:
    """Fine-tune ``model`` on the labelled catalog images; save the new model and the classifier.

    ``options`` may set any :class:`FinetuneConfig` field (``epochs=``, ``unfreeze_blocks=``,
    ``full=True``, ``device=`` ...).
    """
    from catalens.classify.classifier import save_classifier
    from catalens.models import get_spec

    check_name(name)
    cfg = _finetune_config(config, options)
    allowed = _check_labels(labels, fields, taxonomy, drop_rare)
    spec = get_spec(model)
    tower, lab, res = _finetune_on_catalog(
        cat, spec, labels, fields, cfg, drop_rare=drop_rare, allowed=allowed, progress=progress
    )
    hier, paths = _hierarchy_of(res.heads, lab, fields, hierarchy, taxonomy)
    heads = res.heads
    version = new_version()
    folder = cat.settings.home / "models" / name / version
    model_id = f"file:{folder.resolve()}"
    res.net.backbone.reset_classifier(0)
    model_version = None
    if save:
        model_version = _save_model(tower, folder, model_id, spec, name, version, fields, cfg, res.best_epoch)
    digest = hashlib.sha256("\n".join(labels.shas).encode()).hexdigest()[:16]
    clf = Classifier(
        name=name,
        version=version,
        method="finetune",
        model=model_id,
        model_version=model_version,
        heads=heads,
        paths=paths,
        data={"source": labels.source, "n": len(labels), "images_sha256": digest, "seed": cfg.seed},
        metrics={"held_out": res.held_out},
        extra={
            "hierarchy": hier,
            "base_model": spec.name,
            "model_folder": str(folder),
            "needs_embeddings": model_id,
            "options": cfg.to_dict(),
            "finetune": res.summary(),
        },
    )
    if save:
        save_classifier(cat.settings.home, clf)
    return clf


def _finetune_config(config: FinetuneConfig | None, options: dict[str, Any]) -> FinetuneConfig:
    """The run's FinetuneConfig: ``config`` (or the defaults) with ``options`` applied."""
    if options.pop("text_model", None) or options.pop("use_colour", False):
        raise ClassifierError(
            "--method finetune trains on images only (no --text-model / --title-words / --colour-features)"
        )
    cfg = config or FinetuneConfig()
    if options.pop("full", False):
        cfg.unfreeze_blocks = None
    for k, v in options.items():
        if not hasattr(cfg, k):
            raise ClassifierError(f"unknown fine-tuning option {k!r}")
        if v is not None:
            setattr(cfg, k, v)
    return cfg


def _check_labels(labels: Any, fields: list[str], taxonomy: Any, drop_rare: bool) -> dict[str, list[str]]:
    """Check every field's labels before any model or image is loaded; the taxonomy's allowed values."""
    allowed = {f: taxonomy.values(f) for f in fields if taxonomy and f in taxonomy.fields}
    for f in fields:  # label problems first, before any model or image is loaded
        if f not in labels.labels:
            raise LabelsError(f"no labels for field {f!r}")
        field_classes(labels.labels[f], f, drop_rare=drop_rare, allowed=allowed.get(f))
    return allowed


def _finetune_on_catalog(
    cat: CatalogParts,
    spec: Any,
    labels: Any,
    fields: list[str],
    cfg: FinetuneConfig,
    *,
    drop_rare: bool,
    allowed: dict[str, list[str]],
    progress: Callable[[dict[str, Any]], None] | None,
) -> tuple[Any, dict[str, Sequence[str | None]], FinetuneResult]:
    """Load the base model and the labelled images, fine-tune: (tower, labels per field, result)."""
    from catalens.models import load_torch_model
    from catalens.models.loader import weights_file_digest

    tower = load_torch_model(spec)
    base_digest = weights_file_digest(spec) or ""
    images = load_uint8(catalog_images(cat, labels.shas), spec)
    key = hashlib.sha256(
        "\n".join(
            [
                spec.name,
                base_digest,
                str(cfg.unfreeze_blocks),
                str(cfg.views),
                str(cfg.seed),
                str(cfg.val_frac),
                repr(cfg.augment),
                *labels.shas,
            ]
        ).encode()
    ).hexdigest()[:20]
    cache_path = cat.settings.home / "cache" / "finetune" / f"{key}.pt"
    groups = [(t or "").strip().lower() or None for t in labels.titles]
    lab = {f: labels.labels[f] for f in fields}
    res = finetune_arrays(
        images,
        lab,
        tower,
        spec,
        cfg,
        groups=groups,
        drop_rare=drop_rare,
        allowed=allowed,
        cache_path=cache_path,
        progress=progress,
    )
    return tower, lab, res


def _hierarchy_of(
    heads: dict[str, FieldHead],
    lab: dict[str, Sequence[str | None]],
    fields: list[str],
    hierarchy: list[str] | None,
    taxonomy: Any,
) -> tuple[list[str], list[list[str]]]:
    """Set each hierarchy head's parent; (hierarchy fields, parent-first paths) for the classifier."""
    hier = list(taxonomy.hierarchy) if taxonomy and taxonomy.hierarchy else list(hierarchy or [])
    hier = [f for f in hier if f in fields]
    for i, f in enumerate(hier):
        heads[f].parent = hier[i - 1] if i else None
    paths = (
        [list(p) for p in taxonomy.paths]
        if taxonomy and taxonomy.hierarchy and len(hier) >= 2
        else hierarchy_paths(lab, hier)
    )
    return hier, paths


def _save_model(
    tower: Any,
    folder: Path,
    model_id: str,
    spec: Any,
    name: str,
    version: str,
    fields: list[str],
    cfg: FinetuneConfig,
    best_epoch: int,
) -> str:
    """Save the fine-tuned backbone as a model folder; its model version."""
    from catalens.models.finetuned import load_artifact_spec, save_artifact
    from catalens.models.loader import weights_file_digest
    from catalens.models.spec import make_version

    save_artifact(
        tower,
        folder,
        name=model_id,
        base=spec,
        description=f"{spec.description or spec.name} fine-tuned for classifier {name} ({', '.join(fields)})",
        extra={
            "classifier": name,
            "classifier_version": version,
            "base_model": spec.name,
            "fields": fields,
            "config": cfg.to_dict(),
            "best_epoch": best_epoch,
        },
    )
    new_spec = load_artifact_spec(folder, model_id)
    return make_version(weights_file_digest(new_spec) or "", new_spec)
