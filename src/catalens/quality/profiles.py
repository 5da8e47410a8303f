"""Policies as YAML profiles: which checks run and with which thresholds.

A profile file::

    name: my-shop
    description: what it is for
    extends: general          # optional: start from another profile's checks
    checks:
      blur: {warn: 0.5}       # parameters override the check's defaults
      text: {}                # run with defaults
      nsfw: null              # (with extends) drop a check inherited from the parent

Lookup of ``name``: a path to a .yaml/.yml file; else ``<home>/profiles/<name>.yaml``; else the
built-in profiles shipped in ``catalens/quality/profiles/``. Unknown top-level keys, unknown check
names and unknown check parameters are errors that name the file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalens.errors import ConfigError
from catalens.quality.registry import Check, get_check

BUILTIN_DIR = Path(__file__).with_name("profiles")
_TOP_KEYS = {"name", "description", "extends", "checks"}


@dataclass
class Profile:
    name: str
    description: str = ""
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: str | None = None

    def instantiate(self) -> list[Check]:
        """One configured :class:`Check` per entry (validates the parameters)."""
        return [get_check(name)(**params) for name, params in self.checks.items()]

    @property
    def needs_models(self) -> list[str]:
        return [n for n in self.checks if get_check(n).scope == "model"]


def builtin_profiles() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def _find(name: str, home: Path | None) -> Path:
    p = Path(name).expanduser()
    if p.suffix.lower() in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"profile file {p} does not exist")
        return p
    candidates = []
    if home is not None:
        candidates += [home / "profiles" / f"{name}.yaml", home / "profiles" / f"{name}.yml"]
    candidates.append(BUILTIN_DIR / f"{name}.yaml")
    for c in candidates:
        if c.is_file():
            return c
    user = (
        [q.stem for q in (home / "profiles").glob("*.y*ml")] if home and (home / "profiles").is_dir() else []
    )
    raise ConfigError(
        f"unknown profile {name!r}; built-in: {', '.join(builtin_profiles())}"
        + (f"; in {home / 'profiles'}: {', '.join(sorted(user))}" if user else "")
        + "; or give a path to a .yaml file"
    )


def load_profile(name: str = "general", home: Path | None = None, _seen: tuple[str, ...] = ()) -> Profile:
    """Load, merge (``extends``) and validate a profile."""
    import yaml

    path = _find(name, home)
    key = str(path.resolve())
    if key in _seen:
        raise ConfigError(f"profile {path}: 'extends' loops back to itself")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"profile {path}: cannot read YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"profile {path}: expected a mapping with 'checks', got {type(raw).__name__}")
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"profile {path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_TOP_KEYS))}"
        )
    checks_raw = raw.get("checks") or {}
    if not isinstance(checks_raw, dict):
        raise ConfigError(f"profile {path}: 'checks' must be a mapping of check name -> parameters")
    checks: dict[str, dict[str, Any]] = {}
    if raw.get("extends"):
        parent = load_profile(str(raw["extends"]), home, _seen + (key,))
        checks = {k: dict(v) for k, v in parent.checks.items()}
    for check, params in checks_raw.items():
        if params is None and check in checks and raw.get("extends"):
            del checks[check]
            continue
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ConfigError(
                f"profile {path}: parameters of check {check!r} must be a mapping, got {params!r}"
            )
        try:
            cls = get_check(str(check))
            merged = {**checks.get(check, {}), **params}
            cls(**merged)  # validates parameter names
        except ConfigError as exc:
            raise ConfigError(f"profile {path}: {exc}") from None
        checks[str(check)] = merged
    prof = Profile(
        name=str(raw.get("name") or path.stem),
        description=str(raw.get("description") or ""),
        checks=checks,
        path=str(path),
    )
    return prof
