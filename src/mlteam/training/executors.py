"""Where tuning trials run: in this process, a local process pool, or as Ray tasks.

Every executor has `submit(payload) -> handle` and `result(handle) -> dict`: tuning keeps a
window of trials in flight and takes their results in trial order, whatever order they finish
in, so the Optuna study sees the same sequence of results (and proposes the same next
parameters) on any executor.

The training rows go to each worker once (pool initializer, or one `ray.put`), not per trial.
Ray is imported only when the ray executor is used (it is an optional extra).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pandas as pd

from mlteam.core.errors import InvalidInput

EXECUTORS = ("local", "ray")

_FRAME: pd.DataFrame | None = None


def _set_frame(frame: pd.DataFrame) -> None:
    """Pool worker start: keep the rows; die with the parent (the forkserver, which itself
    ends when the job process does), so a killed job leaves no trial processes behind."""
    global _FRAME
    _FRAME = frame
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def run_trial(payload: dict[str, Any], frame: pd.DataFrame | None = None) -> dict[str, Any]:
    """One trial: cross-validate a parameter set (see recipes.cv_trial); where it ran."""
    from mlteam.training import recipes

    data = frame if frame is not None else _FRAME
    assert data is not None, "the worker has no training rows"
    start = time.perf_counter()
    out = recipes.cv_trial(
        payload["family"],
        payload["task"],
        payload["params"],
        data,
        payload["features"],
        payload["target"],
        payload["cv"],
        payload["seed"],
        payload["n_jobs"],
        payload["thresholds"],
    )
    out["seconds"] = time.perf_counter() - start
    out["pid"] = os.getpid()
    out["node"] = payload.get("node") or socket.gethostname()
    return out


def _ray_trial(payload: dict[str, Any], frame: pd.DataFrame) -> dict[str, Any]:
    import ray

    ctx = ray.get_runtime_context()
    out = run_trial({**payload, "node": ctx.get_node_id()}, frame)
    out["ray_task"] = ctx.get_task_id()
    return out


class InlineExecutor:
    """One worker: trials run here, with the libraries' own threading."""

    name = "local"
    workers = 1

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def submit(self, payload: dict[str, Any]) -> dict[str, Any]:
        return payload  # run when its result is asked for: one worker, nothing to overlap

    def result(self, handle: dict[str, Any]) -> dict[str, Any]:
        return {**run_trial(handle, self.frame), "executor": "local"}

    def close(self) -> None:
        pass


class LocalExecutor:
    """A process pool of `workers`; each trial single-threaded so N workers use N cores."""

    name = "local"

    def __init__(self, frame: pd.DataFrame, workers: int) -> None:
        self.workers = workers
        # forkserver: workers come from a clean process (no threads, no OpenMP state of the
        # job's own fits), with the heavy imports preloaded once.
        mp = multiprocessing.get_context("forkserver")
        mp.set_forkserver_preload(["mlteam.training.recipes", "lightgbm", "sklearn.ensemble"])
        self.pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=mp, initializer=_set_frame, initargs=(frame,)
        )

    def warm(self) -> None:
        """Start every worker now (forkserver, imports, the rows) rather than at the first
        trial; bench/training.py times this apart from the trials."""
        for f in [self.pool.submit(os.getpid) for _ in range(self.workers)]:
            f.result()

    def submit(self, payload: dict[str, Any]) -> Any:
        return self.pool.submit(run_trial, payload)

    def result(self, handle: Any) -> dict[str, Any]:
        return {**handle.result(), "executor": "local"}

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Trials as Ray tasks on an existing cluster (one CPU each)."""

    name = "ray"

    def __init__(self, frame: pd.DataFrame, workers: int, address: str) -> None:
        try:
            import ray
        except ImportError as err:  # pragma: no cover - depends on the install
            raise InvalidInput(
                "the ray executor needs Ray installed on the server (pip install 'mlteam[ray]')",
                {"field": "executor"},
            ) from err
        self.ray = ray
        self.workers = workers
        self.connected_here = not ray.is_initialized()
        if self.connected_here:
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            except Exception as err:  # noqa: BLE001 - Ray raises many kinds; say which address
                raise InvalidInput(
                    f"cannot connect to the Ray cluster at {address!r}: {err}",
                    {"field": "ray_address"},
                ) from err
        self.frame_ref = ray.put(frame)
        self.task = ray.remote(num_cpus=1)(_ray_trial)

    def submit(self, payload: dict[str, Any]) -> Any:
        return self.task.remote(payload, self.frame_ref)

    def result(self, handle: Any) -> dict[str, Any]:
        return {**self.ray.get(handle), "executor": "ray"}

    def close(self) -> None:
        if self.connected_here:
            self.ray.shutdown()


def make(
    executor: str, frame: pd.DataFrame, workers: int, ray_address: str | None = None
) -> InlineExecutor | LocalExecutor | RayExecutor:
    if executor == "ray":
        if not ray_address:
            raise InvalidInput(
                "executor 'ray' needs ray_address (or the MLTEAM_RAY_ADDRESS setting)",
                {"field": "ray_address"},
            )
        return RayExecutor(frame, workers, ray_address)
    if executor != "local":
        raise InvalidInput(f"executor must be one of {EXECUTORS}", {"field": "executor"})
    return InlineExecutor(frame) if workers <= 1 else LocalExecutor(frame, workers)
