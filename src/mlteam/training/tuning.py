"""Hyperparameter tuning with Optuna under a budget of trials and/or minutes.

Deterministic by design: a TPE sampler seeded by the request; trials run on the executor
with a window of them in flight and are told back in trial-number order, so the study's history
at each ask (and so every next proposal) is the same on every rerun, whichever worker finishes
first. Pruning is Optuna's median rule applied per cross-validation fold, with the medians fixed
when a trial is asked (from trials already told), so it does not depend on timing either.
A `minutes` budget is checked before each ask; it is the one input that depends on the
machine's speed (a slower machine runs fewer trials).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mlteam.training import recipes

STARTUP_TRIALS = 3  # completed trials before the median rule prunes anything
TPE_STARTUP = 5  # TPE's first trials are seeded random draws
WINDOW = 4  # fewest trials in flight (see `tune`)


def _thresholds(study: Any, cv: int) -> list[float | None]:
    """Median running-mean score of completed trials at each fold (None: no pruning yet)."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if len(done) < STARTUP_TRIALS:
        return [None] * cv
    out: list[float | None] = []
    for step in range(cv):
        vals = [t.intermediate_values[step] for t in done if step in t.intermediate_values]
        out.append(float(np.median(vals)) if vals else None)
    return out


def tune(
    family: str,
    task: str,
    frame: pd.DataFrame,
    features: list[str],
    target: str,
    *,
    executor: Any,
    trials: int | None,
    minutes: float | None,
    cv: int,
    seed: int,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
    prune: bool = True,
) -> dict[str, Any]:
    """Tune one candidate; returns best params, best CV score and every trial's record.

    `prune=False` runs every fold of every trial (bench/training.py compares worker counts
    on exactly the same work that way)."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _, higher = recipes.PRIMARY[task]
    study = optuna.create_study(
        direction="maximize" if higher else "minimize",
        # constant_liar: trials asked together are told apart (a running trial counts as a
        # poor result), so a batch explores instead of proposing the same point twice
        sampler=optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=TPE_STARTUP, constant_liar=True
        ),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS),
    )
    start = time.monotonic()
    records: list[dict[str, Any]] = []
    # A window of trials in flight, retired in trial order: trial k is asked once trials
    # 0..k-window are told, whoever finished first, so what the sampler and the pruner know
    # at each ask is the same on every rerun; the trials in between count as running
    # (constant_liar). Twice as many in flight as workers keeps the pool busy while trials of
    # unequal length finish; at least WINDOW, so one worker and two propose the same trials.
    window = max(WINDOW, 2 * executor.workers)
    in_flight: deque[tuple[Any, dict[str, Any], Any]] = deque()
    asked = 0
    while True:
        while len(in_flight) < window and (trials is None or asked < trials):
            if minutes is not None and time.monotonic() - start >= minutes * 60:
                break
            trial = study.ask()
            params = recipes.suggest(family, task, trial)
            payload = {
                "family": family,
                "task": task,
                "params": params,
                "features": features,
                "target": target,
                "cv": cv,
                "seed": seed,
                "n_jobs": 1,
                "thresholds": _thresholds(study, cv) if prune else [None] * cv,
            }
            in_flight.append((trial, params, executor.submit(payload)))
            asked += 1
        if not in_flight:
            break
        trial, p, handle = in_flight.popleft()
        r = executor.result(handle)
        for step, v in enumerate(r["values"]):
            trial.report(v, step)
        if r["pruned"]:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, r["values"][-1])
        record = {
            "number": trial.number,
            "params": p,
            "cv_score": r["values"][-1],
            "values": r["values"],
            "folds_run": len(r["values"]),
            "pruned": r["pruned"],
            "seconds": r["seconds"],
            "pid": r["pid"],
            "node": r["node"],
            "executor": r["executor"],
            "ray_task": r.get("ray_task"),
        }
        records.append(record)
        if on_trial is not None:
            on_trial(record)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not complete:
        return {"best_params": None, "best_cv": None, "trials": records, "best_trial": None}
    best = study.best_trial
    return {
        "best_params": records[best.number]["params"],
        "best_cv": float(best.value),
        "best_trial": best.number,
        "trials": records,
        "pruned": sum(r["pruned"] for r in records),
        "seconds": time.monotonic() - start,
    }
