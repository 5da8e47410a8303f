"""What every ``Catalog`` mixin may use from the catalog: a typed declaration, so a newcomer sees the
dependencies of a task's catalog methods and the type checker checks them (issue 19).

The mixins (``catalog/products.py``, ``<task>/catalog_methods.py``) subclass the :class:`CatalogParts` protocol; at run time
it declares nothing, and ``catalens.core.Catalog`` provides each attribute:

* ``settings`` - :class:`catalens.config.Settings` (home, limits, default model, workers);
* ``db`` - :class:`catalens.catalog.db.CatalogDB` (SQLAlchemy sessions and the queries jobs need);
* ``encoder(model, device)`` - the loaded image encoder of a model (``catalens.models``);
* ``vectors(model)`` - stored image hashes and embeddings of a model (embed once, use everywhere).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from catalens.catalog.db import CatalogDB
    from catalens.config import Settings
    from catalens.models.runtime import ImageEncoder


class CatalogParts(Protocol):
    """The catalog's shared parts, declared for the mixins and the task functions (provided by
    ``catalens.core.Catalog``). A ``Protocol``: the mixins subclass it, and any object with these
    parts (a test's stand-in, a future catalog) is accepted where a task function asks for one."""

    settings: Settings
    db: CatalogDB

    if TYPE_CHECKING:

        def encoder(self, model: str | None = None, device: str | None = None) -> ImageEncoder: ...

        def vectors(self, model: str | None = None) -> tuple[list[str], np.ndarray]: ...
