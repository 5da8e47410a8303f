"""Milvus backend through pymilvus: Milvus Lite (a local ``.db`` file) or a Milvus server/cluster.

``milvus://data/index.db`` opens Milvus Lite on that file; ``milvus://host:19530`` or
``http(s)://host:port`` connects to a server (token from ``CATALENS_MILVUS_TOKEN`` if set), and
``milvus://host:19530/shop`` uses the server's database ``shop`` (created when missing), so that
several catalogs share one server.
Install with ``pip install 'catalens[milvus]'`` (pymilvus + milvus-lite).

Every call to the server has a deadline (``CATALENS_MILVUS_TIMEOUT`` seconds, default 10): a
server that is down, unreachable or does not answer in time raises
:class:`~catalens.errors.IndexUnavailableError` naming the URI, never a long hang. Collections are
created with ``Strong`` consistency; the manifest and the first count are read ``Strong`` (every
process's writes up to the open), later reads ``Session`` (every write of this client, at once):
a Strong read waits for the server's time tick, about 200 ms on Milvus 2.3 standalone, a Session
read about 2 ms. (A server's default, ``Bounded``, may miss a write that just returned.)

One collection per index name holds ``id`` (INT64 primary key), ``vector`` (FLOAT_VECTOR, IP
metric) and ``meta`` (JSON). A second small collection ``<name>__state`` keeps the manifest
(what the index was built from) next to the data, so a server-side index and its manifest
agree. Upserts are idempotent by primary key, so replaying a batch after a crash is harmless.
Metadata filters that provide ``to_milvus(field)`` (catalens ``--where`` filters do) run inside
Milvus; id lists become ``id in [...]``; other predicates are evaluated on fetched metadata.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from catalens.errors import CatalensError, ConfigError, IndexCorruptError, IndexUnavailableError
from catalens.index.base import IndexFilter, Metadata, SearchHits

_BATCH = 2000
_STRONG = "Strong"  # waits for the server's time tick: ~200 ms a read on Milvus 2.3 standalone
_SESSION = "Session"  # sees every write of this client at once: ~2 ms a read
_DEFAULT_TIMEOUT_S = 10.0
# pymilvus error texts (any version) that mean the server is not there or did not answer in time
_UNREACHABLE = re.compile(
    r"unavailable|fail(ed)? connecting|connection refused|deadline|timed? ?out|"
    r"connect(ion)? (is )?(closed|reset|failed)|not ready|socket closed",
    re.I,
)


def milvus_timeout() -> float:
    """Seconds each call to a Milvus server may take (``CATALENS_MILVUS_TIMEOUT``, default 10)."""
    raw = os.environ.get("CATALENS_MILVUS_TIMEOUT", "")
    try:
        value = float(raw) if raw else _DEFAULT_TIMEOUT_S
    except ValueError as exc:
        raise ConfigError(f"CATALENS_MILVUS_TIMEOUT: cannot read {raw!r} as seconds") from exc
    if value <= 0:
        raise ConfigError("CATALENS_MILVUS_TIMEOUT must be positive")
    return value


def unreachable_message(uri: str, timeout: float, detail: str) -> str:
    detail = " ".join(detail.split())
    return f"Milvus at {uri} is unreachable (nothing answers there within {timeout:g} s; {detail[:300]})"


def _quiet_pymilvus() -> None:
    """pymilvus logs each failed call with its traceback on stderr; catalens reports those
    failures itself (as one typed error), so its loggers only show critical messages."""
    if os.environ.get("CATALENS_MILVUS_DEBUG"):
        return
    for name in ("pymilvus", "pymilvus.milvus_client"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _unreachable(exc: BaseException) -> bool:
    code = getattr(exc, "code", None)
    if callable(code):  # a grpc.RpcError: code() is a StatusCode
        code = getattr(code(), "name", code)
    if code in (2, "UNAVAILABLE", "DEADLINE_EXCEEDED"):  # pymilvus 2 = cannot connect
        return True
    return bool(_UNREACHABLE.search(f"{type(exc).__name__} {exc}"))


class _Guarded:
    """The pymilvus client with a deadline on every call and its connection failures reported
    as :class:`IndexUnavailableError` naming the URI (other errors pass through unchanged)."""

    def __init__(self, client: Any, uri: str, timeout: float) -> None:
        self._client, self._uri, self._timeout = client, uri, timeout

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self._client, name)
        if not callable(fn) or name == "close":
            return fn
        uri, timeout = self._uri, self._timeout

        def call(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", timeout)
            try:
                return fn(*args, **kwargs)
            except CatalensError:
                raise
            except Exception as exc:  # pymilvus and grpc raise many types
                if _unreachable(exc):
                    raise IndexUnavailableError(unreachable_message(uri, timeout, f"{name}: {exc}")) from exc
                raise

        return call


def collection_name(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_]+", "_", name)
    if not safe or not (safe[0].isalpha() or safe[0] == "_"):
        safe = "c_" + safe
    return safe[:200]


class MilvusIndex:
    """A :class:`~catalens.index.base.VectorIndex` stored in a Milvus collection."""

    backend = "milvus"

    def __init__(self, location: str, dim: int, *, name: str = "catalens", index_type: str = "AUTOINDEX"):
        try:
            from pymilvus import DataType, MilvusClient
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigError(
                "the milvus index needs pymilvus: pip install 'catalens[milvus]' (pymilvus, milvus-lite)"
            ) from exc
        self.dim = int(dim)
        self.name = name
        self.collection = collection_name(name)
        self.state_collection = self.collection + "__state"
        self.location = location
        self.uri, self.database = self._uri(location)
        # the URI as the user wrote it (errors name it): milvus://host:port, http(s)://..., a file
        self.shown_uri = location if "://" in location else f"milvus://{location}"
        _quiet_pymilvus()
        token = os.environ.get("CATALENS_MILVUS_TOKEN", "")
        self.timeout = milvus_timeout()
        auth = {"token": token} if token else {}
        try:
            client = MilvusClient(uri=self.uri, timeout=self.timeout, **auth)
            if self.database:
                self._ensure_database(_Guarded(client, self.shown_uri, self.timeout))
                client = MilvusClient(uri=self.uri, timeout=self.timeout, db_name=self.database, **auth)
        except CatalensError:
            raise
        except Exception as exc:  # pymilvus raises many types; report them uniformly
            if self.is_server and _unreachable(exc):
                raise IndexUnavailableError(
                    unreachable_message(self.shown_uri, self.timeout, str(exc))
                ) from exc
            raise ConfigError(f"cannot open Milvus at {self.uri!r}: {exc}") from exc
        self._client = _Guarded(client, self.shown_uri, self.timeout)
        self._dt = DataType
        self.index_type = index_type
        self.kind = f"milvus-{index_type.lower()}"
        self._counted = False
        self._ensure()
        self.manifest: dict[str, Any] = self._read_state()

    @classmethod
    def open(cls, location: str, *, dim: int, name: str = "catalens", **options: Any) -> MilvusIndex:
        return cls(location, dim, name=name, **options)

    @property
    def is_server(self) -> bool:
        """A Milvus server (``http(s)://``), not a Milvus Lite file."""
        return self.uri.startswith(("http://", "https://", "tcp://"))

    @staticmethod
    def _uri(location: str) -> tuple[str, str]:
        """(pymilvus URI, database name or "") of a location: ``host:port[/database]``,
        ``http(s)://host:port[/database]`` (a server; pymilvus reads the database from the path)
        or a Milvus Lite file path."""
        if location.startswith(("http://", "https://", "tcp://")):
            return location, ""
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+:\d+)(?:/([A-Za-z_][A-Za-z0-9_]*))?/?", location)
        if m:
            return f"http://{m.group(1)}", m.group(2) or ""
        path = Path(location).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return str(path.resolve()), ""

    def _ensure_database(self, client: Any) -> None:
        """Create the server database named in the URI (``milvus://host:port/<database>``) if missing:
        several catalogs share one server, each in a database of its own."""
        if self.database not in client.list_databases():
            try:
                client.create_database(self.database)
            except IndexUnavailableError:
                raise
            except Exception:  # created meanwhile by another process
                if self.database not in client.list_databases():
                    raise

    def _ensure(self) -> None:
        c, dt = self._client, self._dt
        if c.has_collection(self.collection):
            desc = c.describe_collection(self.collection)
            for f in desc.get("fields", []):
                if f.get("name") == "vector":
                    have = int(f.get("params", {}).get("dim", self.dim))
                    if have != self.dim:
                        raise IndexCorruptError(
                            f"Milvus collection {self.collection!r} has dim {have}, expected {self.dim}"
                        )
        else:
            schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", dt.INT64, is_primary=True)
            schema.add_field("vector", dt.FLOAT_VECTOR, dim=self.dim)
            schema.add_field("meta", dt.JSON)
            ip = c.prepare_index_params()
            ip.add_index(field_name="vector", index_type=self.index_type, metric_type="IP")
            c.create_collection(self.collection, schema=schema, index_params=ip, consistency_level=_STRONG)
        if not c.has_collection(self.state_collection):
            schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", dt.INT64, is_primary=True)
            schema.add_field("vector", dt.FLOAT_VECTOR, dim=2)
            schema.add_field("meta", dt.JSON)
            ip = c.prepare_index_params()
            ip.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="L2")
            c.create_collection(
                self.state_collection, schema=schema, index_params=ip, consistency_level=_STRONG
            )

    def _read_state(self) -> dict[str, Any]:
        rows = self._client.query(
            self.state_collection, filter="id == 0", output_fields=["meta"], consistency_level=_STRONG
        )
        return dict(rows[0]["meta"]) if rows else {}

    # ---- protocol ------------------------------------------------------------------------------
    def upsert(
        self,
        ids: Sequence[int] | np.ndarray,
        vectors: np.ndarray,
        metadata: Sequence[Metadata] | None = None,
    ) -> None:
        ext = np.asarray(ids, dtype=np.int64).reshape(-1)
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape != (len(ext), self.dim):
            raise ConfigError(f"upsert expects ({len(ext)}, {self.dim}) vectors, got {vecs.shape}")
        if metadata is not None and len(metadata) != len(ext):
            raise ConfigError("upsert: metadata must have one entry per id")
        for s in range(0, len(ext), _BATCH):
            rows = [
                {
                    "id": int(ext[i]),
                    "vector": vecs[i].tolist(),
                    "meta": dict(metadata[i]) if metadata is not None and metadata[i] else {},
                }
                for i in range(s, min(s + _BATCH, len(ext)))
            ]
            self._client.upsert(self.collection, rows)

    def delete(self, ids: Sequence[int] | np.ndarray) -> int:
        ext = [int(i) for i in np.asarray(ids, dtype=np.int64).reshape(-1)]
        if not ext:
            return 0
        present = self._client.get(self.collection, ids=ext, output_fields=["id"], consistency_level=_SESSION)
        self._client.delete(self.collection, ids=ext)
        return len(present)

    def count(self) -> int:
        level = _SESSION if self._counted else _STRONG  # the first count sees every process's writes
        rows = self._client.query(
            self.collection, filter="", output_fields=["count(*)"], consistency_level=level
        )
        self._counted = True
        return int(rows[0]["count(*)"]) if rows else 0

    def ids(self) -> np.ndarray:
        out: list[int] = []
        it = self._client.query_iterator(
            self.collection,
            batch_size=1000,
            filter="id >= 0",
            output_fields=["id"],
            consistency_level=_SESSION,
        )
        while True:
            batch = it.next()
            if not batch:
                it.close()
                break
            out.extend(int(r["id"]) for r in batch)
        return np.array(sorted(out), dtype=np.int64)

    def get_metadata(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        want = [int(i) for i in ids]
        rows = (
            self._client.get(
                self.collection, ids=want, output_fields=["id", "meta"], consistency_level=_SESSION
            )
            if want
            else []
        )
        by_id = {int(r["id"]): dict(r.get("meta") or {}) for r in rows}
        return [by_id.get(i, {}) for i in want]

    def get_vectors(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        want = [int(i) for i in np.asarray(ids).reshape(-1)]
        rows = self._client.get(
            self.collection, ids=want, output_fields=["id", "vector"], consistency_level=_SESSION
        )
        by_id = {int(r["id"]): r["vector"] for r in rows}
        missing = [i for i in want if i not in by_id]
        if missing:
            raise KeyError(missing[:5])
        return np.asarray([by_id[i] for i in want], dtype=np.float32).reshape(len(want), self.dim)

    def _expr(self, filt: IndexFilter) -> str:
        if filt is None:
            return ""
        if isinstance(filt, np.ndarray | list | tuple | set | frozenset):
            ids = sorted({int(i) for i in np.asarray(list(filt)).reshape(-1)})
            return f"id in [{','.join(map(str, ids))}]" if ids else "id < -9223372036854775807"
        to_milvus = getattr(filt, "to_milvus", None)
        if callable(to_milvus):
            return str(to_milvus("meta"))
        pred: Callable[[Mapping[str, Any]], bool] = getattr(filt, "matches", filt)  # type: ignore[assignment]
        ids = self.ids()
        metas = self.get_metadata(ids.tolist())
        return self._expr([int(i) for i, m in zip(ids, metas, strict=True) if pred(m)])

    def search(self, queries: np.ndarray, k: int, filter: IndexFilter = None) -> SearchHits:
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if q.shape[1] != self.dim:
            raise ConfigError(f"query has dimension {q.shape[1]}, the index has {self.dim}")
        if k < 1:
            raise ConfigError("k must be at least 1")
        expr = self._expr(filter)
        res = self._client.search(
            self.collection,
            data=q.tolist(),
            limit=int(k),
            filter=expr,
            output_fields=["id"],
            search_params={"metric_type": "IP"},
            consistency_level=_SESSION,
        )
        ids = np.full((len(q), k), -1, dtype=np.int64)
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        for i, hits in enumerate(res):
            for j, h in enumerate(list(hits)[:k]):
                ids[i, j] = int(h["id"])
                scores[i, j] = float(h["distance"])
        return SearchHits(ids, scores)

    def save(self) -> None:
        self._client.upsert(
            self.state_collection,
            [{"id": 0, "vector": [0.0, 0.0], "meta": json.loads(json.dumps(self.manifest))}],
        )
        self._client.flush(self.collection)
        self._client.flush(self.state_collection)

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "uri": self.uri,
            "collection": self.collection,
            "kind": self.kind,
            "count": self.count(),
            "params": {"index_type": self.index_type, "metric": "IP"},
        }

    def drop(self) -> None:
        """Remove the collection and its state (used before a rebuild)."""
        for name in (self.collection, self.state_collection):
            if self._client.has_collection(name):
                self._client.drop_collection(name)
        self.manifest = {}
        self._ensure()

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # pragma: no cover
            pass
