"""SDK calls: Experiments, runs, training jobs."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from mlteam.client.base import Base, chunks
from mlteam.core.errors import InvalidInput


class TrackingAPI(Base):
    def train(self, slug: str, dataset: str, target: str, **options: Any) -> dict[str, Any]:
        """Queue a training job; returns the job (see `wait`; its result says whether the best
        candidate beats the baseline).

        Options (all passed through): `version`, `features`, `task`, `experiment`,
        `test_fraction`, `seed`, `register_as`, `candidates` (subset of "baseline", "linear",
        "random_forest", "lightgbm"), `baseline_rule` (a DuckDB SQL expression over the
        features), `trials` / `minutes` (tuning budget per candidate), `cv` (folds),
        `workers` (trials at once), `executor` ("local" or "ray") and `ray_address`.
        Options left as None are not sent, so the server's defaults apply.
        """
        body = {k: v for k, v in options.items() if v is not None}
        return self._call(
            "POST",
            f"/projects/{slug}/train",
            json={"dataset": dataset, "target": target, **body},
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
        """Append points `{key, value, step?, timestamp?}`; NaN and infinities are fine."""
        points = [{**m, "value": _json_number(m.get("value"))} for m in metrics]
        self._call("POST", f"/runs/{run_id}/metrics", json={"metrics": points})

    def metric_history(self, run_id: str, key: str) -> list[dict[str, Any]]:
        """Every point of one metric of a run, by step then time (NaN as None)."""
        return self._call("GET", f"/runs/{run_id}/metrics/{quote(key, safe='')}")

    def search_runs(
        self,
        slug: str,
        filter_string: str = "",
        order_by: list[str] | None = None,
        max_results: int = 1000,
        page_token: str | None = None,
        experiments: list[str] | None = None,
    ) -> dict[str, Any]:
        """One page of a project's runs matching an MLflow filter, e.g.
        `"metrics.acc > 0.9 and params.lr = '0.01'"`, sorted by `order_by` (e.g.
        `["metrics.acc DESC"]`; default newest first). Returns `{"runs": [...],
        "next_page_token": str | None}`; pass the token back for the next page."""
        return self._call(
            "POST",
            f"/projects/{slug}/runs/search",
            json={
                "filter": filter_string,
                "order_by": list(order_by or []),
                "max_results": max_results,
                "page_token": page_token,
                "experiments": experiments,
            },
        )

    def compare_runs(self, run_ids: list[str]) -> dict[str, Any]:
        """Runs side by side: `{"runs", "params": {key: {run_id: value}}, "metrics": {key:
        {"steps": [...], "values": {run_id: [value or None per step]}}}}`."""
        return self._call("POST", "/runs/compare", json={"run_ids": list(run_ids)})

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self._call("POST", f"/runs/{run_id}/tags", json={"values": tags})

    def finish_run(self, run_id: str, status: str = "FINISHED") -> dict[str, Any]:
        return self._call("PATCH", f"/runs/{run_id}", json={"status": status})

    def log_artifact(self, run_id: str, local_path: str | os.PathLike[str], path: str) -> None:
        check_path(path)
        with open(local_path, "rb") as fh:
            self._call("PUT", f"/runs/{run_id}/artifacts/{path}", content=chunks(fh))

    def artifacts(self, run_id: str, path: str = "") -> list[dict[str, Any]]:
        return self._call("GET", f"/runs/{run_id}/artifacts", params={"path": path})

    def artifact(self, run_id: str, path: str) -> bytes:
        check_path(path)
        return self._call("GET", f"/runs/{run_id}/artifacts/{path}")


def check_path(path: str) -> None:
    """Refuse '.' and '..' segments here: httpx would silently normalise them away."""
    if any(part in (".", "..") for part in path.split("/")):
        raise InvalidInput(f"invalid artifact path: {path!r}", {"field": "path"})


def _json_number(value: Any) -> Any:
    """JSON has no NaN or infinity: send them as the strings the server reads back."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value
