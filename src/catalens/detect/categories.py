"""The detector's coarse product categories and the mapping from catalog labels onto them.

The categories and rules live in ``detect/data/categories.yaml`` (with a note on where they came
from); a label that maps onto no category gives ``None`` and the product is not used for training.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any


@lru_cache(maxsize=1)
def _rules() -> dict[str, Any]:
    import yaml

    text = (resources.files("catalens.detect") / "data" / "categories.yaml").read_text()
    data = yaml.safe_load(text)
    return {
        "categories": list(data["categories"]),
        **{
            k: {str(a).lower(): str(b) for a, b in data[k].items()}
            for k in ("article_type", "sub_category", "garment_class")
        },
    }


def categories() -> list[str]:
    """The coarse categories, in the detector's output order."""
    return list(_rules()["categories"])


def category_of(*, article_type: str | None = None, sub_category: str | None = None) -> str | None:
    """The coarse category of a catalog product (article type first, then sub-category)."""
    rules = _rules()
    for key, value in (("article_type", article_type), ("sub_category", sub_category)):
        if value:
            got = rules[key].get(str(value).strip().lower())
            if got:
                return got
    return None


def garment_category(label: str) -> str | None:
    """The coarse category of a user-photo garment class ("t-shirt", "pants", ...)."""
    return _rules()["garment_class"].get(label.strip().lower())
