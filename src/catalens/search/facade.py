"""``Catalog`` methods for visual search, the vector index and duplicates (mixed into :class:`catalens.core.Catalog`).

Keep these thin: each method calls the functions of this package with the catalog's
database, settings and stored vectors.
"""

from __future__ import annotations


class SearchMixin:
    """Methods for visual search, the vector index and duplicates."""
