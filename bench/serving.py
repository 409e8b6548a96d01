"""Serving throughput and latency: mlteam against `mlflow models serve`, same model, same load.

    python bench/serving.py            # full run
    python bench/serving.py --quick    # smoke run, under a minute

One scikit-learn model (GradientBoostingClassifier on breast_cancer, 30 features) is served by
`mlflow models serve --env-manager local` (one uvicorn worker, its default) and by
`mlteam server` (one uvicorn worker, prediction logging on), both on loopback. Both are driven
by the same load generator (`drive`: threads, one keep-alive httpx client each) with the same
MLflow scoring body (`dataframe_split`) to each server's `/invocations`, so only the URL and the
token differ. Measured per server: requests/s and p50/p99 latency of single-row requests at
concurrency 1 and 8, and rows/s of 1,000-row requests at concurrency 1; plus the in-process
limit (`model.predict` on a DataFrame of 1 and 1,000 rows).

Not measured (yet): the LightGBM model of the issue (lightgbm is not installed here), and
`logging_cost` (mlteam has no switch to turn the prediction log off; reported as null).

Progress goes to stderr; one JSON line to stdout. The bench asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pandas as pd


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def drive(
    url: str, body: bytes, headers: dict, concurrency: int, seconds: float, rows: int
) -> dict:
    """Send `body` from `concurrency` threads for `seconds`; latencies of every request."""
    lat: list[float] = []
    errors = [0]
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def worker() -> None:
        mine: list[float] = []
        with httpx.Client(headers={**headers, "Content-Type": "application/json"}) as c:
            while time.monotonic() < stop:
                t = time.perf_counter()
                r = c.post(url, content=body)
                mine.append(time.perf_counter() - t)
                if r.status_code != 200:
                    with lock:
                        errors[0] += 1
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    lat.sort()
    n = len(lat)
    return {
        "requests": n,
        "errors": errors[0],
        "rps": n / elapsed,
        "rows_per_s": n * rows / elapsed,
        "p50_ms": lat[n // 2] * 1000 if n else None,
        "p99_ms": lat[min(n - 1, int(n * 0.99))] * 1000 if n else None,
    }


def split_body(frame: pd.DataFrame) -> bytes:
    return json.dumps(
        {"dataframe_split": {"columns": list(frame.columns), "data": frame.values.tolist()}}
    ).encode()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller, under a minute")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    seconds = 3.0 if args.quick else 10.0

    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier

    tmp = Path(tempfile.mkdtemp(prefix="mlteam-bench-serving-"))
    procs: list[subprocess.Popen] = []
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    try:
        data = load_breast_cancer(as_frame=True)
        X, y = data.data, data.target
        model = GradientBoostingClassifier(random_state=0).fit(X, y)
        one, many = X.head(1), X.sample(1000, replace=True, random_state=0)

        # in-process limit
        def per_call(f, n: int) -> float:
            f()
            t = time.perf_counter()
            for _ in range(n):
                f()
            return (time.perf_counter() - t) / n

        inproc_1 = per_call(lambda: model.predict(one), 200 if args.quick else 1000)
        inproc_1000 = per_call(lambda: model.predict(many), 20 if args.quick else 100)
        log(f"in-process: 1 row {inproc_1 * 1e6:.0f} µs, 1000 rows {1000 / inproc_1000:.0f} rows/s")

        # MLflow
        import mlflow.sklearn
        from mlflow.models import infer_signature

        mdir = tmp / "mlflow-model"
        mlflow.sklearn.save_model(
            model,
            str(mdir),
            signature=infer_signature(X, y),
            skops_trusted_types=["sklearn.tree._tree.Tree"],  # our own file
        )
        mport = free_port()
        mproc = subprocess.Popen(
            [bin_dir + "/mlflow", "models", "serve", "-m", str(mdir), "-p", str(mport)]
            + ["--env-manager", "local", "-h", "127.0.0.1"],
            env=env,
            stdout=open(tmp / "mlflow.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        procs.append(mproc)

        # mlteam: the same fitted model, logged as a run's model and registered
        from skops.io import dump

        home = tmp / "mlteam"
        home.mkdir()
        tport = free_port()
        tenv = {**env, "MLTEAM_HOME": str(home)}
        tproc = subprocess.Popen(
            [sys.executable, "-m", "mlteam.cli.main", "server", "--port", str(tport)]
            + ["--log-level", "warning"],
            env=tenv,
            stdout=open(tmp / "mlteam.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        procs.append(tproc)
        turl = f"http://127.0.0.1:{tport}"
        wait_up(turl + "/api/v1/health", tproc)
        out = subprocess.run(
            [sys.executable, "-m", "mlteam.cli.main", "users", "create", "bench@x.org", "--admin"],
            env=tenv,
            capture_output=True,
            text=True,
            check=True,
        )
        token = out.stdout.strip().splitlines()[-1]
        from mlteam import Client

        c = Client(turl, token)
        c.create_project("bench")
        run = c.create_run("bench", "serving")
        dump(model, str(tmp / "model.skops"))
        sig = {
            "inputs": [{"name": col, "type": "double"} for col in X.columns],
            "output": {"name": "target", "type": "long", "classes": [0, 1]},
            "task": "classification",
        }
        (tmp / "mlteam-model.json").write_text(
            json.dumps({"format": "sklearn-skops", "signature": sig})
        )
        c.log_artifact(run["id"], tmp / "model.skops", "model/model.skops")
        c.log_artifact(run["id"], tmp / "mlteam-model.json", "model/mlteam-model.json")
        c.finish_run(run["id"])
        c.register("bench", "gb", run["id"])
        c.deploy("bench", "gb", "gb", 1)

        murl = f"http://127.0.0.1:{mport}"
        wait_up(murl + "/ping", mproc)
        targets = {
            "mlflow": (murl + "/invocations", {}),
            "mlteam": (
                turl + "/api/v1/deployments/gb/invocations",
                {"Authorization": f"Bearer {token}"},
            ),
        }
        b1, b1000 = split_body(one), split_body(many)
        res: dict[str, dict] = {}
        for name, (url, headers) in targets.items():
            drive(url, b1, headers, 2, 1.0, 1)  # warm up
            res[name] = {
                "c1": drive(url, b1, headers, 1, seconds, 1),
                "c8": drive(url, b1, headers, 8, seconds, 1),
                "rows1000": drive(url, b1000, headers, 1, seconds, 1000),
            }
            log(f"{name}: {json.dumps(res[name])}")
        m, t = res["mlflow"], res["mlteam"]
        print(
            json.dumps(
                {
                    "bench": "serving",
                    "quick": args.quick,
                    "model": "GradientBoostingClassifier breast_cancer (30 features)",
                    "mlflow": m,
                    "mlteam": t,
                    "inprocess_1row_us": inproc_1 * 1e6,
                    "inprocess_1000rows_rows_per_s": 1000 / inproc_1000,
                    "c1_rps_ratio": t["c1"]["rps"] / m["c1"]["rps"],
                    "c8_rps_ratio": t["c8"]["rps"] / m["c8"]["rps"],
                    "c8_p99_ms": t["c8"]["p99_ms"],
                    "rows1000_ratio": t["rows1000"]["rows_per_s"] / m["rows1000"]["rows_per_s"],
                    "batch_vs_inprocess": t["rows1000"]["rows_per_s"] / (1000 / inproc_1000),
                    "logging_cost": None,
                }
            )
        )
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
