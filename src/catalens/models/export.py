"""Export an :class:`~catalens.models.tower.ImageTower` to ONNX (embeddings only, dynamic batch).

Exporters, in order:

1. TorchScript exporter (``dynamo=False``, opset 17). TensorFlow-style "SAME" padding layers of
   timm's ``tf_*`` models (``Conv2dSame``, ``MaxPool2dSame``, ``AvgPool2dSame``) compute their
   padding from the input shape at run time, which the TorchScript exporter turns into ~500
   shape-arithmetic nodes and separate ``Pad`` ops that block conv fusion. The network input
   size is fixed, so a copy of the tower with those paddings frozen to constants is exported
   instead (:func:`freeze_same_padding`): quick to export, and the graph runs as fast as the dynamo
   export (faster than the unfrozen TorchScript export).
2. dynamo exporter (torch.export + onnxscript, opset 18): ~7 s for Lite0 on a 2-core CPU; used
   when the TorchScript exporter fails (or is gone in a later torch).

``CATALENS_ONNX_EXPORTER=dynamo`` reverses the order. Every export is checked against torch on
a random batch (relative tolerance ~1e-4) before it is atomically moved into place.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from catalens.errors import ModelError
from catalens.models.spec import ModelSpec

ONNX_OPSET = 18
LEGACY_OPSET = 17
EXPORTER_ENV = "CATALENS_ONNX_EXPORTER"
_SAME_LAYERS = ("Conv2dSame", "MaxPool2dSame", "AvgPool2dSame")


@contextlib.contextmanager
def _quiet_loggers(*names: str):
    """The exporters log every rewrite at INFO; keep them to warnings while exporting."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _pair(value: Any) -> tuple[int, int]:
    return tuple(value) if isinstance(value, tuple | list) else (int(value), int(value))  # type: ignore[return-value]


def freeze_same_padding(tower: Any, input_size: tuple[int, int, int]) -> Any:
    """A copy of ``tower`` whose dynamic "SAME" padding layers use constant padding for
    ``input_size`` (the tower itself when it has none). Outputs are identical at that size."""
    import torch
    from timm.layers.padding import get_same_padding
    from torch import nn

    if not any(type(m).__name__ in _SAME_LAYERS for m in tower.modules()):
        return tower
    frozen = copy.deepcopy(tower)
    targets = {n: m for n, m in frozen.named_modules() if type(m).__name__ in _SAME_LAYERS}
    sizes: dict[str, tuple[int, int]] = {}
    hooks = [
        m.register_forward_pre_hook(lambda _m, args, n=n: sizes.__setitem__(n, tuple(args[0].shape[-2:])))
        for n, m in targets.items()
    ]
    try:
        with torch.inference_mode():
            frozen.embed(torch.zeros(1, *input_size))
    finally:
        for hook in hooks:
            hook.remove()
    for name, module in targets.items():
        if name not in sizes:
            continue
        (ih, iw), (kh, kw), (sh, sw) = sizes[name], _pair(module.kernel_size), _pair(module.stride)
        dh, dw = _pair(getattr(module, "dilation", 1))
        ph, pw = get_same_padding(ih, kh, sh, dh), get_same_padding(iw, kw, sw, dw)
        pads = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)  # left, right, top, bottom
        kind = type(module).__name__
        if kind == "Conv2dSame":
            conv = nn.Conv2d(
                module.in_channels,
                module.out_channels,
                module.kernel_size,
                module.stride,
                0,
                module.dilation,
                module.groups,
                bias=module.bias is not None,
            )
            conv.weight, conv.bias = module.weight, module.bias
            if pads[0] == pads[1] and pads[2] == pads[3]:
                conv.padding = (pads[2], pads[0])
                replacement: nn.Module = conv
            else:
                replacement = nn.Sequential(nn.ZeroPad2d(pads), conv)
        elif kind == "MaxPool2dSame":
            pool = nn.MaxPool2d(
                module.kernel_size, module.stride, 0, module.dilation, ceil_mode=module.ceil_mode
            )
            replacement = nn.Sequential(nn.ConstantPad2d(pads, float("-inf")), pool)
        else:
            pool = nn.AvgPool2d(
                module.kernel_size,
                module.stride,
                0,
                ceil_mode=module.ceil_mode,
                count_include_pad=module.count_include_pad,
            )
            replacement = nn.Sequential(nn.ZeroPad2d(pads), pool)
        parent_name, _, child = name.rpartition(".")
        setattr(frozen.get_submodule(parent_name) if parent_name else frozen, child, replacement)
    return frozen.eval()


def _export_legacy(tower: Any, spec: ModelSpec, example: Any, path: Path) -> None:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            freeze_same_padding(tower, spec.input_size),
            (example,),
            str(path),
            input_names=["pixel_values"],
            output_names=["embedding"],
            dynamic_axes={"pixel_values": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=LEGACY_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def _export_dynamo(tower: Any, spec: ModelSpec, example: Any, path: Path) -> None:
    import torch

    with warnings.catch_warnings(), _quiet_loggers("onnxscript", "onnx_ir", "torch.onnx", "torch.export"):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            tower,
            (example,),
            str(path),
            input_names=["pixel_values"],
            output_names=["embedding"],
            dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=65536)},),
            opset_version=ONNX_OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )


def verify_onnx(path: str | Path, tower: Any, spec: ModelSpec) -> float:
    """Max abs difference between the ONNX graph and torch on a random batch; ModelError if too big."""
    import onnxruntime as ort
    import torch

    x = np.random.default_rng(0).standard_normal((3, *spec.input_size)).astype(np.float32)
    with torch.inference_mode():
        ref = tower.embed(torch.from_numpy(x)).float().numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    scale = max(1.0, float(np.abs(ref).max()))
    if got.shape != ref.shape:
        raise ModelError(f"ONNX output shape {got.shape} differs from torch {ref.shape}")
    err = float(np.abs(got - ref).max())
    if not np.allclose(got, ref, rtol=1e-3, atol=2e-4 * scale):
        raise ModelError(f"ONNX output differs from torch (max abs error {err:.3g})")
    return err


def export_onnx(tower: Any, spec: ModelSpec, path: str | Path) -> str:
    """Export ``tower`` (embeddings only) to ``path`` atomically; returns the exporter used."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tower = tower.eval()
    tower.with_logits = False
    example = torch.zeros(2, *spec.input_size)
    order = ["legacy", "dynamo"]
    if os.environ.get(EXPORTER_ENV, "").strip().lower() == "dynamo":
        order.reverse()
    errors = []
    for exporter in order:
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.{exporter}.tmp.onnx")
        try:
            (_export_legacy if exporter == "legacy" else _export_dynamo)(tower, spec, example, tmp)
            verify_onnx(tmp, tower, spec)
            os.replace(tmp, path)
            return exporter
        except Exception as exc:  # try the next exporter
            first_line = str(exc).splitlines()[0][:300] if str(exc) else ""
            errors.append(f"{exporter}: {type(exc).__name__}: {first_line}")
        finally:
            tmp.unlink(missing_ok=True)
            tmp.with_name(tmp.name + ".data").unlink(missing_ok=True)
    raise ModelError(f"ONNX export of {spec.name!r} failed: " + "; ".join(errors))
