"""SDK calls: Registered models, versions, tags, aliases, stages, model cards, promotions."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from mlteam.client.base import Base


def _key(key: str) -> str:
    # Dots escaped too: httpx would resolve a `..` segment away instead of sending it.
    return quote(key, safe="/").replace(".", "%2E")


class RegistryAPI(Base):
    def register(self, slug: str, model: str, run_id: str, description: str = "") -> dict[str, Any]:
        """Register the model a finished run logged as the next version of `model`."""
        return self._call(
            "POST",
            f"/projects/{slug}/models/{model}/versions",
            json={"run_id": run_id, "description": description},
        )

    def models(self, slug: str) -> list[dict[str, Any]]:
        """The project's registered models, with tags and aliases."""
        return self._call("GET", f"/projects/{slug}/models")

    def model(self, slug: str, model: str) -> dict[str, Any]:
        """One registered model: description, tags, {alias: version}, latest version."""
        return self._call("GET", f"/projects/{slug}/models/{model}")

    def update_model(self, slug: str, model: str, description: str) -> dict[str, Any]:
        """Replace a registered model's description."""
        return self._call(
            "PATCH", f"/projects/{slug}/models/{model}", json={"description": description}
        )

    def set_model_tag(self, slug: str, model: str, key: str, value: str) -> dict[str, Any]:
        """Set (or overwrite) a tag of a registered model."""
        return self._call(
            "PUT", f"/projects/{slug}/models/{model}/tags/{_key(key)}", json={"value": value}
        )

    def delete_model_tag(self, slug: str, model: str, key: str) -> None:
        """Remove a tag of a registered model."""
        self._call("DELETE", f"/projects/{slug}/models/{model}/tags/{_key(key)}")

    def model_versions(self, slug: str, model: str) -> list[dict[str, Any]]:
        """Every version of a model, oldest first."""
        return self._call("GET", f"/projects/{slug}/models/{model}/versions")

    def model_version(self, slug: str, model: str, version: int | str) -> dict[str, Any]:
        """A version by number or alias: aliases, derived stage, tags, lineage."""
        return self._call("GET", f"/projects/{slug}/models/{model}/versions/{version}")

    def update_model_version(
        self, slug: str, model: str, version: int | str, description: str
    ) -> dict[str, Any]:
        """Replace a version's description."""
        return self._call(
            "PATCH",
            f"/projects/{slug}/models/{model}/versions/{version}",
            json={"description": description},
        )

    def set_version_tag(
        self, slug: str, model: str, version: int | str, key: str, value: str
    ) -> dict[str, Any]:
        """Set (or overwrite) a tag of a model version."""
        return self._call(
            "PUT",
            f"/projects/{slug}/models/{model}/versions/{version}/tags/{_key(key)}",
            json={"value": value},
        )

    def delete_version_tag(self, slug: str, model: str, version: int | str, key: str) -> None:
        """Remove a tag of a model version."""
        self._call("DELETE", f"/projects/{slug}/models/{model}/versions/{version}/tags/{_key(key)}")

    def set_alias(self, slug: str, model: str, alias: str, version: int) -> dict[str, Any]:
        """Point an alias at a version (protected aliases go through `request_promotion`)."""
        return self._call(
            "PUT", f"/projects/{slug}/models/{model}/aliases/{alias}", json={"version": version}
        )

    def delete_alias(self, slug: str, model: str, alias: str) -> None:
        """Remove an alias (a protected one: owners only)."""
        self._call("DELETE", f"/projects/{slug}/models/{model}/aliases/{alias}")

    def transition_stage(
        self,
        slug: str,
        model: str,
        version: int | str,
        stage: str,
        archive_existing: bool = False,
    ) -> dict[str, Any]:
        """MLflow's legacy stages (None, Staging, Archived), kept in step with aliases."""
        return self._call(
            "POST",
            f"/projects/{slug}/models/{model}/versions/{version}/stage",
            json={"stage": stage, "archive_existing": archive_existing},
        )

    # -- model cards ---------------------------------------------------------------------------

    def model_card(
        self,
        slug: str,
        model: str,
        version: int | str,
        format: str = "json",  # noqa: A002 - mirrors the query parameter
        revision: int | None = None,
    ) -> Any:
        """The card of a version: a dict, or Markdown text with `format="markdown"`."""
        params: dict[str, Any] = {"format": format}
        if revision is not None:
            params["revision"] = revision
        out = self._call(
            "GET", f"/projects/{slug}/models/{model}/versions/{version}/card", params=params
        )
        return out.decode() if isinstance(out, bytes) else out

    def edit_model_card(
        self, slug: str, model: str, version: int | str, **fields: str
    ) -> dict[str, Any]:
        """Write part of a card (intended_use, limitations, ethical_considerations, caveats,
        notes): a new revision; fields left out keep their text."""
        return self._call(
            "PATCH", f"/projects/{slug}/models/{model}/versions/{version}/card", json=fields
        )

    def model_card_revisions(
        self, slug: str, model: str, version: int | str
    ) -> list[dict[str, Any]]:
        """Every written revision of a version's card, oldest first."""
        return self._call(
            "GET", f"/projects/{slug}/models/{model}/versions/{version}/card/revisions"
        )

    # -- promotion requests --------------------------------------------------------------------

    def request_promotion(
        self,
        slug: str,
        model: str,
        version: int | str,
        rationale: str,
        target: str = "production",
    ) -> dict[str, Any]:
        """Ask for `model` `version` to become `target`, pending the project's sign-offs."""
        body = {"model": model, "version": version, "target": target, "rationale": rationale}
        return self._call("POST", f"/projects/{slug}/promotions", json=body)

    def promotions(self, slug: str, state: str | None = None) -> list[dict[str, Any]]:
        """The project's promotion requests, newest first; `state` filters."""
        params = {"state": state} if state else None
        return self._call("GET", f"/projects/{slug}/promotions", params=params)

    def promotion(self, slug: str, number: int) -> dict[str, Any]:
        """One promotion request with its sign-offs."""
        return self._call("GET", f"/projects/{slug}/promotions/{number}")

    def sign_promotion(
        self, slug: str, number: int, role: str, decision: str, rationale: str
    ) -> dict[str, Any]:
        """Approve or reject a promotion as a role you hold (`decision`: approve|reject)."""
        return self._call(
            "POST",
            f"/projects/{slug}/promotions/{number}/signoffs",
            json={"role": role, "decision": decision, "rationale": rationale},
        )

    def approve_promotion(
        self, slug: str, number: int, role: str, rationale: str
    ) -> dict[str, Any]:
        """Approve as `role` (one you hold)."""
        return self.sign_promotion(slug, number, role, "approve", rationale)

    def reject_promotion(self, slug: str, number: int, role: str, rationale: str) -> dict[str, Any]:
        """Reject as `role` (one you hold); this ends the request."""
        return self.sign_promotion(slug, number, role, "reject", rationale)

    def withdraw_promotion(self, slug: str, number: int, rationale: str = "") -> dict[str, Any]:
        """End an open promotion request (its requester, or an owner)."""
        return self._call(
            "POST", f"/projects/{slug}/promotions/{number}/withdraw", json={"rationale": rationale}
        )
