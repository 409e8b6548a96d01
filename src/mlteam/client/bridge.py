"""Run an async transport (httpx.ASGITransport) under the synchronous SDK.

The SDK is synchronous; for in-process use it drives the ASGI app through an anyio blocking
portal, so tests of the API, the SDK and the CLI all run the same code.
"""

from __future__ import annotations

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal


class SyncBridge(httpx.BaseTransport):
    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport
        self._cm = start_blocking_portal()
        self._portal: BlockingPortal = self._cm.__enter__()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def call() -> tuple[httpx.Response, bytes]:
            body = request.read()
            areq = httpx.Request(
                request.method,
                request.url,
                headers=request.headers,
                content=body,
                extensions=request.extensions,
            )
            resp = await self._transport.handle_async_request(areq)
            content = await resp.aread()
            await resp.aclose()
            return resp, content

        resp, content = self._portal.call(call)
        return httpx.Response(
            resp.status_code, headers=resp.headers, content=content, request=request
        )

    def close(self) -> None:
        self._cm.__exit__(None, None, None)
