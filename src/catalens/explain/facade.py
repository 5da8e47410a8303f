"""``Catalog`` methods for heatmaps and explanations (mixed into :class:`catalens.core.Catalog`).

Keep these thin: each method calls the functions of this package with the catalog's
database, settings and stored vectors.
"""

from __future__ import annotations


class ExplainMixin:
    """Methods for heatmaps and explanations."""
