"""``Catalog`` methods for classification, tagging, colour, brand, evaluation (mixed into :class:`catalens.core.Catalog`).

Keep these thin: each method calls the functions of this package with the catalog's
database, settings and stored vectors.
"""

from __future__ import annotations


class ClassifyMixin:
    """Methods for classification, tagging, colour, brand, evaluation."""
