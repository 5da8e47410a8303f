"""Turn what a user types for an image (a path, an image sha256, a product id) into a file path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from catalens.errors import UnreadableError


def resolve_image_ref(db: Any, ref: str | Path) -> Path:
    """A path that exists wins; else a stored image's sha256 (or a unique prefix of 8+ hex
    characters), else a product id (its first image). UnreadableError when nothing matches."""
    path = Path(ref).expanduser()
    if path.exists():
        return path
    text = str(ref).strip()
    from catalens.catalog.schema import ImageRecord, ProductImage

    with db.session() as s:
        record = None
        if len(text) >= 8 and all(c in "0123456789abcdef" for c in text.lower()):
            found = list(
                s.scalars(select(ImageRecord).where(ImageRecord.sha256.like(f"{text.lower()}%")).limit(2))
            )
            if len(found) == 1:
                record = found[0]
        if record is None:
            sha = s.scalar(
                select(ProductImage.image_sha256)
                .where(ProductImage.product_id == text)
                .order_by(ProductImage.position)
                .limit(1)
            )
            if sha is not None:
                record = s.scalar(select(ImageRecord).where(ImageRecord.sha256 == sha))
        if record is None:
            raise UnreadableError(text, "no such file, and no catalog image or product with this id")
        stored = Path(record.stored_path or record.source)
    if not stored.exists():
        raise UnreadableError(text, f"the catalog image's file {stored} no longer exists")
    return stored
