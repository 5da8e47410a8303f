"""catalens: understand e-commerce product photos offline.

The public entry point is :class:`catalens.Catalog`; heavy modules load lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from catalens.core import Catalog

__all__ = ["Catalog", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Catalog":
        from catalens.core import Catalog

        return Catalog
    raise AttributeError(name)
