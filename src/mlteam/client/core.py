"""SDK calls: Users, tokens, jobs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mlteam.client.base import Base
from mlteam.core.errors import MlteamError


class CoreAPI(Base):
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
