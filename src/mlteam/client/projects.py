"""SDK calls: Projects, members, model requests, audit log."""

from __future__ import annotations

from typing import Any

from mlteam.client.base import Base


class ProjectsAPI(Base):
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
