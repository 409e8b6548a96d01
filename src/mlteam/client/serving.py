"""SDK calls: Deployments, predictions, feedback, reports."""

from __future__ import annotations

from typing import Any

from mlteam.client.base import Base


class ServingAPI(Base):
    def deploy(
        self,
        slug: str,
        name: str,
        model: str | None = None,
        version: int | str | None = None,
        stage: str | None = None,
        routes: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Create deployment `name` (or give it a new revision) serving `model` `version`, or
        `routes=[{"model", "version", "weight", "mode": "live"|"shadow"}]`. `stage` None keeps
        an existing deployment's stage; a new one starts in staging."""
        body: dict[str, Any] = {"name": name}
        if stage is not None:
            body["stage"] = stage
        if routes is not None:
            body["routes"] = routes
        else:
            body.update(model=model, version=version)
        return self._call("POST", f"/projects/{slug}/deployments", json=body)

    def revise(
        self, deployment: str, routes: list[dict[str, Any]], stage: str | None = None
    ) -> dict[str, Any]:
        """A new revision: `[{"model", "version", "weight", "mode"}]`; live weights add to 100
        (canary: 95 and 5); shadow routes get a copy of the traffic, answers logged only."""
        body: dict[str, Any] = {"routes": routes}
        if stage is not None:
            body["stage"] = stage
        return self._call("POST", f"/deployments/{deployment}/revisions", json=body)

    def rollback(self, deployment: str) -> dict[str, Any]:
        """Serve the previous revision's routes again (as a new revision)."""
        return self._call("POST", f"/deployments/{deployment}/rollback")

    def revisions(self, deployment: str) -> list[dict[str, Any]]:
        """Every revision of a deployment, newest first."""
        return self._call("GET", f"/deployments/{deployment}/revisions")

    def deployments(self, slug: str) -> list[dict[str, Any]]:
        """The deployments of a project."""
        return self._call("GET", f"/projects/{slug}/deployments")

    def deployment(self, name: str) -> dict[str, Any]:
        """A deployment with its current revision's routes."""
        return self._call("GET", f"/deployments/{name}")

    def predict(
        self, deployment: str, inputs: list[dict[str, Any]], request_id: str | None = None
    ) -> dict[str, Any]:
        """Returns `{"predictions": [{"id", "output"}], ...}`; keep the ids for feedback.
        A `request_id` routes the request to the same canary version every time."""
        headers = {"X-Request-Id": request_id} if request_id else None
        return self._call(
            "POST", f"/deployments/{deployment}/predict", json={"inputs": inputs}, headers=headers
        )

    def score(
        self,
        slug: str,
        dataset: str,
        model: str,
        model_version: int | str,
        version: int | str = "latest",
        output: str | None = None,
    ) -> dict[str, Any]:
        """Queue a batch scoring job: `dataset` `version` scored by `model` `model_version`,
        published as the next version of `output` (default `<dataset>-scored`). Returns the
        job; `wait(job["id"])` gives `result = {dataset, version, id, rows}`."""
        body = {
            "dataset": dataset,
            "version": version,
            "model": model,
            "model_version": model_version,
            "output": output,
        }
        return self._call("POST", f"/projects/{slug}/score", json=body)

    def feedback(self, deployment: str, items: list[dict[str, Any]]) -> int:
        """Ground truth for earlier predictions: `[{"prediction_id", "truth"}]`."""
        return self._call("POST", f"/deployments/{deployment}/feedback", json={"items": items})[
            "recorded"
        ]

    def report(self, deployment: str) -> dict[str, Any]:
        return self._call("GET", f"/deployments/{deployment}/report")
