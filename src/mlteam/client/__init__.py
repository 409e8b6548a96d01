"""The Python SDK: `mlteam.Client(url, token)` over the REST API.

Every method maps to one endpoint and raises the server's own error classes
(`mlteam.NotFound`, `mlteam.Forbidden`, ...). Pass `transport=httpx.ASGITransport(app)` to run
against an app in-process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from mlteam.client.bridge import SyncBridge
from mlteam.core.errors import MlteamError, from_payload

__all__ = ["Client"]


class Client:
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

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
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

    # -- core ---------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def me(self) -> dict[str, Any]:
        return self._call("GET", "/me")

    def create_user(self, email: str, name: str = "", admin: bool = False) -> dict[str, Any]:
        """Admins only. Returns `{"user", "token"}`; the token is shown this once."""
        return self._call("POST", "/users", json={"email": email, "name": name, "admin": admin})

    def list_users(self) -> list[dict[str, Any]]:
        return self._call("GET", "/users")

    def create_token(self, name: str = "") -> dict[str, Any]:
        return self._call("POST", "/tokens", json={"name": name})

    def list_tokens(self) -> list[dict[str, Any]]:
        return self._call("GET", "/tokens")

    def revoke_token(self, token_id: str) -> None:
        self._call("DELETE", f"/tokens/{token_id}")

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/jobs/{job_id}")

    def job_log(self, job_id: str) -> str:
        return self._call("GET", f"/jobs/{job_id}/log")["log"]

    def jobs(self, project: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/projects/{project}/jobs")

    def wait(
        self,
        job_id: str,
        timeout: float = 600.0,
        poll: float = 0.5,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll a job until it ends; raise `MlteamError` if it failed."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if on_progress:
                on_progress(job)
            if job["state"] in ("succeeded", "failed", "cancelled"):
                if job["state"] != "succeeded":
                    raise MlteamError(f"job {job_id} {job['state']}: {job['error']}", job)
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {timeout}s")
            time.sleep(poll)

    # -- projects -------------------------------------------------------------------------

    def create_project(self, slug: str, **fields: Any) -> dict[str, Any]:
        return self._call("POST", "/projects", json={"slug": slug, **fields})

    def projects(self) -> list[dict[str, Any]]:
        return self._call("GET", "/projects")

    def project(self, slug: str) -> dict[str, Any]:
        return self._call("GET", f"/projects/{slug}")

    def update_project(self, slug: str, **fields: Any) -> dict[str, Any]:
        return self._call("PATCH", f"/projects/{slug}", json=fields)

    def members(self, slug: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/projects/{slug}/members")

    def add_member(self, slug: str, email: str, role: str) -> list[dict[str, Any]]:
        return self._call("POST", f"/projects/{slug}/members", json={"email": email, "role": role})

    def remove_member(self, slug: str, email: str, role: str) -> None:
        self._call("DELETE", f"/projects/{slug}/members/{email}/{role}")

    def create_request(self, slug: str, title: str, **fields: Any) -> dict[str, Any]:
        return self._call("POST", f"/projects/{slug}/requests", json={"title": title, **fields})

    def requests(self, slug: str, state: str | None = None) -> list[dict[str, Any]]:
        params = {"state": state} if state else None
        return self._call("GET", f"/projects/{slug}/requests", params=params)

    def triage_request(self, slug: str, number: int, **fields: Any) -> dict[str, Any]:
        return self._call("PATCH", f"/projects/{slug}/requests/{number}", json=fields)

    def audit(self, slug: str, action: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if action:
            params["action"] = action
        return self._call("GET", f"/projects/{slug}/audit", params=params)

    # -- data -------------------------------------------------------------------------------

    def upload(
        self,
        slug: str,
        dataset: str,
        file: str | os.PathLike[str] | BinaryIO,
        format: str | None = None,
    ) -> dict[str, Any]:
        """Upload a CSV or Parquet file as a new dataset version (streamed)."""
        if isinstance(file, str | os.PathLike):
            path = Path(file)
            with path.open("rb") as fh:
                return self.upload(slug, dataset, fh, format or _format_of(path.name))
        params = {"format": format} if format else {}
        name = getattr(file, "name", None)
        if isinstance(name, str):
            params["filename"] = Path(name).name
        return self._call(
            "POST",
            f"/projects/{slug}/datasets/{dataset}/versions",
            content=_chunks(file),
            params=params,
        )

    def datasets(self, slug: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/projects/{slug}/datasets")

    def dataset_versions(self, slug: str, dataset: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/projects/{slug}/datasets/{dataset}/versions")

    def dataset_version(
        self, slug: str, dataset: str, version: int | str = "latest"
    ) -> dict[str, Any]:
        return self._call("GET", f"/projects/{slug}/datasets/{dataset}/versions/{version}")

    def download(
        self,
        slug: str,
        dataset: str,
        version: int | str,
        dest: str | os.PathLike[str],
        format: str = "parquet",
    ) -> Path:
        url = f"/projects/{slug}/datasets/{dataset}/versions/{version}/download"
        with self._http.stream("GET", url, params={"format": format}) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise from_payload(resp.status_code, resp.json())
            with open(dest, "wb") as fh:
                for chunk in resp.iter_bytes():
                    fh.write(chunk)
        return Path(dest)

    # -- tracking and training --------------------------------------------------------------

    def train(self, slug: str, dataset: str, target: str, **options: Any) -> dict[str, Any]:
        """Queue a training job (baseline + candidate); returns the job. See `wait`."""
        return self._call(
            "POST",
            f"/projects/{slug}/train",
            json={"dataset": dataset, "target": target, **options},
        )

    def runs(self, slug: str, experiment: str | None = None) -> list[dict[str, Any]]:
        params = {"experiment": experiment} if experiment else None
        return self._call("GET", f"/projects/{slug}/runs", params=params)

    def run(self, run_id: str) -> dict[str, Any]:
        return self._call("GET", f"/runs/{run_id}")

    def create_run(self, slug: str, experiment: str = "default", **fields: Any) -> dict[str, Any]:
        return self._call(
            "POST", f"/projects/{slug}/runs", json={"experiment": experiment, **fields}
        )

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        self._call(
            "POST",
            f"/runs/{run_id}/params",
            json={"values": {k: str(v) for k, v in params.items()}},
        )

    def log_metrics(self, run_id: str, metrics: Iterable[dict[str, Any]]) -> None:
        self._call("POST", f"/runs/{run_id}/metrics", json={"metrics": list(metrics)})

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self._call("POST", f"/runs/{run_id}/tags", json={"values": tags})

    def finish_run(self, run_id: str, status: str = "FINISHED") -> dict[str, Any]:
        return self._call("PATCH", f"/runs/{run_id}", json={"status": status})

    def log_artifact(self, run_id: str, local_path: str | os.PathLike[str], path: str) -> None:
        with open(local_path, "rb") as fh:
            self._call("PUT", f"/runs/{run_id}/artifacts/{path}", content=_chunks(fh))

    def artifacts(self, run_id: str, path: str = "") -> list[dict[str, Any]]:
        return self._call("GET", f"/runs/{run_id}/artifacts", params={"path": path})

    def artifact(self, run_id: str, path: str) -> bytes:
        return self._call("GET", f"/runs/{run_id}/artifacts/{path}")

    # -- registry ---------------------------------------------------------------------------

    def register(self, slug: str, model: str, run_id: str, description: str = "") -> dict[str, Any]:
        return self._call(
            "POST",
            f"/projects/{slug}/models/{model}/versions",
            json={"run_id": run_id, "description": description},
        )

    def models(self, slug: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/projects/{slug}/models")

    def model_versions(self, slug: str, model: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/projects/{slug}/models/{model}/versions")

    def model_version(self, slug: str, model: str, version: int | str) -> dict[str, Any]:
        return self._call("GET", f"/projects/{slug}/models/{model}/versions/{version}")

    def set_alias(self, slug: str, model: str, alias: str, version: int) -> dict[str, Any]:
        return self._call(
            "PUT", f"/projects/{slug}/models/{model}/aliases/{alias}", json={"version": version}
        )

    # -- serving and monitoring ---------------------------------------------------------------

    def deploy(
        self, slug: str, name: str, model: str, version: int | str, stage: str = "staging"
    ) -> dict[str, Any]:
        return self._call(
            "POST",
            f"/projects/{slug}/deployments",
            json={"name": name, "model": model, "version": version, "stage": stage},
        )

    def deployments(self, slug: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/projects/{slug}/deployments")

    def deployment(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/deployments/{name}")

    def predict(self, deployment: str, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """Returns `{"predictions": [{"id", "output"}], ...}`; keep the ids for feedback."""
        return self._call("POST", f"/deployments/{deployment}/predict", json={"inputs": inputs})

    def feedback(self, deployment: str, items: list[dict[str, Any]]) -> int:
        """Ground truth for earlier predictions: `[{"prediction_id", "truth"}]`."""
        return self._call("POST", f"/deployments/{deployment}/feedback", json={"items": items})[
            "recorded"
        ]

    def report(self, deployment: str) -> dict[str, Any]:
        return self._call("GET", f"/deployments/{deployment}/report")


def _format_of(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    if lower.endswith(".csv"):
        return "csv"
    return None


def _chunks(fh: BinaryIO, size: int = 1 << 20) -> Iterable[bytes]:
    while block := fh.read(size):
        yield block
