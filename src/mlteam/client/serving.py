"""SDK calls: Deployments, predictions, feedback, reports."""

from __future__ import annotations

from typing import Any

from mlteam.client.base import Base


class ServingAPI(Base):
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
