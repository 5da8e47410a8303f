"""Query vectors: from an image file (stored vector when the bytes are already embedded)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from catalens.errors import ConfigError
from catalens.imageio import decode_image, read_bytes, sha256_bytes
from catalens.vectors import l2_normalize

if TYPE_CHECKING:
    from catalens.catalog_base import CatalogParts


def embed_image_file(encoder: Any, path: str | Path, settings: Any) -> tuple[str, np.ndarray, Any]:
    """(sha256, L2-normalised vector, decoded image) of an image file, encoded with ``encoder``."""
    data = read_bytes(path, max_bytes=settings.max_file_bytes)
    decoded = decode_image(
        data,
        str(path),
        max_pixels=settings.max_pixels,
        max_side=settings.max_side,
        draft_to=int(encoder.preprocess.target_short_side),
    )
    tensor = encoder.preprocess(decoded.image)
    vec = l2_normalize(np.asarray(encoder.encode(np.asarray(tensor, dtype=np.float32)[None])))[0]
    return sha256_bytes(data), vec, decoded


def check_encoder(encoder: Any, searcher: Any) -> None:
    """Refuse an encoder whose model or version differs from the searcher's stored embeddings."""
    if encoder.model_id != searcher.data.model_id or encoder.version != searcher.data.version:
        raise ConfigError(
            f"the loaded model {encoder.model_id} {encoder.version} differs from the stored embeddings "
            f"({searcher.data.model_id} {searcher.data.version}); run `catalens embed` first"
        )


def embed_pil_images(catalog: CatalogParts, searcher: Any, images: list[Any]) -> np.ndarray:
    """(n, d) L2-normalised query vectors of in-memory PIL images (e.g. product crops)."""
    encoder = catalog.encoder(searcher.model)
    check_encoder(encoder, searcher)
    if not images:
        return np.zeros((0, 0), np.float32)
    batch = np.stack([np.asarray(encoder.preprocess(im.convert("RGB")), dtype=np.float32) for im in images])
    return l2_normalize(np.asarray(encoder.encode(batch)))


def image_query_vector(catalog: CatalogParts, searcher: Any, path: str | Path) -> tuple[str, np.ndarray]:
    """(sha256, vector) for a query image: the stored vector when those bytes are embedded already."""
    data = read_bytes(path, max_bytes=catalog.settings.max_file_bytes)
    sha = sha256_bytes(data)
    stored = searcher.stored_vector(sha)
    if stored is not None:
        return sha, stored
    encoder = catalog.encoder(searcher.model)
    check_encoder(encoder, searcher)
    sha, vec, _ = embed_image_file(encoder, path, catalog.settings)
    return sha, vec
