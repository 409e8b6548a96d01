"""Prometheus metrics of serving: requests, errors and latency per deployment and model version.

Each platform has its own registry (no process-global state), exposed as text at `/metrics`.
With several uvicorn workers each worker counts its own requests.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServingMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("deployment", "model", "version", "mode")
        self.requests = Counter(
            "mlteam_predict_requests",
            "Prediction requests answered or refused, per deployment and model version.",
            labels,
            registry=self.registry,
        )
        self.errors = Counter(
            "mlteam_predict_errors",
            "Prediction requests that failed (bad input or a model error).",
            labels,
            registry=self.registry,
        )
        self.rows = Counter(
            "mlteam_predict_rows",
            "Rows predicted, per deployment and model version.",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "mlteam_predict_latency_seconds",
            "Time from request to answer (input check and model), per model version.",
            labels,
            buckets=BUCKETS,
            registry=self.registry,
        )

    def observe(
        self,
        deployment: str,
        model: str,
        version: int | str,
        mode: str,
        seconds: float,
        rows: int,
        error: bool = False,
    ) -> None:
        labels = (deployment, model, str(version), mode)
        self.requests.labels(*labels).inc()
        if error:
            self.errors.labels(*labels).inc()
        else:
            self.rows.labels(*labels).inc(rows)
            self.latency.labels(*labels).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
