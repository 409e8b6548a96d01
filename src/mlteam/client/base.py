"""The SDK's plumbing: one httpx client, errors rebuilt as the server's own classes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, BinaryIO, Self

import httpx

from mlteam.client.bridge import SyncBridge
from mlteam.core.errors import from_payload


class Base:
    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        timeout: float = 60.0,
    ) -> None:
        if isinstance(transport, httpx.AsyncBaseTransport):
            transport = SyncBridge(transport)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url + "/api/v1", headers=headers, transport=transport, timeout=timeout
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self._http.request(method, path, **kwargs)
        if resp.status_code >= 400:
            try:
                payload = resp.json()
            except ValueError:
                payload = resp.text
            raise from_payload(resp.status_code, payload)
        if resp.status_code == 204 or not resp.content:
            return None
        if resp.headers.get("content-type", "").startswith("application/json"):
            return resp.json()
        return resp.content


def chunks(fh: BinaryIO, size: int = 1 << 20) -> Iterable[bytes]:
    while block := fh.read(size):
        yield block
