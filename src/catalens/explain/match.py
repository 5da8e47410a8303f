"""Match explanations: which regions of a query and of its match agree.

Both images go through the backbone once (no gradients); the last spatial feature maps
``F_q, F_m`` (``C x h x w``) are read at the explainer's spatial layer and average-pooled to
``p_q, p_m``.

* ``mode="contribution"`` (default): cell ``ij`` of the query gets
  ``<F_q[ij], p_m> / (h w |p_q| |p_m|)``. These values sum exactly to ``cos(p_q, p_m)``, so the
  map splits the similarity score among the query's regions (and vice versa for the match).
  For models whose embedding is that average pool (EfficientNet and most timm CNNs) this is the
  very cosine similarity that search and duplicate detection use (``exact`` is then true).
* ``mode="cosine"``: cell ``ij`` gets ``cos(F_q[ij], p_m)`` (direction only, ignores how strong
  the features are).

``pairs`` links the query's strongest cells to their most similar match cells (cosine between
cell features), drawn as lines between the two images.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from catalens.errors import ConfigError
from catalens.explain.explainer import Explainer, load_image
from catalens.explain.layers import FeatureHook
from catalens.explain.maps import Box, Region, input_box_to_source, regions, to_source, upsample

MODES = ("contribution", "cosine")


@dataclass
class CellPair:
    """A query cell and the match cell most similar to it (boxes in each image's source pixels)."""

    query_box: list[float]
    match_box: list[float]
    cosine: float
    contribution: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "query_box": [round(v, 1) for v in self.query_box],
            "match_box": [round(v, 1) for v in self.match_box],
            "cosine": round(self.cosine, 4),
            "contribution": round(self.contribution, 5),
        }


@dataclass
class MatchExplanation:
    """Maps of agreement for a query/match pair.

    ``query_map`` / ``match_map`` are raw per-cell values at the feature grid (see module docs);
    ``query_input`` / ``match_input`` the same upsampled to the network input and scaled to [0, 1]
    with one shared scale (negative agreement clipped to 0). ``similarity`` is the cosine of the
    model's embeddings; ``pooled_similarity`` that of the pooled maps (the sum of a contribution map).
    """

    query_source: str
    match_source: str
    model: str
    mode: str
    similarity: float
    pooled_similarity: float
    exact: bool
    query_map: np.ndarray
    match_map: np.ndarray
    query_input: np.ndarray
    match_input: np.ndarray
    query_crop: Box
    match_crop: Box
    query_image: Image.Image = field(repr=False)
    match_image: Image.Image = field(repr=False)
    query_regions: list[Region] = field(default_factory=list)
    match_regions: list[Region] = field(default_factory=list)
    pairs: list[CellPair] = field(default_factory=list)
    layer: str = ""

    def render(self, *, height: int = 320) -> Image.Image:
        """Both overlays side by side, strongest cell pairs linked by numbered lines, a caption below."""
        from catalens.explain.render import PALETTE, caption, overlay

        panels = []
        for img, m, crop, regs in (
            (self.query_image, self.query_input, self.query_crop, self.query_regions),
            (self.match_image, self.match_input, self.match_crop, self.match_regions),
        ):
            ov = overlay(img, to_source(m, crop, img.size), boxes=[r.box for r in regs[:3]], crop_box=crop)
            scale = height / img.height
            panels.append(
                (ov.resize((max(1, round(img.width * scale)), height), Image.Resampling.BICUBIC), scale)
            )
        gap = 24
        out = Image.new("RGB", (panels[0][0].width + gap + panels[1][0].width, height), (255, 255, 255))
        out.paste(panels[0][0], (0, 0))
        x_off = panels[0][0].width + gap
        out.paste(panels[1][0], (x_off, 0))
        draw = ImageDraw.Draw(out)
        for i, pair in enumerate(self.pairs):
            colour = PALETTE[i % len(PALETTE)]
            q = [v * panels[0][1] for v in pair.query_box]
            m = [v * panels[1][1] for v in pair.match_box]
            m = [m[0] + x_off, m[1], m[2] + x_off, m[3]]
            draw.rectangle(q, outline=colour, width=2)
            draw.rectangle(m, outline=colour, width=2)
            draw.line(
                [((q[0] + q[2]) / 2, (q[1] + q[3]) / 2), ((m[0] + m[2]) / 2, (m[1] + m[3]) / 2)],
                fill=colour,
                width=2,
            )
        text = f"{self.model}: similarity {self.similarity:.3f} ({self.mode}) query | match"
        return caption(out, text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query_source,
            "match": self.match_source,
            "model": self.model,
            "layer": self.layer,
            "mode": self.mode,
            "similarity": round(self.similarity, 5),
            "pooled_similarity": round(self.pooled_similarity, 5),
            "exact": self.exact,
            "grid": list(self.query_map.shape),
            "query_crop_box": [round(v, 1) for v in self.query_crop],
            "match_crop_box": [round(v, 1) for v in self.match_crop],
            "query_regions": [r.to_dict() for r in self.query_regions],
            "match_regions": [r.to_dict() for r in self.match_regions],
            "pairs": [p.to_dict() for p in self.pairs],
        }

    def save(self, out_dir: str | Path, stem: str | None = None) -> dict[str, str]:
        """Write ``<stem>.match.png``, ``<stem>.query.npy`` / ``<stem>.match.npy`` (raw grid maps)
        and ``<stem>.match.json``; returns their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = stem or f"{Path(self.query_source).stem}--{Path(self.match_source).stem}"
        paths = {
            "image": out / f"{stem}.match.png",
            "query_map": out / f"{stem}.query.npy",
            "match_map": out / f"{stem}.match.npy",
            "json": out / f"{stem}.match.json",
        }
        self.render().save(paths["image"], optimize=True)
        np.save(paths["query_map"], self.query_map.astype(np.float32))
        np.save(paths["match_map"], self.match_map.astype(np.float32))
        data = self.to_dict() | {"files": {k: str(v) for k, v in paths.items()}}
        paths["json"].write_text(json.dumps(data, indent=2))
        return {k: str(v) for k, v in paths.items()}


def agreement_maps(fq: torch.Tensor, fm: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Per-cell agreement of two ``(C, h, w)`` maps with each other's pooled feature, and the
    cosine of the pooled features (see module docs)."""
    if mode not in MODES:
        raise ConfigError(f"unknown match mode {mode!r}; use one of {', '.join(MODES)}")
    pq, pm = fq.mean(dim=(1, 2)), fm.mean(dim=(1, 2))
    nq, nm = pq.norm().clamp_min(1e-12), pm.norm().clamp_min(1e-12)
    pooled = float((pq @ pm) / (nq * nm))
    if mode == "contribution":
        q = torch.einsum("chw,c->hw", fq, pm) / (nq * nm * fq.shape[1] * fq.shape[2])
        m = torch.einsum("chw,c->hw", fm, pq) / (nq * nm * fm.shape[1] * fm.shape[2])
    else:
        q = torch.einsum("chw,c->hw", F.normalize(fq, dim=0), pm / nm)
        m = torch.einsum("chw,c->hw", F.normalize(fm, dim=0), pq / nq)
    return q, m, pooled


def _cell_box(i: int, j: int, grid: tuple[int, int], input_size: tuple[int, int], crop: Box) -> list[float]:
    gh, gw = grid
    h_in, w_in = input_size
    box = (j * w_in / gw, i * h_in / gh, (j + 1) * w_in / gw, (i + 1) * h_in / gh)
    return list(input_box_to_source(box, input_size, crop))


def cell_pairs(
    fq: torch.Tensor,
    fm: torch.Tensor,
    qmap: torch.Tensor,
    k: int,
    input_size: tuple[int, int],
    crops: tuple[Box, Box],
) -> list[CellPair]:
    """The ``k`` strongest query cells (not touching each other) and their most similar match cells."""
    c, gh, gw = fq.shape
    cq = F.normalize(fq.reshape(c, -1), dim=0)
    cm = F.normalize(fm.reshape(c, -1), dim=0)
    sims = cq.T @ cm  # (cells_q, cells_m)
    chosen: list[tuple[int, int]] = []
    for flat in torch.argsort(qmap.reshape(-1), descending=True).tolist():
        i, j = divmod(flat, gw)
        if float(qmap[i, j]) <= 0 or any(abs(i - a) <= 1 and abs(j - b) <= 1 for a, b in chosen):
            continue
        chosen.append((i, j))
        if len(chosen) >= k:
            break
    pairs = []
    for i, j in chosen:
        row = sims[i * gw + j]
        best = int(row.argmax())
        bi, bj = divmod(best, fm.shape[2])
        pairs.append(
            CellPair(
                _cell_box(i, j, (gh, gw), input_size, crops[0]),
                _cell_box(bi, bj, (fm.shape[1], fm.shape[2]), input_size, crops[1]),
                float(row[best]),
                float(qmap[i, j]),
            )
        )
    return pairs


def explain_match(
    explainer: Explainer,
    query: Any,
    match: Any,
    *,
    mode: str = "contribution",
    pairs: int = 3,
    threshold: float = 0.5,
) -> MatchExplanation:
    """Explain why ``match`` is similar to ``query`` for the explainer's model (see module docs)."""
    if mode not in MODES:
        raise ConfigError(f"unknown match mode {mode!r}; use one of {', '.join(MODES)}")
    q_img, q_src = load_image(query)
    m_img, m_src = load_image(match)
    x = torch.from_numpy(explainer.preprocess.batch([q_img, m_img]))
    layer = explainer.layer
    with torch.inference_mode(), FeatureHook(layer, grads=False) as hook:
        emb = explainer.tower.embed(x)
        feats = hook.activation
    if feats is None:
        raise ConfigError(f"layer {layer.name} was not used when embedding")
    feats = feats.float()
    similarity = float(F.cosine_similarity(emb[0:1].float(), emb[1:2].float()).item())
    q, m, pooled = agreement_maps(feats[0], feats[1], mode)
    size = explainer.spec.image_size
    top = float(max(q.max(), m.max(), 1e-12))
    q_in = np.clip(upsample(q.numpy(), size) / top, 0, 1)
    m_in = np.clip(upsample(m.numpy(), size) / top, 0, 1)
    q_crop = tuple(float(v) for v in explainer.preprocess.crop_box(*q_img.size))
    m_crop = tuple(float(v) for v in explainer.preprocess.crop_box(*m_img.size))
    return MatchExplanation(
        query_source=q_src,
        match_source=m_src,
        model=explainer.model_id,
        mode=mode,
        similarity=similarity,
        pooled_similarity=pooled,
        exact=abs(similarity - pooled) < 1e-4,
        query_map=q.numpy().astype(np.float32),
        match_map=m.numpy().astype(np.float32),
        query_input=q_in,
        match_input=m_in,
        query_crop=q_crop,  # type: ignore[arg-type]
        match_crop=m_crop,  # type: ignore[arg-type]
        query_image=q_img,
        match_image=m_img,
        query_regions=regions(q_in, q_crop, threshold=threshold),  # type: ignore[arg-type]
        match_regions=regions(m_in, m_crop, threshold=threshold),  # type: ignore[arg-type]
        pairs=cell_pairs(feats[0], feats[1], q, pairs, size, (q_crop, m_crop)),  # type: ignore[arg-type]
        layer=layer.name,
    )
