"""REST API over :class:`catalens.Catalog` (FastAPI): ``create_app`` builds the app, ``catalens serve`` runs it."""

from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any) -> Any:
    """Build the FastAPI app (see :func:`catalens.api.app.create_app`)."""
    from catalens.api.app import create_app as _create

    return _create(*args, **kwargs)


__all__ = ["create_app"]
