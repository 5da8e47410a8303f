"""ASGI middleware: request body limits (413), request timeouts (504) and Prometheus metrics.

Timeouts answer the client; a worker thread already running a sync endpoint finishes in the
background (Python threads cannot be killed), so other requests keep being served.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

Scope = dict[str, Any]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "catalens_http_requests_total",
            "HTTP requests by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "catalens_http_request_duration_seconds",
            "HTTP request latency by method and route",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.in_flight = Gauge("catalens_http_in_flight", "requests being served", registry=self.registry)
        self.jobs = Counter(
            "catalens_jobs_total", "background jobs finished by kind and status", ["kind", "status"],
            registry=self.registry,
        )  # fmt: skip


async def _send_json(send: Any, status: int, code: str, message: str) -> None:
    body = json.dumps(
        {"error": {"status": status, "code": code, "message": message, "detail": None}}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


class ServiceMiddleware:
    """Body size limit, request timeout and metrics in one pass."""

    def __init__(
        self,
        app: Any,
        *,
        metrics: Metrics,
        timeout_s: float,
        max_body: int,
        max_upload_body: int,
        upload_prefixes: tuple[str, ...] = ("/api/v1/ingest",),
    ) -> None:
        self.app, self.metrics, self.timeout_s = app, metrics, timeout_s
        self.max_body, self.max_upload_body, self.upload_prefixes = max_body, max_upload_body, upload_prefixes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = self.max_upload_body if path.startswith(self.upload_prefixes) else self.max_body
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        started = {"sent": False, "status": 500}
        t0 = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            if declared is not None and declared.isdigit() and int(declared) > limit:
                started["status"] = 413
                await _send_json(send, 413, "too-large", f"request body is over the {limit}-byte limit")
                return
            received = 0
            over = {"limit": False}

            async def limited_receive() -> Any:
                nonlocal received
                msg = await receive()
                if msg.get("type") == "http.request":
                    received += len(msg.get("body", b""))
                    if received > limit:
                        over["limit"] = True
                        raise _BodyTooLarge()
                return msg

            async def tracking_send(msg: Any) -> None:
                if over["limit"]:  # the app answered a body cut short: answer 413 instead, once
                    if msg["type"] == "http.response.start" and not started["sent"]:
                        started["sent"], started["status"] = True, 413
                        await _send_json(
                            send, 413, "too-large", f"request body is over the {limit}-byte limit"
                        )
                    return
                if msg["type"] == "http.response.start":
                    started["sent"], started["status"] = True, msg["status"]
                await send(msg)

            try:
                async with asyncio.timeout(self.timeout_s):  # no extra task per request (wait_for makes one)
                    await self.app(scope, limited_receive, tracking_send)
            except TimeoutError:
                if not started["sent"]:
                    started["status"] = 504
                    await _send_json(
                        send, 504, "timeout", f"the request took longer than {self.timeout_s:g} s"
                    )
            except _BodyTooLarge:
                if not started["sent"]:
                    started["status"] = 413
                    await _send_json(send, 413, "too-large", f"request body is over the {limit}-byte limit")
        finally:
            self.metrics.in_flight.dec()
            route = scope.get("route")
            label = getattr(route, "path", None) or ("static" if path.startswith("/static") else "unmatched")
            method = scope.get("method", "")
            self.metrics.requests.labels(method, label, str(started["status"])).inc()
            self.metrics.latency.labels(method, label).observe(time.perf_counter() - t0)
