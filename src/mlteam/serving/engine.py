"""The serving engine of one process: loaded models, the prediction log, metrics, shadows.

`answer` picks the live route of a revision (by weight: deterministic for a request id, else
random), checks the input against that version's signature, predicts, logs, and hands the same
checked input to every shadow version on a background thread: their answers are logged, never
returned, and never slow or fail the request.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlteam.core.errors import MlteamError
from mlteam.serving.metrics import ServingMetrics
from mlteam.serving.predlog import Batch, PredictionIds, PredictionLog
from mlteam.serving.runtime import Columns, LoadedModel, ModelCache

log = logging.getLogger("mlteam.serving")


@dataclass
class Answer:
    route: dict[str, Any]
    model: LoadedModel
    ids: PredictionIds
    outputs: list[Any]
    latency_ms: float


def pick(live: list[dict[str, Any]], request_id: str | None) -> dict[str, Any]:
    """A live route by weight: the same request id always lands on the same version."""
    if len(live) == 1:
        return live[0]
    total = sum(int(r["weight"]) for r in live)
    if request_id:
        digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
        point = int.from_bytes(digest, "big") % total
    else:
        point = random.randrange(total)
    for r in live:
        point -= int(r["weight"])
        if point < 0:
            return r
    return live[-1]


class ServingEngine:
    def __init__(
        self,
        models: ModelCache,
        predictions: PredictionLog,
        shadow_threads: int = 2,
        log_predictions: bool = True,
    ) -> None:
        self.models = models
        self.predictions = predictions
        # Off only to measure what the log costs (MLTEAM_PREDICTION_LOG=false): nothing is
        # logged then, so no feedback, monitoring or shadow answers for those requests.
        self.log_predictions = log_predictions
        self.metrics = ServingMetrics()
        # (deployment id, revision number) → routes; revisions are immutable
        self.revisions: dict[tuple[str, int], list[dict[str, Any]]] = {}
        # (deployment id, revision number) → its routes and their versions, loaded
        self.served: dict[tuple[str, int], tuple[list[dict[str, Any]], dict[str, LoadedModel]]]
        self.served = {}
        self._shadow = ThreadPoolExecutor(shadow_threads, thread_name_prefix="mlteam-shadow")

    def stop(self) -> None:
        """Finish the shadow predictions under way (they log) before the log's last flush."""
        self._shadow.shutdown(wait=True)

    def answer(
        self,
        deployment: str,
        deployment_id: str,
        revision: int,
        routes: list[dict[str, Any]],
        load: Callable[[str], LoadedModel],
        check: Callable[[LoadedModel], Columns],
        request_id: str | None = None,
    ) -> Answer:
        started = time.perf_counter()
        live = [r for r in routes if r["mode"] == "live" and int(r["weight"]) > 0]
        route = pick(live, request_id)
        loaded = load(route["model_version_id"])
        try:
            columns = check(loaded)
            outputs = loaded.predict(columns)
        except MlteamError:
            self._observe(deployment, route, started, 0, error=True)
            raise
        except Exception as err:  # the model itself failed: a platform fault, counted
            self._observe(deployment, route, started, 0, error=True)
            log.exception("model %s v%s failed", route["model"], route["version"])
            raise MlteamError(f"model {route['model']} v{route['version']} failed") from err
        latency = (time.perf_counter() - started) * 1000
        ids = PredictionIds(len(outputs))
        now = datetime.now(UTC)
        if self.log_predictions:
            self.predictions.append_batch(
                Batch(
                    now,
                    deployment_id,
                    revision,
                    loaded.version_id,
                    "live",
                    ids,
                    columns,
                    outputs,
                    latency,
                )
            )
        self._observe(deployment, route, started, len(ids))
        for shadow in routes:
            if shadow["mode"] == "shadow" and self.log_predictions:
                try:
                    self._shadow.submit(
                        self._run_shadow,
                        deployment,
                        deployment_id,
                        revision,
                        shadow,
                        load,
                        columns,
                        ids,
                        now,
                    )
                except RuntimeError:  # shutting down: the live answer still stands
                    log.warning(
                        "shadow %s v%s skipped at shutdown", shadow["model"], shadow["version"]
                    )
        return Answer(route, loaded, ids, outputs, latency)

    def _run_shadow(
        self,
        deployment: str,
        deployment_id: str,
        revision: int,
        route: dict[str, Any],
        load: Callable[[str], LoadedModel],
        columns: Columns,
        ids: PredictionIds,
        ts: datetime,
    ) -> None:
        started = time.perf_counter()
        try:
            loaded = load(route["model_version_id"])
            # the shadow's own signature may name fewer columns; it gets those it names
            if loaded.columns == list(columns):
                mine = columns  # the same checked input (and its matrix, if any)
            else:
                mine = {c: columns[c] for c in loaded.columns if c in columns}
            if len(mine) != len(loaded.columns):
                raise MlteamError("the shadow version needs columns the live version lacks")
            outputs = loaded.predict(mine)
        except Exception:
            self._observe(deployment, route, started, 0, error=True)
            log.warning("shadow %s v%s failed", route["model"], route["version"], exc_info=True)
            return
        latency = (time.perf_counter() - started) * 1000
        self.predictions.append_batch(
            Batch(
                ts,
                deployment_id,
                revision,
                loaded.version_id,
                "shadow",
                ids,
                mine,
                outputs,
                latency,
            )
        )
        self._observe(deployment, route, started, len(ids))

    def _observe(
        self, deployment: str, route: dict[str, Any], started: float, rows: int, error: bool = False
    ) -> None:
        self.metrics.observe(
            deployment,
            route["model"],
            route["version"],
            route["mode"],
            time.perf_counter() - started,
            rows,
            error,
        )
