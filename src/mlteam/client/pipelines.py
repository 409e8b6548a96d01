"""SDK calls: sources and pipelines."""

from __future__ import annotations

from typing import Any

from mlteam.client.base import Base


class PipelinesAPI(Base):
    def create_source(
        self,
        slug: str,
        name: str,
        kind: str,
        config: dict[str, Any],
        credentials: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Add a source (`dataset`, `uri` or `sql`); credentials are stored encrypted."""
        body = {"name": name, "kind": kind, "config": config, "credentials": credentials}
        return self._call("POST", f"/projects/{slug}/sources", json=body)

    def sources(self, slug: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/projects/{slug}/sources")

    def source(self, slug: str, name: str) -> dict[str, Any]:
        return self._call("GET", f"/projects/{slug}/sources/{name}")

    def delete_source(self, slug: str, name: str) -> None:
        self._call("DELETE", f"/projects/{slug}/sources/{name}")

    def create_pipeline(
        self, slug: str, definition: dict[str, Any], replace: bool = False
    ) -> dict[str, Any]:
        """Create a pipeline from its definition (see `mlteam.data.pipelines`); `replace`
        updates an existing one of the same name."""
        return self._call(
            "POST",
            f"/projects/{slug}/pipelines",
            json=definition,
            params={"replace": "true"} if replace else None,
        )

    def pipelines(self, slug: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/projects/{slug}/pipelines")

    def pipeline(self, slug: str, name: str) -> dict[str, Any]:
        return self._call("GET", f"/projects/{slug}/pipelines/{name}")

    def delete_pipeline(self, slug: str, name: str) -> None:
        self._call("DELETE", f"/projects/{slug}/pipelines/{name}")

    def run_pipeline(
        self, slug: str, name: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Queue a run; returns its job (poll with `wait`)."""
        return self._call(
            "POST", f"/projects/{slug}/pipelines/{name}/runs", json={"params": params or {}}
        )

    def pipeline_runs(self, slug: str, name: str, limit: int = 50) -> list[dict[str, Any]]:
        """Runs, newest first: `{"trigger", "job"}`."""
        return self._call("GET", f"/projects/{slug}/pipelines/{name}/runs", params={"limit": limit})
