"""SDK calls: Registered models, versions, aliases."""

from __future__ import annotations

from typing import Any

from mlteam.client.base import Base


class RegistryAPI(Base):
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
