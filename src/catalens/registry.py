"""One registry shape for every pluggable part (after timm's ``models/_registry.py``).

A :class:`Registry` maps names to plugins of one kind (quality checks, recommenders, index backends,
classifier heads, explanation methods and layer adapters; image models keep their own spec registry
on top of one, for aliases and hub prefixes). Every registry:

* registers with :meth:`Registry.register` (or the :meth:`Registry.decorator` class decorator);
  registering another object under a taken name is an error unless ``overwrite=True``;
* loads its built-in plugins lazily on first read (``builtins``: a function that imports them);
* answers an unknown name with one error: ``unknown <kind> 'x'; known: a, b, c``;
* lists its names with :meth:`Registry.names` (registration order) - the ``list_*`` functions of
  each package are thin wrappers;
* reads as a ``Mapping`` (``name in reg``, ``reg[name]``, iteration), so a contract test can walk any
  of them the same way (``tests/test_registries.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from catalens.errors import CatalensError, ConfigError

T = TypeVar("T")
_MISSING: object = object()


class Registry(Mapping[str, T], Generic[T]):
    """Names -> plugins of one ``kind``; ``error`` is the exception type an unknown name raises."""

    def __init__(
        self,
        kind: str,
        *,
        error: type[CatalensError] = ConfigError,
        builtins: Callable[[], None] | None = None,
        extra_names: tuple[str, ...] = (),
    ) -> None:
        self.kind = kind
        self.error = error
        self._builtins = builtins
        self._loaded = builtins is None
        self._loading = threading.Lock()
        self._items: dict[str, T] = {}
        self.extra_names = extra_names  # names resolved outside the table (e.g. "lib:<method>"), for errors

    # ---- writing ------------------------------------------------------------------------------
    def register(self, name: str, obj: T, *, overwrite: bool = False, first: bool = False) -> T:
        """Make ``obj`` available as ``name``; ``first`` puts it ahead of the others in :meth:`names`
        (for registries read in order, such as layer adapters). Returns ``obj``."""
        if not isinstance(name, str) or not name or name != name.strip():
            raise self.error(f"invalid {self.kind} name {name!r}")
        old = self._items.get(name)
        if old is not None and old is not obj and old != obj and not overwrite:
            raise self.error(
                f"{self.kind} {name!r} is already registered (pass overwrite=True to replace it)"
            )
        if first:
            self._items = {name: obj, **{k: v for k, v in self._items.items() if k != name}}
        else:
            self._items[name] = obj
        return obj

    def decorator(self, name: str | None = None, *, attr: str = "name") -> Callable[[T], T]:
        """A class decorator registering the class under ``name`` (default: its ``attr`` attribute);
        the class's ``attr`` is set to the name."""

        def deco(obj: T) -> T:
            key = name if name is not None else getattr(obj, attr, None)
            if not key:
                raise self.error(f"a {self.kind} needs a name")
            self.register(str(key), obj)
            if name is not None:
                setattr(obj, attr, name)
            return obj

        return deco

    def unregister(self, name: str) -> None:
        """Forget ``name`` (unknown names are ignored)."""
        self._items.pop(name, None)

    # ---- reading ------------------------------------------------------------------------------
    def _load(self) -> None:
        if not self._loaded and self._builtins is not None:
            with self._loading:
                if not self._loaded:
                    self._loaded = True
                    self._builtins()

    def get(self, name: str, default: object = _MISSING) -> T:
        """The plugin called ``name``. If there is none: ``default`` when given, else the registry's
        ``error`` naming every known one."""
        self._load()
        try:
            return self._items[name]
        except (KeyError, TypeError):
            if default is not _MISSING:
                return default  # type: ignore[return-value]
            raise self.error(self.unknown_message(name)) from None

    def unknown_message(self, name: object) -> str:
        return f"unknown {self.kind} {name!r}; known: {', '.join([*self.names(), *self.extra_names])}"

    def names(self) -> list[str]:
        """Registered names in registration order."""
        self._load()
        return list(self._items)

    def __getitem__(self, name: str) -> T:  # Mapping semantics: KeyError
        self._load()
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} entries)"
