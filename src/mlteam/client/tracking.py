"""SDK calls: Experiments, runs, training jobs."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from mlteam.client.base import Base, chunks


class TrackingAPI(Base):
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
            self._call("PUT", f"/runs/{run_id}/artifacts/{path}", content=chunks(fh))

    def artifacts(self, run_id: str, path: str = "") -> list[dict[str, Any]]:
        return self._call("GET", f"/runs/{run_id}/artifacts", params={"path": path})

    def artifact(self, run_id: str, path: str) -> bytes:
        return self._call("GET", f"/runs/{run_id}/artifacts/{path}")
