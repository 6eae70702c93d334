"""The service's body limit (413 before the app reads an oversized body) and its JSON
error answers, as ASGI pieces apart from the routes."""
from __future__ import annotations

import json

from starlette.responses import Response

MB = 1024 * 1024


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps({"error": " ".join(str(message).split())}).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


# -- request-size limit ------------------------------------------------------------------------
class BodyLimitMiddleware:
    """Pure ASGI: answers 413 for bodies above ``max_bytes`` before any handler reads them.

    A declared ``Content-Length`` above the limit is refused without buffering; the
    rest of the body (up to ``drain_bytes``) is read and dropped first so that the
    client, still sending, gets the answer instead of a reset connection. Chunked
    bodies are counted as they arrive and buffered only up to the limit.
    """

    def __init__(self, app, max_bytes: int, drain_bytes: int | None = None) -> None:  # noqa: ANN001
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = drain_bytes if drain_bytes is not None else max(4 * max_bytes, 64 * MB)

    def _too_large(self, size: str) -> Response:
        return error_response(413, f"request body of {size} exceeds the limit of {self.max_bytes} bytes "
                                   f"({self.max_bytes / MB:g} MB, --max-body-mb)", {"Connection": "close"})

    async def _drain(self, receive, already: int) -> None:  # noqa: ANN001
        total = already
        while total <= self.drain_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return
            total += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
                if length < 0:
                    raise ValueError
            except ValueError:
                await error_response(400, "malformed Content-Length header")(scope, receive, send)
                return
            if length > self.max_bytes:
                await self._drain(receive, 0)
                await self._too_large(f"{length} bytes")(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        # no Content-Length (chunked): buffer up to the limit, then replay
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body = message.get("body", b"")
            total += len(body)
            if total > self.max_bytes:
                if message.get("more_body", False):
                    await self._drain(receive, total)
                await self._too_large(f"more than {self.max_bytes} bytes")(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = [False]

        async def replay():  # noqa: ANN202
            if not replayed[0]:
                replayed[0] = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


# -- the application ---------------------------------------------------------------------------
