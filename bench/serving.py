"""Serving throughput and latency: mlteam against `mlflow models serve`, same models, same load.

    python bench/serving.py            # full run (5 rounds of 4 s per measurement, ~7 min)
    python bench/serving.py --quick    # smoke: GradientBoosting only, 1 round of 1 s, < 1 min

Two scikit-learn-API models, each fitted once here: GradientBoostingClassifier on breast_cancer
(30 features) and LGBMClassifier (LightGBM) on a 30-feature synthetic set (make_classification,
5,000 rows). Each is served by `mlflow models serve --env-manager local -w N` (one server per
model) and by `mlteam server` with `MLTEAM_SERVER_WORKERS=N`, all on loopback: N uvicorn
worker processes each, `--workers` (default 2, the machine's cores; MLflow's own default is 1).
mlteam gets each model as training logs it: `model.skops` plus, because the ONNX export
answers the same (labels equal on every training row, checked here as training checks
it), `model.onnx` with the meta of the contract, so mlteam serves it through ONNX Runtime; the
JSON line says which runtime served (`runtime`).

Two mlteam servers share one home (database and artifacts): one with the prediction log on
(the default, the figures that count) and one with `MLTEAM_PREDICTION_LOG=false`, the same
deployment driven the same way: `logging_cost` = 1 - (req/s with the log) / (req/s without),
single-row requests at concurrency 8 (`logging_cost_rows1000`: the same for 1,000-row requests).

All servers are driven by the same load generator (`drive`: asyncio keep-alive HTTP/1.1
connections on raw sockets, the request's bytes built once, in this process: it shares the two
CPUs with the servers, ~0.1 ms of CPU per single-row request where the threads with an httpx
client each that it replaced took ~0.4) with the same MLflow scoring body (`dataframe_split`)
to each server's `/invocations`; only the URL and the token differ. Each figure also carries
the server's CPU per request (`server_cpu_ms`: user + system time of the server's processes
from /proc, over the measurement) and the generator's own (`generator_cpu_ms`). Measured per server and model: requests/s and p50/p99 latency of single-row requests at
concurrency 1 and 8, and rows/s of 1,000-row requests at concurrency 1; plus the in-process
limit (`model.predict` on a DataFrame of 1 and 1,000 rows, and the ONNX session's run), timed
once every server is up and idle, and the 1,000-row native limit again in every round, just
before that round's 1,000-row requests. `batch_vs_inprocess` is mlteam's 1,000-row rows/s over
the native limit (the issue's figure), `batch_vs_onnx_inprocess` over the ONNX session's.

The full run makes 5 rounds (`--rounds`) of every measurement, the servers taking turns
(reversed every other round) so a shared machine's changing load falls on all of them alike;
each figure is the round with the median req/s, and every round's req/s is kept
(`rps_rounds`). The two ratios of mlteam against itself, `batch_vs_inprocess` (against the limit timed in the same
round) and `logging_cost` (log on against off in the same round), are taken within each round
and their median reported, every round's kept (`..._rounds`): this VM's speed drifts by a
fifth and more from minute to minute, and both sides of a ratio taken a minute apart do not.

Progress goes to stderr; one JSON line to stdout: the headline keys (`c8_rps_ratio`,
`c8_p99_ms`, `logging_cost`, `batch_vs_inprocess`) are the GradientBoosting model's, the same
keys per model under `models`, and the 1-minute load average at each measurement. The bench
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

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


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process `pid` and its live descendants
    (uvicorn workers, the server `mlflow models serve` starts), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        used[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += used.get(p, 0.0)
        todo.extend(c for c, parent in parents.items() if parent == p)
    return total


async def _connection(
    host: str, port: int, request: bytes, stop: float, lat: list[float], errors: list[int]
) -> None:
    """One keep-alive HTTP/1.1 connection sending `request` until `stop` (monotonic)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.monotonic() < stop:
            t = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t)
            if head[9:12] != b"200":
                errors[0] += 1
    finally:
        writer.close()


def drive(
    url: str,
    body: bytes,
    headers: dict,
    concurrency: int,
    seconds: float,
    rows: int,
    pid: int | None = None,
) -> dict:
    """Send `body` on `concurrency` keep-alive connections for `seconds`; latencies of every
    request, and the server's CPU per request when its `pid` is given.

    The generator is asyncio on raw sockets, the request's bytes built once: ~0.1 ms of this
    process's CPU per single-row request, against ~0.4 ms for the threads with an httpx client
    each it replaced. It shares the two CPUs with the servers; the same generator drives every
    server, MLflow's and mlteam's alike.
    """
    u = urlsplit(url)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Type: application/json\r\n"
        f"{head}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    lat: list[float] = []
    errors = [0]

    async def run() -> None:
        stop = time.monotonic() + seconds
        await asyncio.gather(
            *(
                _connection(u.hostname or "127.0.0.1", u.port or 80, request, stop, lat, errors)
                for _ in range(concurrency)
            )
        )

    cpu0 = tree_cpu(pid) if pid else 0.0
    own0 = time.process_time()
    started = time.monotonic()
    asyncio.run(run())
    elapsed = time.monotonic() - started
    own = time.process_time() - own0
    cpu = tree_cpu(pid) - cpu0 if pid else None
    lat.sort()
    n = len(lat)
    return {
        "requests": n,
        "errors": errors[0],
        "rps": n / elapsed,
        "rows_per_s": n * rows / elapsed,
        "p50_ms": lat[n // 2] * 1000 if n else None,
        "p99_ms": lat[min(n - 1, int(n * 0.99))] * 1000 if n else None,
        # CPU per request: the server's (all its processes) and the generator's own
        "server_cpu_ms": cpu * 1000 / n if n and cpu is not None else None,
        "generator_cpu_ms": own * 1000 / n if n else None,
    }


def split_body(frame: pd.DataFrame) -> bytes:
    return json.dumps(
        {"dataframe_split": {"columns": list(frame.columns), "data": frame.values.tolist()}}
    ).encode()


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def per_call(f, n: int) -> float:
    f()
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n


def onnx_export(model, columns: list[str]) -> bytes | None:
    """The contract's ONNX graph (one float [N, 1] input per feature, label then
    probabilities, zipmap off): the converter's single-input graph with a Concat in front."""
    import onnx
    from onnx import TensorProto, helper

    n = len(columns)
    if type(model).__module__.startswith("lightgbm"):
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        proto = convert_lightgbm(
            model, initial_types=[("X", FloatTensorType([None, n]))], zipmap=False
        )
    else:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        proto = convert_sklearn(
            model,
            initial_types=[("X", FloatTensorType([None, n]))],
            options={type(model): {"zipmap": False}},
        )
    graph = proto.graph
    graph.input.remove(next(i for i in graph.input if i.name == "X"))
    names = [f"f{i}" for i in range(n)]
    for name in names:
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 1]))
    graph.node.insert(0, helper.make_node("Concat", names, ["X"], axis=1))
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def fit_models() -> dict[str, dict]:
    import lightgbm
    from sklearn.datasets import load_breast_cancer, make_classification
    from sklearn.ensemble import GradientBoostingClassifier

    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target
    gb = GradientBoostingClassifier(random_state=0).fit(X, y)
    Xs, ys = make_classification(n_samples=5000, n_features=30, n_informative=15, random_state=0)
    Xl = pd.DataFrame(Xs, columns=[f"x{i}" for i in range(30)])
    lgb = lightgbm.LGBMClassifier(n_estimators=100, random_state=0, verbose=-1).fit(Xl, ys)
    return {
        "gb": {
            "label": "GradientBoostingClassifier breast_cancer (30 features)",
            "model": gb,
            "X": X,
            "y": y,
        },
        "lgbm": {
            "label": "LGBMClassifier make_classification (30 features, 5,000 rows)",
            "model": lgb,
            "X": Xl,
            "y": pd.Series(ys),
        },
    }


def export_checked(m: dict) -> tuple[bytes, bool]:
    """The ONNX graph, and whether its labels equal the native model's on every training row
    (the check training makes before it keeps model.onnx). Keeps the session for `limits`."""
    import numpy as np
    import onnxruntime as ort

    model, X = m["model"], m["X"]
    graph = onnx_export(model, list(X.columns))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # onnxmltools declares the label's shape as [1]: a warning a call
    m["sess"] = sess = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])

    def feeds(frame: pd.DataFrame) -> dict:
        v = frame.to_numpy(np.float32)
        return {f"f{i}": v[:, i : i + 1] for i in range(v.shape[1])}

    m["feeds"] = feeds
    return graph, bool((sess.run(["label"], feeds(X))[0] == model.predict(X)).all())


def inprocess_rows(m: dict, n: int) -> float:
    """The native limit now: rows/s of `model.predict` on the 1,000-row DataFrame."""
    model, many = m["model"], m["many"]
    return 1000 / per_call(lambda: model.predict(many), n)


def limits(key: str, m: dict, quick: bool) -> None:
    """The in-process limits, timed once every server is up and idle: the native predict on a
    DataFrame (the issue's limit) and the ONNX session's own run (the faster one)."""
    model, one, many, sess = m["model"], m["one"], m["many"], m["sess"]
    m["inproc_1"] = per_call(lambda: model.predict(one), 200 if quick else 1000)
    m["inproc_1000"] = per_call(lambda: model.predict(many), 20 if quick else 100)
    f1, f1000 = m["feeds"](one), m["feeds"](many)
    m["onnx_1"] = per_call(lambda: sess.run(["label"], f1), 200 if quick else 1000)
    m["onnx_1000"] = per_call(lambda: sess.run(["label"], f1000), 20 if quick else 100)
    m["limits_loadavg"] = loadavg()
    log(
        f"{key} in-process: 1 row {m['inproc_1'] * 1e6:.0f} µs, "
        f"1000 rows {1000 / m['inproc_1000']:.0f} rows/s; ONNX 1 row "
        f"{m['onnx_1'] * 1e6:.0f} µs, {1000 / m['onnx_1000']:.0f} rows/s"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller, under a minute")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument(
        "--workers",
        type=int,
        default=2,
        help="server processes of every server, mlteam's and MLflow's alike (default 2)",
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds of every measurement in a full run (default 5; median reported): three "
        "left logging_cost at the mercy of one noisy round",
    )
    args = ap.parse_args()
    seconds = 1.0 if args.quick else 4.0
    rounds = 1 if args.quick else args.rounds
    warm = 0.5 if args.quick else 1.0

    tmp = Path(tempfile.mkdtemp(prefix="mlteam-bench-serving-"))
    procs: list[subprocess.Popen] = []
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    try:
        # mlteam: two servers on one home, the prediction log on (default) and off; the first
        # starts now (it creates the database) while the models are fitted
        home = tmp / "mlteam"
        home.mkdir()
        tenv = {**env, "MLTEAM_HOME": str(home)}
        servers: dict[str, tuple[str, subprocess.Popen]] = {}

        def start_mlteam(mode: str, extra: dict[str, str]) -> None:
            port = free_port()
            proc = subprocess.Popen(
                [sys.executable, "-m", "mlteam.cli.main", "server", "--port", str(port)]
                + ["--log-level", "warning"],
                env={**tenv, "MLTEAM_SERVER_WORKERS": str(args.workers), **extra},
                stdout=open(tmp / f"mlteam-{mode}.log", "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
            procs.append(proc)
            servers[mode] = (f"http://127.0.0.1:{port}", proc)

        start_mlteam("on", {})
        models = fit_models()
        if args.quick:  # the smoke run: the GradientBoosting model only
            models = {"gb": models["gb"]}

        # MLflow: one `mlflow models serve` per model
        import mlflow.sklearn
        from mlflow.models import infer_signature

        for key, m in models.items():
            mdir = tmp / f"mlflow-{key}"
            mlflow.sklearn.save_model(
                m["model"],
                str(mdir),
                signature=infer_signature(m["X"], m["y"]),
                serialization_format="cloudpickle",  # our own fitted model
            )
            m["mport"] = free_port()
            m["mproc"] = subprocess.Popen(
                [bin_dir + "/mlflow", "models", "serve", "-m", str(mdir), "-p", str(m["mport"])]
                + ["--env-manager", "local", "-h", "127.0.0.1", "-w", str(args.workers)],
                env=env,
                stdout=open(tmp / f"mlflow-{key}.log", "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
            procs.append(m["mproc"])

        wait_up(servers["on"][0] + "/api/v1/health", servers["on"][1])
        start_mlteam("off", {"MLTEAM_PREDICTION_LOG": "false"})
        out = subprocess.run(
            [sys.executable, "-m", "mlteam.cli.main", "users", "create", "bench@x.org", "--admin"],
            env=tenv,
            capture_output=True,
            text=True,
            check=True,
        )
        token = out.stdout.strip().splitlines()[-1]
        from skops.io import dump

        from mlteam import Client

        c = Client(servers["on"][0], token)
        c.create_project("bench")
        for key, m in models.items():
            model, X = m["model"], m["X"]
            cols = list(X.columns)
            one, many = X.head(1), X.sample(1000, replace=True, random_state=0)
            m["one"], m["many"] = one, many
            graph, same = export_checked(m)
            folder = tmp / f"mlteam-{key}"
            folder.mkdir()
            dump(model, str(folder / "model.skops"))
            sig = {
                "inputs": [{"name": col, "type": "double"} for col in cols],
                "output": {"name": "target", "type": "long", "classes": [0, 1]},
                "task": "classification",
            }
            meta: dict = {"format": "sklearn-skops", "signature": sig, "onnx": None}
            if same:
                (folder / "model.onnx").write_bytes(graph)
                meta["onnx"] = {
                    "file": "model.onnx",
                    "max_abs_diff": 0.0,
                    "rows_checked": len(X),
                    "inputs": [
                        {"name": f"f{i}", "feature": col, "type": "float"}
                        for i, col in enumerate(cols)
                    ],
                    "outputs": {"label": "label", "probabilities": "probabilities"},
                }
            else:
                meta["onnx_note"] = "the ONNX export's labels differ from the native model's"
            (folder / "mlteam-model.json").write_text(json.dumps(meta))
            run = c.create_run("bench", f"serving-{key}")
            for f in ("model.skops", "mlteam-model.json", "model.onnx"):
                if (folder / f).exists():
                    c.log_artifact(run["id"], folder / f, f"model/{f}")
            c.finish_run(run["id"])
            c.register("bench", key, run["id"])
            c.deploy("bench", key, key, 1)
            m["runtime"] = c.deployment(key)["routes"][0]["runtime"]

        auth = {"Authorization": f"Bearer {token}"}
        wait_up(servers["off"][0] + "/api/v1/health", servers["off"][1])
        for url, _ in servers.values():  # every server loads both models before it is timed
            for key in models:
                httpx.get(f"{url}/v2/models/{key}/ready", headers=auth, timeout=120)
        for m in models.values():
            wait_up(f"http://127.0.0.1:{m['mport']}/ping", m["mproc"])
        for key, m in models.items():
            limits(key, m, args.quick)
        res: dict[str, dict] = {}
        for key, m in models.items():
            murl = f"http://127.0.0.1:{m['mport']}"
            b1, b1000 = split_body(m["one"]), split_body(m["many"])
            targets = {
                "mlflow": (murl + "/invocations", {}, m["mproc"].pid),
                "mlteam": (
                    servers["on"][0] + f"/api/v1/deployments/{key}/invocations",
                    auth,
                    servers["on"][1].pid,
                ),
                "mlteam_nolog": (
                    servers["off"][0] + f"/api/v1/deployments/{key}/invocations",
                    auth,
                    servers["off"][1].pid,
                ),
            }
            for url, headers, _ in targets.values():
                # warm up on fresh connections, four times over: a worker process loads a
                # model at its first request for it (its event loop busy meanwhile, so the
                # other worker takes the new connections), and every worker must have loaded
                # it before the figures are taken
                for _ in range(4):
                    drive(url, b1, headers, 8, warm / 2, 1)
            # rounds of every measurement, the servers taking turns (in reverse order every
            # other round) so the machine's load drifts over all of them alike; each figure is
            # the round with the median throughput, every round's throughput kept
            samples: dict[str, dict[str, list[dict]]] = {name: {} for name in targets}
            inproc_rounds: list[float] = []  # the native limit, rows/s, timed in each round
            for rnd in range(rounds):
                order = list(targets) if rnd % 2 == 0 else list(reversed(targets))
                for what in ("c1", "c8", "rows1000"):
                    body, conc, rows = (
                        (b1000, 1, 1000) if what == "rows1000" else (b1, int(what[1]), 1)
                    )
                    if what == "rows1000":
                        inproc_rounds.append(inprocess_rows(m, 20 if args.quick else 100))
                    for name in order:
                        if name == "mlteam_nolog" and what == "c1":
                            continue
                        url, headers, pid = targets[name]
                        got = drive(url, body, headers, conc, seconds, rows, pid)
                        got["loadavg"] = loadavg()
                        samples[name].setdefault(what, []).append(got)
            r: dict[str, dict] = {}
            for name, per in samples.items():
                r[name] = {}
                for what, runs in per.items():
                    ranked = sorted(runs, key=lambda x: x["rps"])
                    r[name][what] = {
                        **ranked[len(ranked) // 2],
                        "rps_rounds": [round(x["rps"], 1) for x in runs],
                    }
                log(f"{key} {name}: {json.dumps(r[name])}")
            mf, t = r["mlflow"], r["mlteam"]
            # ratios within each round, then their median: the machine's speed drifts from
            # minute to minute (the native limit alone moved between 260,000 and 470,000
            # rows/s in a day), and both sides of a ratio taken in one round drift alike
            on_rows = [x["rows_per_s"] for x in samples["mlteam"]["rows1000"]]
            batch_rounds = [a / b for a, b in zip(on_rows, inproc_rounds, strict=True)]
            cost_rounds = [
                1 - a["rps"] / b["rps"]
                for a, b in zip(samples["mlteam"]["c8"], samples["mlteam_nolog"]["c8"], strict=True)
            ]
            cost_rows_rounds = [
                1 - a["rps"] / b["rps"]
                for a, b in zip(
                    samples["mlteam"]["rows1000"], samples["mlteam_nolog"]["rows1000"], strict=True
                )
            ]
            res[key] = {
                "model": m["label"],
                "runtime": m["runtime"],
                **r,
                "inprocess_1row_us": m["inproc_1"] * 1e6,
                "inprocess_1000rows_rows_per_s": statistics.median(inproc_rounds),
                "inprocess_1000rows_rounds": [round(x) for x in inproc_rounds],
                "inprocess_1000rows_idle_rows_per_s": 1000 / m["inproc_1000"],
                "onnx_inprocess_1row_us": m["onnx_1"] * 1e6,
                "onnx_inprocess_1000rows_rows_per_s": 1000 / m["onnx_1000"],
                "inprocess_loadavg": m["limits_loadavg"],
                "c1_rps_ratio": t["c1"]["rps"] / mf["c1"]["rps"],
                "c8_rps_ratio": t["c8"]["rps"] / mf["c8"]["rps"],
                "c8_p99_ms": t["c8"]["p99_ms"],
                "rows1000_ratio": t["rows1000"]["rows_per_s"] / mf["rows1000"]["rows_per_s"],
                "batch_vs_inprocess": statistics.median(batch_rounds),
                "batch_vs_inprocess_rounds": [round(x, 3) for x in batch_rounds],
                # against the faster limit: the ONNX session's own run in-process
                "batch_vs_onnx_inprocess": t["rows1000"]["rows_per_s"] / (1000 / m["onnx_1000"]),
                "logging_cost": statistics.median(cost_rounds),
                "logging_cost_rounds": [round(x, 3) for x in cost_rounds],
                "logging_cost_rows1000": statistics.median(cost_rows_rounds),
                "logging_cost_rows1000_rounds": [round(x, 3) for x in cost_rows_rounds],
            }
        head = res["gb"]
        keys = ("c8_rps_ratio", "c8_p99_ms", "logging_cost", "batch_vs_inprocess")
        print(
            json.dumps(
                {
                    "bench": "serving",
                    "quick": args.quick,
                    "workers": args.workers,
                    **{k: head[k] for k in keys},
                    "models": res,
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
