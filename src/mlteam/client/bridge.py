"""Run an async transport (httpx.ASGITransport) under the synchronous SDK.

The SDK is synchronous; for in-process use it drives the ASGI app on an event loop of its own
in a daemon thread, so tests of the API, the SDK and the CLI all run the same code, and a
client that is never closed does not keep the interpreter from exiting.
"""

from __future__ import annotations

import asyncio
import threading

import httpx


class SyncBridge(httpx.BaseTransport):
    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="mlteam-asgi-bridge", daemon=True
        )
        self._thread.start()

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

        resp, content = asyncio.run_coroutine_threadsafe(call(), self._loop).result()
        return httpx.Response(
            resp.status_code, headers=resp.headers, content=content, request=request
        )

    def close(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
