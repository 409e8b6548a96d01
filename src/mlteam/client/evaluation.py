"""SDK calls: Gate sets, invariance tests, evaluations and their reports."""

from __future__ import annotations

from typing import Any

from mlteam.client.base import Base


class EvaluationAPI(Base):
    def gate_sets(self, slug: str) -> list[dict[str, Any]]:
        """The current version of each gate set of the project."""
        return self._call("GET", f"/projects/{slug}/gate-sets")

    def gate_set(self, slug: str, name: str, version: int | None = None) -> dict[str, Any]:
        """A gate set: its current version, or a given one."""
        params = {"version": version} if version is not None else None
        return self._call("GET", f"/projects/{slug}/gate-sets/{name}", params=params)

    def gate_set_versions(self, slug: str, name: str) -> list[dict[str, Any]]:
        """Every version of a gate set, oldest first."""
        return self._call("GET", f"/projects/{slug}/gate-sets/{name}/versions")

    def create_gate_set(
        self, slug: str, name: str, rules: list[dict[str, Any]], description: str = ""
    ) -> dict[str, Any]:
        """Define a gate set (QA). Rules: see `mlteam.evaluation.gates`."""
        return self._call(
            "POST",
            f"/projects/{slug}/gate-sets",
            json={"name": name, "rules": rules, "description": description},
        )

    def update_gate_set(
        self, slug: str, name: str, rules: list[dict[str, Any]], description: str | None = None
    ) -> dict[str, Any]:
        """Replace a gate set's rules; the result is its next version."""
        body: dict[str, Any] = {"rules": rules}
        if description is not None:
            body["description"] = description
        return self._call("PUT", f"/projects/{slug}/gate-sets/{name}", json=body)

    def delete_gate_set(self, slug: str, name: str) -> None:
        """Delete a gate set (refused while the project requires it)."""
        self._call("DELETE", f"/projects/{slug}/gate-sets/{name}")

    def require_gate_set(self, slug: str, name: str | None) -> dict[str, Any]:
        """Make `name` the gate set every promotion needs a passing evaluation of (None: none)."""
        return self._call("PATCH", f"/projects/{slug}", json={"required_gate_set": name or ""})

    def invariances(self, slug: str) -> list[dict[str, Any]]:
        """The project's invariance tests."""
        return self._call("GET", f"/projects/{slug}/invariances")

    def add_invariance(
        self, slug: str, name: str, column: str, description: str = ""
    ) -> dict[str, Any]:
        """Declare "changing `column` must not change the prediction"."""
        return self._call(
            "POST",
            f"/projects/{slug}/invariances",
            json={"name": name, "column": column, "description": description},
        )

    def delete_invariance(self, slug: str, name: str) -> None:
        """Remove an invariance test."""
        self._call("DELETE", f"/projects/{slug}/invariances/{name}")

    def evaluate(self, slug: str, model: str, version: int | str, **options: Any) -> dict[str, Any]:
        """Queue an evaluation job of a model version. Options: dataset, dataset_version,
        gate_set, slice_columns, sensitive, bootstrap, seed. Returns the job."""
        return self._call(
            "POST", f"/projects/{slug}/models/{model}/versions/{version}/evaluations", json=options
        )

    def evaluations(
        self, slug: str, model: str | None = None, version: int | str | None = None
    ) -> list[dict[str, Any]]:
        """Evaluations of the project, a model, or one version; newest first."""
        if model is not None and version is not None:
            return self._call(
                "GET", f"/projects/{slug}/models/{model}/versions/{version}/evaluations"
            )
        params = {"model": model} if model else None
        return self._call("GET", f"/projects/{slug}/evaluations", params=params)

    def evaluation(self, slug: str, number: int) -> dict[str, Any]:
        """One evaluation: gate results, summary metrics, notes."""
        return self._call("GET", f"/projects/{slug}/evaluations/{number}")

    def evaluation_report(self, slug: str, number: int, format: str = "json") -> Any:  # noqa: A002
        """The stored report: `format="json"` (a dict) or `"html"` (the page, as text)."""
        if format not in ("json", "html"):
            raise ValueError("format must be json or html")
        data = self._call("GET", f"/projects/{slug}/evaluations/{number}/report.{format}")
        return data.decode() if isinstance(data, bytes) else data
