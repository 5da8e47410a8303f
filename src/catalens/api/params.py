"""Unknown query parameters are an error, not silently ignored.

``reject_unknown_query`` is an app-wide dependency: the query parameters a request may carry are
the ones its route declares (its own and its dependencies', by name or alias), so ``?k=3`` on a
route whose parameter is ``limit`` is a 422 that lists the known ones (with "did you mean").
"""

from __future__ import annotations

import difflib
from typing import Any
from weakref import WeakKeyDictionary

from fastapi import Request

from catalens.api.errors import ApiError

_KNOWN: WeakKeyDictionary[Any, frozenset[str]] = WeakKeyDictionary()


def known_query_params(dependant: Any) -> frozenset[str]:
    """Names (aliases where set) of every query parameter ``dependant`` and its sub-dependencies declare."""
    names: set[str] = set()
    stack, seen = [dependant], set()
    while stack:
        dep = stack.pop()
        if dep is None or id(dep) in seen:
            continue
        seen.add(id(dep))
        names.update(getattr(p, "alias", None) or p.name for p in getattr(dep, "query_params", ()))
        stack.extend(getattr(dep, "dependencies", ()))
    return frozenset(names)


def _route_params(request: Request) -> frozenset[str] | None:
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if route is None or dependant is None:
        return None
    try:
        return _KNOWN[route]
    except (KeyError, TypeError):
        pass
    names = known_query_params(dependant)
    try:
        _KNOWN[route] = names
    except TypeError:  # not weak-referenceable: compute each time
        pass
    return names


def unknown_query_message(unknown: list[str], known: frozenset[str]) -> str:
    """``unknown query parameter 'k' (known: limit, offset); did you mean ...?``"""
    listed = ", ".join(sorted(known)) or "none"
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.5)
        if close:
            hints.append(f"{name!r} -> {close[0]!r}")
    plural = "s" if len(unknown) > 1 else ""
    msg = f"unknown query parameter{plural} {', '.join(repr(u) for u in unknown)} (known: {listed})"
    return msg + (f"; did you mean {', '.join(hints)}?" if hints else "")


async def reject_unknown_query(request: Request) -> None:
    """422 ``unknown-parameter`` when the request has a query parameter its route does not declare."""
    if not request.query_params:
        return
    known = _route_params(request)
    if known is None:
        return
    unknown = sorted({k for k in request.query_params if k not in known})
    if unknown:
        raise ApiError(422, "unknown-parameter", unknown_query_message(unknown, known))
