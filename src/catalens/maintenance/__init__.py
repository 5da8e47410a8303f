"""Keeping a catalog sound: ``catalens doctor`` (check and repair) and ``catalens backup`` / ``restore``."""
