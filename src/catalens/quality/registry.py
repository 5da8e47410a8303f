"""The registry of quality checks: ``@register_check("blur")`` on a :class:`Check` subclass.

A check declares its default parameters (thresholds) in ``params``; a profile may override any of
them and nothing else. ``scope`` says what the check needs:

* ``"pixels"``  - runs on the shared :class:`~catalens.quality.context.QCImage` working copy;
* ``"model"``   - like pixels but loads a model (OCR, NSFW): only run when a profile asks for it;
* ``"file"``    - looks at the file (bytes, header) and its decoding errors;
* ``"batch"``   - compares images with each other (duplicates); runs after all images.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from catalens.errors import ConfigError
from catalens.registry import Registry

if TYPE_CHECKING:
    from catalens.quality.context import QCImage
    from catalens.quality.result import CheckResult

Scope = Literal["pixels", "model", "file", "batch"]


class Check:
    """Base class of a check. Subclasses set ``name``, ``unit``, ``params``, ``scope`` and implement
    :meth:`run` (or :meth:`run_batch` for ``scope == "batch"``)."""

    name: ClassVar[str] = ""
    unit: ClassVar[str] = ""
    scope: ClassVar[Scope] = "pixels"
    description: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = {}
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}  # parameters that take one of a few names
    higher_is_worse: ClassVar[bool] = True  # how to sort scores in reports (worst first)

    def __init__(self, **overrides: Any) -> None:
        unknown = sorted(set(overrides) - set(self.params))
        if unknown:
            raise ConfigError(
                f"check {self.name!r}: unknown parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(self.params)) or '(none)'}"
            )
        self.p: dict[str, Any] = {**self.params, **overrides}
        for param, known in self.choices.items():
            if self.p[param] not in known:
                raise ConfigError(
                    f"check {self.name!r}: {param} must be one of {', '.join(known)}, got {self.p[param]!r}"
                )

    def run(self, img: QCImage) -> CheckResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def setup(self) -> None:
        """Load models etc. once before a run (called in the main thread)."""


def _load_builtin() -> None:
    import catalens.quality.checks  # noqa: F401  (registers the built-in checks)


CHECKS: Registry[type[Check]] = Registry("check", builtins=_load_builtin)


def register_check(name: str) -> Callable[[type[Check]], type[Check]]:
    """Class decorator that registers a :class:`Check` under ``name``."""
    return CHECKS.decorator(name)


def get_check(name: str) -> type[Check]:
    return CHECKS.get(name)


def list_checks() -> dict[str, type[Check]]:
    return dict(sorted(CHECKS.items()))
