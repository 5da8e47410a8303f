"""The detector network (torch side: training and ONNX export only).

Front: the packaged EfficientNet-Lite0's stem and ``blocks[0:5]`` (ImageNet weights, frozen),
tapped at stride 4 (24 channels), 8 (40) and 16 (112). Head (trained): a stride-32 context branch,
a small top-down pyramid of depthwise-separable convolutions down to stride 8, and three outputs:

* ``heat`` (B, C, H/8, W/8): logits of a product centre of each coarse category (CenterNet-style
  peaks; a Gaussian the size of the box marks each centre in training);
* ``box`` (B, 4, H/8, W/8): log width and log height of the box in stride-8 cells, and the centre's
  offset inside its cell;
* ``mask`` (B, 1, H/4, W/4): logits of "this pixel belongs to a product" (one mask for all products;
  each detection's mask is the part inside its box).

Input: RGB scaled to [-1, 1], any height and width that are multiples of 32.
"""

from __future__ import annotations

from typing import Any

FRONT_BLOCKS = 5
TAPS = (1, 2, 4)  # blocks whose outputs feed the head: stride 4, 8, 16
TAP_CHANNELS = (24, 40, 112)
WIDTH = 96
MASK_WIDTH = 32
HEAT_PRIOR = -2.19  # logit of 0.1: CenterNet's bias init for the centre heatmap


def _sep(cin: int, cout: int, stride: int = 1) -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def build_head(n_categories: int) -> Any:
    """The trainable head: (stride-4, stride-8, stride-16 maps) -> (heat, box, mask)."""
    import torch
    from torch import nn

    c4, c8, c16 = TAP_CHANNELS

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ctx = nn.Sequential(_sep(c16, 128, 2), _sep(128, 128))
            self.lat32 = nn.Conv2d(128, WIDTH, 1)
            self.lat16 = nn.Conv2d(c16, WIDTH, 1)
            self.top16 = _sep(WIDTH, WIDTH)
            self.lat8 = nn.Conv2d(c8, WIDTH, 1)
            self.top8 = nn.Sequential(_sep(WIDTH, WIDTH), _sep(WIDTH, WIDTH))
            self.heat = nn.Sequential(_sep(WIDTH, WIDTH), nn.Conv2d(WIDTH, n_categories, 1))
            self.box = nn.Sequential(_sep(WIDTH, WIDTH), nn.Conv2d(WIDTH, 4, 1))
            self.lat4 = nn.Conv2d(c4, MASK_WIDTH, 1)
            self.down8 = nn.Conv2d(WIDTH, MASK_WIDTH, 1)
            self.mask = nn.Sequential(_sep(MASK_WIDTH, MASK_WIDTH), nn.Conv2d(MASK_WIDTH, 1, 1))
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            nn.init.constant_(self.heat[-1].bias, HEAT_PRIOR)

        def forward(self, f4: torch.Tensor, f8: torch.Tensor, f16: torch.Tensor) -> tuple[torch.Tensor, ...]:
            p32 = self.lat32(self.ctx(f16))
            p16 = self.top16(self.lat16(f16) + self.up(p32))
            p8 = self.top8(self.lat8(f8) + self.up(p16))
            p4 = self.lat4(f4) + self.up(self.down8(p8))
            return self.heat(p8), self.box(p8), self.mask(p4)

    return Head()


def build_front() -> Any:
    """The frozen part (eval mode): Lite0 stem + ``blocks[0:5]``, returning the three tapped maps."""
    from torch import nn

    from catalens.models.loader import build_backbone
    from catalens.models.registry import get_spec

    backbone, _ = build_backbone(get_spec("efficientnet-lite0"))

    class Front(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv_stem, self.bn1 = backbone.conv_stem, backbone.bn1
            self.blocks = backbone.blocks[:FRONT_BLOCKS]

        def forward(self, x: Any) -> tuple[Any, ...]:
            x = self.bn1(self.conv_stem(x))
            taps = []
            for i, block in enumerate(self.blocks):
                x = block(x)
                if i in TAPS:
                    taps.append(x)
            return tuple(taps)

        def embed(self, x: Any) -> Any:  # what export.freeze_same_padding runs to record sizes
            return self.forward(x)

    front = Front().eval()
    for p in front.parameters():
        p.requires_grad_(False)
    return front


def export(head: Any, path: Any, size: tuple[int, int] = (384, 384)) -> float:
    """Front + head as one ONNX graph (free batch, height and width); returns the largest difference
    to torch over a square and a portrait input (raises above 1e-3)."""
    import warnings

    import numpy as np
    import onnxruntime as ort
    import torch

    from catalens.models.export import freeze_same_padding

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.front, self.head = build_front(), head.eval()

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return self.head(*self.front(x))

        def embed(self, x: torch.Tensor) -> Any:
            return self.forward(x)

    model = freeze_same_padding(Net().eval(), (3, size[1], size[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, size[1], size[0]),),
            str(path),
            input_names=["pixels"],
            output_names=["heat", "box", "mask"],
            dynamic_axes={
                "pixels": {0: "batch", 2: "height", 3: "width"},
                **{k: {0: "batch", 2: f"{k}_h", 3: f"{k}_w"} for k in ("heat", "box", "mask")},
            },
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reference = Net().eval()
    err = 0.0
    for w, h in ((384, 384), (288, 384)):
        x = np.random.default_rng(0).uniform(-1, 1, (1, 3, h, w)).astype(np.float32)
        with torch.inference_mode():
            ref = [t.numpy() for t in reference(torch.from_numpy(x))]
        got = session.run(None, {"pixels": x})
        err = max(err, *(float(np.abs(a - b).max()) for a, b in zip(got, ref, strict=True)))
    if err > 1e-3:
        raise RuntimeError(f"exported detector differs from torch by {err:.3g}")
    return err
