"""Settings: environment ``CATALENS_*`` > ``catalens.toml`` in the home > defaults.

| setting | env | default |
|---|---|---|
| home | CATALENS_HOME | ./catalens-home |
| db_url | CATALENS_DB_URL | sqlite:///<home>/catalog.db |
| index_uri | CATALENS_INDEX | faiss (under <home>/index) |
| vector_store | CATALENS_VECTOR_STORE | auto: `file` (under <home>/vectors) with SQLite, `db` with a database server |
| default_model | CATALENS_MODEL | efficientnet-lite0 |
| device | CATALENS_DEVICE | auto (cuda when available, else cpu); also cpu-torch, openvino |
| max_pixels | CATALENS_MAX_PIXELS | 89,478,485 (Pillow's bomb limit) |
| max_file_bytes | CATALENS_MAX_FILE_BYTES | 50 MiB |
| cache_dir | CATALENS_CACHE_DIR | ~/.cache/catalens (ONNX exports) |
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from catalens.errors import ConfigError

DEFAULT_MODEL = "efficientnet-lite0"
DEFAULT_MAX_PIXELS = 89_478_485
DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: Path("catalens-home"))
    db_url: str | None = None
    index_uri: str = "faiss"
    # where vectors live: "file" (one home's vector files), "db" (the catalog database, shared by
    # every process and machine that reaches it) or "auto" (file with SQLite, db otherwise)
    vector_store: str = "auto"
    default_model: str = DEFAULT_MODEL
    device: str = "auto"
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_side: int = 50_000
    fetch_timeout_s: float = 20.0
    allow_private_urls: bool = False
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "catalens")
    batch_size: int = 32
    workers: int = 2
    # nice increment of the decode/preprocess threads while embedding, so that inference runs
    # first (0 = same priority); see ingest/prefetch.py
    prefetch_nice: int = 3

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{(self.home / 'catalog.db').resolve()}"

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


_ENV = {
    "home": "CATALENS_HOME",
    "db_url": "CATALENS_DB_URL",
    "index_uri": "CATALENS_INDEX",
    "vector_store": "CATALENS_VECTOR_STORE",
    "default_model": "CATALENS_MODEL",
    "device": "CATALENS_DEVICE",
    "max_pixels": "CATALENS_MAX_PIXELS",
    "max_file_bytes": "CATALENS_MAX_FILE_BYTES",
    "cache_dir": "CATALENS_CACHE_DIR",
    "allow_private_urls": "CATALENS_ALLOW_PRIVATE_URLS",
}


def _coerce(name: str, raw: Any) -> Any:
    kinds = {f.name: f.type for f in fields(Settings)}
    kind = str(kinds[name])
    try:
        if "Path" in kind:
            return Path(str(raw)).expanduser()
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return raw if isinstance(raw, bool) else str(raw).lower() in {"1", "true", "yes", "on"}
        return str(raw)
    except ValueError as exc:
        raise ConfigError(f"setting {name!r}: cannot read {raw!r} ({exc})") from exc


def load_settings(home: str | Path | None = None, **overrides: Any) -> Settings:
    """Resolve settings; explicit arguments win over env, env over catalens.toml."""
    values: dict[str, Any] = {}
    home_path = Path(home) if home is not None else Path(os.environ.get("CATALENS_HOME", "catalens-home"))
    toml_path = home_path / "catalens.toml"
    if toml_path.exists():
        try:
            data = tomllib.loads(toml_path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{toml_path}: {exc}") from exc
        known = {f.name for f in fields(Settings)}
        for key, raw in data.items():
            if key not in known:
                raise ConfigError(f"{toml_path}: unknown setting {key!r}; known: {', '.join(sorted(known))}")
            values[key] = _coerce(key, raw)
    for name, env in _ENV.items():
        if env in os.environ and os.environ[env] != "":
            values[name] = _coerce(name, os.environ[env])
    values["home"] = home_path
    for key, raw in overrides.items():
        if raw is not None:
            values[key] = _coerce(key, raw) if not isinstance(raw, Path) else raw
    return Settings(**values)
