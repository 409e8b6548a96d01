"""Training benchmark: the recipe's overhead against bare LightGBM, the evaluation suite against
bare metric calls, and tuning wall time with 1 vs 2 local workers. One JSON line.

    python bench/training.py            # 200,000 rows x 30 features
    python bench/training.py --quick    # 20,000 rows, under a minute

(a) recipe_vs_bare: one LightGBM fit through the recipe code path the training job uses
    (`recipes.pipeline("lightgbm", ...)`: ColumnTransformer + LGBMClassifier on a DataFrame)
    against bare `lightgbm.LGBMClassifier(**same params).fit(X, y)` on the numpy array; median
    of a few interleaved repeats. Target: <= 1.3.
(b) evaluation: `mlteam.evaluation.suite.run_suite` on the test rows against the bare
    scikit-learn metric calls (accuracy, balanced accuracy, precision/recall/F1, ROC AUC, PR AUC,
    log loss). The suite also computes bootstrap intervals, robustness, leakage and feature
    importance, so the ratio is the price of the whole report, not of the metrics. null when the
    suite is not importable (with the reason).
(c) tuning_speedup_2_workers: `tuning.tune` of LightGBM, the same trials (TPE's first trials are
    seeded random draws, identical whatever the batch size; pruning off so both do all folds),
    with 1 worker (in-process) vs a 2-process local pool; ratio of wall times including the
    pool's start (forkserver, imports, rows sent once), and without it
    (`trials_only_speedup_2_workers`); 10 trials (4 with --quick), the longest started first.
    Target: near 2 on a 2-core machine that is otherwise idle.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from typing import Any

import pandas as pd

SEED = 0


def generate(rows: int, features: int = 30, seed: int = SEED) -> pd.DataFrame:
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=rows,
        n_features=features,
        n_informative=15,
        n_redundant=5,
        random_state=seed,
    )
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(features)])
    frame["y"] = y
    return frame


def bench_recipe(frame: pd.DataFrame, repeats: int, threads: int | None) -> dict[str, Any]:
    from lightgbm import LGBMClassifier

    from mlteam.training import recipes

    features = [c for c in frame.columns if c != "y"]
    params = {**recipes.default_params("lightgbm", "classification")}
    if threads:
        params["n_jobs"] = threads
    X, y = frame[features].to_numpy(), frame["y"].to_numpy()
    recipe_t, bare_t = [], []
    for _ in range(repeats):  # interleaved, so a busy moment hurts both alike
        t0 = time.perf_counter()
        LGBMClassifier(**params, random_state=SEED, verbose=-1).fit(X, y)
        bare_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        model = recipes.pipeline("lightgbm", "classification", frame, features, params, SEED)
        model.fit(frame[features], frame["y"])
        recipe_t.append(time.perf_counter() - t0)
    recipe, bare = statistics.median(recipe_t), statistics.median(bare_t)
    return {
        "recipe_fit_s": round(recipe, 3),
        "bare_fit_s": round(bare, 3),
        "recipe_vs_bare": round(recipe / bare, 3),
        "fit_repeats": repeats,
        "fit_threads": threads or "lightgbm default",
    }


def bench_evaluation(frame: pd.DataFrame) -> dict[str, Any]:
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        balanced_accuracy_score,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    from mlteam.training import recipes

    try:
        from mlteam.evaluation.suite import run_suite
    except Exception as err:  # noqa: BLE001 - report why instead of failing the bench
        return {"suite_vs_bare_metrics": None, "suite_note": f"suite not importable: {err}"}
    features = [c for c in frame.columns if c != "y"]
    train, _validation, test = recipes.split_frame(frame, "y", "classification", 0.2, SEED)
    params = recipes.default_params("lightgbm", "classification")
    model = recipes.pipeline("lightgbm", "classification", train, features, params, SEED)
    model.fit(train[features], train["y"])
    t0 = time.perf_counter()
    pred = model.predict(test[features])
    proba = model.predict_proba(test[features])[:, 1]
    y = test["y"]
    accuracy_score(y, pred)
    balanced_accuracy_score(y, pred)
    precision_score(y, pred)
    recall_score(y, pred)
    f1_score(y, pred)
    roc_auc_score(y, proba)
    average_precision_score(y, proba)
    log_loss(y, proba)
    bare = time.perf_counter() - t0
    t0 = time.perf_counter()
    try:
        run_suite("classification", model, test, "y", features, train=train, seed=SEED)
    except Exception as err:  # noqa: BLE001 - the suite is another engineer's, still moving
        return {
            "suite_vs_bare_metrics": None,
            "bare_metrics_s": round(bare, 3),
            "suite_note": f"run_suite failed: {type(err).__name__}: {err}",
        }
    suite = time.perf_counter() - t0
    return {
        "suite_s": round(suite, 3),
        "bare_metrics_s": round(bare, 3),
        "suite_vs_bare_metrics": round(suite / bare, 1),
        "eval_rows": len(test),
    }


def bench_tuning(frame: pd.DataFrame, trials: int) -> dict[str, Any]:
    from mlteam.training import executors, tuning

    features = [c for c in frame.columns if c != "y"]
    out: dict[str, Any] = {}
    best: dict[int, Any] = {}
    for workers in (1, 2):
        ex = executors.make("local", frame, workers)
        try:
            t0 = time.perf_counter()
            if hasattr(ex, "warm"):
                ex.warm()
            out[f"pool_startup_{workers}_workers_s"] = round(time.perf_counter() - t0, 3)
            res = tuning.tune(
                "lightgbm",
                "classification",
                frame,
                features,
                "y",
                executor=ex,
                trials=trials,
                minutes=None,
                cv=3,
                seed=SEED,
                prune=False,
            )
            out[f"tuning_{workers}_worker_s"] = round(time.perf_counter() - t0, 3)
            out[f"trials_only_{workers}_worker_s"] = round(
                out[f"tuning_{workers}_worker_s"] - out[f"pool_startup_{workers}_workers_s"], 3
            )
            best[workers] = [t["params"] for t in res["trials"]]
        finally:
            ex.close()
    out["tuning_speedup_2_workers"] = round(out["tuning_1_worker_s"] / out["tuning_2_worker_s"], 3)
    out["trials_only_speedup_2_workers"] = round(
        out["trials_only_1_worker_s"] / out["trials_only_2_worker_s"], 3
    )
    out["tuning_trials"] = trials
    out["tuning_rows"] = len(frame)
    out["tuning_same_trials"] = best[1] == best[2]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 rows instead of 200,000")
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="LightGBM threads for both fits in (a) (0: the library default; on a shared, "
        "loaded machine OpenMP threads contend and the default gives noise, not figures)",
    )
    args = ap.parse_args()
    rows = args.rows or (20_000 if args.quick else 200_000)
    frame = generate(rows)
    result: dict[str, Any] = {"bench": "training", "rows": rows, "features": 30}
    result.update(bench_recipe(frame, repeats=3 if args.quick else 5, threads=args.threads))
    result.update(bench_evaluation(frame.sample(min(rows, 50_000), random_state=SEED)))
    tune_rows = 10_000 if args.quick else 40_000
    # 10 trials: TPE's 5 seeded random start-up trials, then 5 proposed from them
    trials = 4 if args.quick else 10
    result.update(bench_tuning(frame.head(tune_rows).reset_index(drop=True), trials=trials))
    result["cpus"] = os.cpu_count()
    with contextlib.suppress(OSError):
        result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
