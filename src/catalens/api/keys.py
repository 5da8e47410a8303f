"""API keys: ``clk_<prefix>_<secret>``; stored as (prefix, sha256(key), role). Roles: read < write < admin.

A key carries 256 random bits, so a plain SHA-256 is a safe verifier (no slow hash needed); the
prefix finds the row and the digest comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from catalens.api.tables import ApiKeyRecord
from catalens.catalog.db import CatalogDB
from catalens.catalog.schema import utcnow
from catalens.errors import ConfigError, NotFoundError

ROLES = ("read", "write", "admin")
KEY_PREFIX = "clk_"


def role_allows(role: str, needed: str) -> bool:
    """True when ``role`` is at least ``needed`` (read < write < admin)."""
    return ROLES.index(role) >= ROLES.index(needed)


@dataclass
class KeyInfo:
    id: int
    prefix: str
    role: str
    name: str | None
    created_at: datetime
    revoked: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "prefix": self.prefix,
            "role": self.role,
            "name": self.name,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "revoked": self.revoked,
        }


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _info(rec: ApiKeyRecord) -> KeyInfo:
    return KeyInfo(rec.id, rec.prefix, rec.role, rec.name, rec.created_at, rec.revoked_at is not None)


def create_key(db: CatalogDB, role: str, name: str | None = None) -> tuple[str, KeyInfo]:
    """Create a key; returns (the key, shown only now; its record)."""
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    with db.session() as s:
        rec = ApiKeyRecord(prefix=prefix, key_sha256=_digest(key), role=role, name=name)
        s.add(rec)
        s.flush()
        return key, _info(rec)


def verify_key(db: CatalogDB, key: str) -> KeyInfo | None:
    """The key's record when ``key`` is valid and not revoked, else None."""
    parts = key.split("_")
    if len(parts) < 3 or not key.startswith(KEY_PREFIX):
        return None
    prefix = parts[1]
    with db.session() as s:
        rec = s.scalar(select(ApiKeyRecord).where(ApiKeyRecord.prefix == prefix))
        if rec is None or rec.revoked_at is not None:
            return None
        if not hmac.compare_digest(rec.key_sha256, _digest(key)):
            return None
        return _info(rec)


def list_keys(db: CatalogDB) -> list[KeyInfo]:
    with db.session() as s:
        return [_info(r) for r in s.scalars(select(ApiKeyRecord).order_by(ApiKeyRecord.id))]


def revoke_key(db: CatalogDB, key_id_or_prefix: str) -> KeyInfo:
    """Revoke by numeric id or prefix."""
    with db.session() as s:
        rec = s.scalar(select(ApiKeyRecord).where(ApiKeyRecord.prefix == key_id_or_prefix))
        if rec is None and key_id_or_prefix.isdigit():
            rec = s.get(ApiKeyRecord, int(key_id_or_prefix))
        if rec is None:
            raise NotFoundError(f"no API key {key_id_or_prefix!r}")
        if rec.revoked_at is None:
            rec.revoked_at = utcnow()
        return _info(rec)
