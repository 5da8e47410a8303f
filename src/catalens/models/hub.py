"""Offline-first access to hub weights (Hugging Face cache, torch hub cache).

catalens never downloads by default. Weights for ``timm:``, ``open_clip:`` and ``hf:`` models are
looked up in the local caches only; when they are missing a :class:`WeightsUnavailableError`
says how to supply them. Downloads happen only when ``CATALENS_ALLOW_DOWNLOAD=1`` is set and
``HF_HUB_OFFLINE`` is not.
"""

from __future__ import annotations

import os
from pathlib import Path

from catalens.errors import WeightsUnavailableError

ALLOW_DOWNLOAD_ENV = "CATALENS_ALLOW_DOWNLOAD"
_TRUE = {"1", "true", "yes", "on"}


def hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def allow_download() -> bool:
    """True when the user allowed network downloads and the HF hub is not forced offline."""
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").strip().lower() in _TRUE and not hf_offline()


def hf_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except Exception:  # pragma: no cover - huggingface_hub always ships with timm/transformers
        home = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
        return str(Path(home) / "hub")


def hf_cached_file(repo_id: str, filenames: list[str] | tuple[str, ...]) -> str | None:
    """Path of the first of ``filenames`` present in the local HF cache for ``repo_id`` (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    for filename in filenames:
        try:
            found = try_to_load_from_cache(repo_id=repo_id, filename=filename)
        except Exception:
            found = None
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def torch_hub_cached_file(url: str) -> str | None:
    """Path of a URL checkpoint in torch hub's cache (``$TORCH_HOME/hub/checkpoints``), if present."""
    if not url:
        return None
    try:
        import torch

        folder = Path(torch.hub.get_dir()) / "checkpoints"
    except Exception:  # pragma: no cover
        return None
    candidate = folder / os.path.basename(url.split("?")[0])
    return str(candidate) if candidate.is_file() else None


def unavailable(
    name: str,
    detail: str,
    *,
    repo: str | None = None,
    arch: str | None = None,
    local_hint: str | None = None,
) -> WeightsUnavailableError:
    """Build the error that tells the user exactly how to provide missing weights."""
    download = f"huggingface-cli download {repo}" if repo else "huggingface-cli download <repo>"
    if local_hint is None:
        file_hint = f"'file:/path/to/weights.pth?arch={arch or '<arch>'}'"
        local_hint = (
            f"{file_hint} for a checkpoint file, or 'hf:/path/to/local/dir' for a Hugging Face model folder"
        )
    msg = (
        f"weights for model {name!r} are not available offline ({detail}). To supply them, either: "
        f"(1) pass a local copy: {local_hint}; "
        f"(2) put them in the Hugging Face cache ({hf_cache_dir()}; set HF_HOME to use another "
        f"location): on a machine with network run `{download}` and copy the cache folder here; "
        f"(3) allow downloads: set {ALLOW_DOWNLOAD_ENV}=1 (and leave HF_HUB_OFFLINE unset) on a machine "
        f"with network access. The default model 'efficientnet-lite0' needs no download."
    )
    return WeightsUnavailableError(msg)
