"""Serving: revisions (canary, shadow, rollback), the production alias rule, the inference
protocols (native, Open Inference v2, MLflow invocations), input checks, metrics, and — against
real server processes — the tritonclient client, a switch under load, and the prediction log
surviving SIGTERM.
"""

from __future__ import annotations

import glob
import json
import os
import threading
import time
import uuid
from pathlib import Path

import duckdb
import httpx
import numpy as np
import pandas as pd
import pytest

from mlteam import Client, Forbidden, InvalidInput
from mlteam.client.bridge import SyncBridge
from tests.conftest import uid


@pytest.fixture(scope="module")
def srv(admin: Client, cancer_csv: Path, app, platform) -> dict:
    """A project with three versions of `clf`: v1 and v2 the same model, v3 the baseline."""
    slug = uid("srv")
    admin.create_project(slug)
    admin.upload(slug, "cancer", cancer_csv)
    job = admin.wait(admin.train(slug, "cancer", "target", register_as="clf")["id"], timeout=300)
    baseline = next(r for r in job["result"]["runs"] if r["kind"] == "baseline")
    admin.register(slug, "clf", job["result"]["best_run_id"])  # v2
    admin.register(slug, "clf", baseline["run_id"])  # v3: always the majority class
    frame = pd.read_csv(cancer_csv).drop(columns="target")
    token = admin._http.headers["Authorization"]
    raw = httpx.Client(
        base_url="http://testserver",
        transport=SyncBridge(httpx.ASGITransport(app)),
        headers={"Authorization": token},
    )
    yield {"slug": slug, "rows": frame.head(20).to_dict(orient="records"), "raw": raw}
    raw.close()


def _dep(admin: Client, srv: dict, **kw) -> str:
    name = uid("dep")
    admin.deploy(srv["slug"], name, "clf", 1, **kw)
    return name


def _log_rows(platform, dep: dict, want: int, timeout: float = 10.0) -> pd.DataFrame:
    deadline = time.monotonic() + timeout
    while True:
        table = platform.predictions.read(dep["id"]).to_pandas()
        if len(table) >= want or time.monotonic() > deadline:
            return table
        time.sleep(0.05)


# -- revisions ---------------------------------------------------------------------------------


def test_canary_splits_by_weight_and_a_request_id_sticks(admin: Client, srv: dict) -> None:
    name = _dep(admin, srv)
    d = admin.revise(
        name,
        [
            {"model": "clf", "version": 1, "weight": 80, "mode": "live"},
            {"model": "clf", "version": 2, "weight": 20, "mode": "live"},
        ],
    )
    assert d["revision"] == 2 and [r["weight"] for r in d["routes"]] == [80, 20]
    row = [srv["rows"][0]]
    seen = [admin.predict(name, row)["version"] for _ in range(150)]
    assert set(seen) == {1, 2} and 5 <= seen.count(2) <= 60
    for rid in ("a", "b", "c", "d"):
        first = admin.predict(name, row, request_id=rid)["version"]
        assert all(admin.predict(name, row, request_id=rid)["version"] == first for _ in range(5))


def test_shadow_answers_are_logged_never_returned(admin: Client, srv: dict, platform) -> None:
    name = _dep(admin, srv)
    d = admin.revise(
        name,
        [
            {"model": "clf", "version": 1, "weight": 100, "mode": "live"},
            {"model": "clf", "version": 3, "mode": "shadow"},
        ],
    )
    out = admin.predict(name, srv["rows"][:5])
    assert out["version"] == 1 and len(out["predictions"]) == 5
    log = _log_rows(platform, d, 10)
    assert sorted(log["mode"].value_counts().items()) == [("live", 5), ("shadow", 5)]
    shadow = log[log["mode"] == "shadow"]
    assert set(shadow["prediction_id"]) == {p["id"] for p in out["predictions"]}
    assert shadow["model_version_id"].nunique() == 1
    assert (
        shadow["model_version_id"].iloc[0] != log[log["mode"] == "live"]["model_version_id"].iloc[0]
    )


def test_rollback_serves_the_previous_revision_and_is_audited(admin: Client, srv: dict) -> None:
    name = _dep(admin, srv)
    with pytest.raises(InvalidInput) as none:
        admin.rollback(name)
    assert none.value.details["field"] == "revision"
    admin.revise(name, [{"model": "clf", "version": 2, "weight": 100}])
    assert admin.predict(name, srv["rows"][:1])["version"] == 2
    d = admin.rollback(name)
    assert d["revision"] == 3 and d["routes"][0]["version"] == 1
    assert admin.predict(name, srv["rows"][:1])["version"] == 1
    revs = admin.revisions(name)
    assert [(r["revision"], r["current"]) for r in revs] == [(3, True), (2, False), (1, False)]
    events = [e for e in admin.audit(srv["slug"], limit=500) if e["target"] == f"deployment:{name}"]
    actions = sorted(e["action"] for e in events)
    assert actions == ["deployment.revise", "deployment.revise", "deployment.rollback"]
    rb = next(e for e in events if e["action"] == "deployment.rollback")
    assert rb["detail"]["rolled_back_to"] == 1 and rb["detail"]["previous_revision"] == 2


def test_only_devops_and_owners_change_deployments(
    admin: Client, srv: dict, new_user, client_for
) -> None:
    name = _dep(admin, srv)
    members = {}
    for role in ("devops", "data_scientist"):
        email, token = new_user(prefix=role)
        admin.add_member(srv["slug"], email, role)
        members[role] = client_for(token)
    route = [{"model": "clf", "version": 2, "weight": 100}]
    with pytest.raises(Forbidden):
        members["data_scientist"].revise(name, route)
    with pytest.raises(Forbidden):
        members["data_scientist"].rollback(name)
    assert members["devops"].revise(name, route)["revision"] == 2
    assert members["devops"].rollback(name)["routes"][0]["version"] == 1


def test_production_takes_only_versions_holding_the_alias(
    admin: Client, srv: dict, new_user, client_for
) -> None:
    name = uid("prod")
    with pytest.raises(InvalidInput) as bad:
        admin.deploy(srv["slug"], name, "clf", 2, stage="production")
    assert bad.value.details["field"] == "routes[0].version"
    assert "production" in bad.value.message
    email, token = new_user(prefix="qa")
    admin.add_member(srv["slug"], email, "qa")
    req = admin.request_promotion(srv["slug"], "clf", 2, "good enough")
    client_for(token).approve_promotion(srv["slug"], req["number"], "qa", "tests green")
    d = admin.deploy(srv["slug"], name, "clf", 2, stage="production")
    assert d["stage"] == "production"
    # deploying again without a stage keeps production (and its alias rule)
    assert admin.deploy(srv["slug"], name, "clf", 2)["stage"] == "production"
    with pytest.raises(InvalidInput):
        admin.deploy(srv["slug"], name, "clf", 3)
    # a shadow needs no alias; a live canary does
    shadow = [
        {"model": "clf", "version": 2, "weight": 100},
        {"model": "clf", "version": 3, "mode": "shadow"},
    ]
    assert admin.revise(name, shadow)["revision"] == 3
    with pytest.raises(InvalidInput) as canary:
        admin.revise(
            name,
            [
                {"model": "clf", "version": 2, "weight": 95},
                {"model": "clf", "version": 3, "weight": 5},
            ],
        )
    assert canary.value.details["field"] == "routes[1].version"
    # staging takes any version
    assert admin.deploy(srv["slug"], uid("stg"), "clf", 3)["stage"] == "staging"


@pytest.mark.parametrize(
    ("routes", "field"),
    [
        ([], "routes"),
        ([{"model": "clf", "version": 1, "weight": 60}], "routes"),
        ([{"model": "clf", "version": 1, "weight": 100, "mode": "dark"}], "routes[0].mode"),
        ([{"model": "clf", "version": 1, "weight": 101}], "routes[0].weight"),
        ([{"model": "clf", "weight": 100}], "routes[0].version"),
        (
            [
                {"model": "clf", "version": 1, "weight": 50},
                {"model": "clf", "version": 1, "weight": 50},
            ],
            "routes[1].version",
        ),
        ([{"model": "clf", "version": 1, "weight": 100, "extra": 1}], "routes[0]"),
    ],
)
def test_bad_routes_are_400_naming_the_field(admin: Client, srv: dict, routes, field) -> None:
    name = _dep(admin, srv)
    with pytest.raises(InvalidInput) as bad:
        admin.revise(name, routes)
    assert bad.value.details["field"] == field
    assert admin.deployment(name)["revision"] == 1


# -- Open Inference Protocol v2 ------------------------------------------------------------------


def _columns(srv: dict) -> list[str]:
    return list(srv["rows"][0])


def test_oip_health_metadata_and_infer(admin: Client, srv: dict) -> None:
    name, raw, rows = _dep(admin, srv), srv["raw"], srv["rows"][:3]
    assert raw.get("/v2/health/live").json() == {"live": True}
    assert raw.get("/v2/health/ready").status_code == 200
    meta = raw.get(f"/v2/models/{name}").json()
    assert meta["name"] == name and meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == _columns(srv)
    assert all(i["datatype"] == "FP64" for i in meta["inputs"])
    assert raw.get(f"/v2/models/{name}/ready").status_code == 200
    expected = [p["output"] for p in admin.predict(name, rows)["predictions"]]

    per_column = {
        "id": "req-1",
        "inputs": [
            {"name": c, "datatype": "FP64", "shape": [3], "data": [r[c] for r in rows]}
            for c in _columns(srv)
        ],
    }
    out = raw.post(f"/v2/models/{name}/infer", json=per_column).json()
    assert out["id"] == "req-1" and out["model_name"] == name and out["model_version"] == "1"
    assert out["outputs"][0]["shape"] == [3] and out["outputs"][0]["data"] == expected
    assert len(out["parameters"]["prediction_ids"].split(",")) == 3

    matrix = [[r[c] for c in _columns(srv)] for r in rows]
    single = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [3, 30], "data": matrix}]}
    # no Content-Type, as tritonclient sends it
    resp = raw.post(
        f"/v2/models/{name}/infer", content=httpx.Request("POST", "/", json=single).content
    )
    assert resp.status_code == 200 and resp.json()["outputs"][0]["data"] == expected


def _good(cols: list[str]) -> list[dict]:
    return [{"name": c, "datatype": "FP64", "shape": [1], "data": [1.0]} for c in cols]


BAD_OIP = [
    pytest.param(lambda g: g[1:], "mean radius", id="missing-column"),
    pytest.param(
        lambda g: [{**g[0], "datatype": "BYTES", "data": ["a"]}, *g[1:]],
        "mean radius",
        id="wrong-datatype",
    ),
    pytest.param(lambda g: [{**g[0], "shape": [2]}, *g[1:]], "mean radius", id="wrong-shape"),
    pytest.param(
        lambda g: [{"name": "x", "datatype": "FP64", "shape": [1, 29], "data": [[1.0] * 29]}],
        "[n, 30]",
        id="wrong-matrix-width",
    ),
    pytest.param(lambda g: [*g, {**g[0], "name": "nope"}], "nope", id="unknown-tensor"),
    pytest.param(lambda g: [], "inputs", id="no-inputs"),
    pytest.param(lambda g: [{**g[0], "data": None}, *g[1:]], "data", id="no-data"),
    pytest.param(
        lambda g: [{**g[0], "data": [None]}, *g[1:]][:0] + [{"name": "x"}], "datatype", id="no-type"
    ),
]


@pytest.mark.parametrize(("make", "says"), BAD_OIP)
def test_oip_bad_input_is_400_naming_the_field(admin: Client, srv: dict, make, says) -> None:
    name = srv.setdefault("oip_dep", _dep(admin, srv))
    body = {"inputs": make(_good(_columns(srv)))}
    resp = srv["raw"].post(f"/v2/models/{name}/infer", json=body)
    assert resp.status_code == 400, resp.text
    assert isinstance(resp.json()["error"], str) and says in resp.json()["error"]


def test_oip_errors_are_error_strings(admin: Client, srv: dict) -> None:
    raw = srv["raw"]
    assert raw.post("/v2/models/nope/infer", content=b"{").status_code == 400
    missing = raw.get("/v2/models/no-such-deployment")
    assert missing.status_code == 404 and isinstance(missing.json()["error"], str)
    anon = raw.post("/v2/models/x/infer", json={}, headers={"Authorization": ""})
    assert anon.status_code == 401 and isinstance(anon.json()["error"], str)


# -- MLflow scoring protocol -------------------------------------------------------------------


def test_mlflow_invocations_in_every_format(admin: Client, srv: dict) -> None:
    name, raw, rows = _dep(admin, srv), srv["raw"], srv["rows"][:4]
    cols = _columns(srv)
    expected = [p["output"] for p in admin.predict(name, rows)["predictions"]]
    url = f"/api/v1/deployments/{name}/invocations"
    bodies = {
        "dataframe_split": {"columns": cols, "data": [[r[c] for c in cols] for r in rows]},
        "dataframe_records": rows,
        "instances": rows,
        "inputs": {c: [r[c] for r in rows] for c in cols},
    }
    for key, payload in bodies.items():
        resp = raw.post(url, json={key: payload})
        assert resp.status_code == 200, (key, resp.text)
        assert resp.json() == {"predictions": expected}, key
    rows_in_order = raw.post(url, json={"instances": [[r[c] for c in cols] for r in rows]})
    assert rows_in_order.json() == {"predictions": expected}


def test_large_bodies_are_answered_and_checked_off_the_event_loop(admin: Client, srv: dict) -> None:
    # 600 rows (~150 KB, past fast.THREAD_MIN_BYTES) take the thread-pool path
    name, raw, rows = _dep(admin, srv), srv["raw"], srv["rows"] * 30
    cols = _columns(srv)
    expected = [p["output"] for p in admin.predict(name, rows)["predictions"]]
    data = [[r[c] for c in cols] for r in rows]
    split = raw.post(
        f"/api/v1/deployments/{name}/invocations",
        json={"dataframe_split": {"columns": cols, "data": data}},
    )
    assert split.status_code == 200 and split.json() == {"predictions": expected}
    # as pandas' to_dict(orient="split") gives it: an index, and the columns in another order
    reordered = {
        "index": list(range(len(data))),
        "columns": cols[::-1],
        "data": [row[::-1] for row in data],
    }
    again = raw.post(f"/api/v1/deployments/{name}/invocations", json={"dataframe_split": reordered})
    assert again.status_code == 200 and again.json() == {"predictions": expected}
    tensor = {"name": "x", "datatype": "FP64", "shape": [len(data), len(cols)], "data": data}
    infer = raw.post(f"/v2/models/{name}/infer", json={"inputs": [tensor]})
    assert infer.status_code == 200 and infer.json()["outputs"][0]["data"] == expected
    # a string, even one that reads as a number, or a boolean, in a column of numbers: a 400
    # naming the cell, whichever way the rows were read
    for wrong in ("x", "1.5", True, [1.5]):
        data[599][3] = wrong
        bad = raw.post(
            f"/api/v1/deployments/{name}/invocations",
            json={"dataframe_split": {"columns": cols, "data": data}},
        )
        assert bad.status_code == 400 and f"dataframe_split.data[599].{cols[3]}" in bad.text
    # as many values as rows x columns, but not a value per column in every row
    data[599][3] = 1.0
    data[598].append(data[599].pop())
    ragged = raw.post(
        f"/api/v1/deployments/{name}/invocations",
        json={"dataframe_split": {"columns": cols, "data": data}},
    )
    assert ragged.status_code == 400 and "dataframe_split.data[598]" in ragged.text


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"dataframe_records": [{}], "instances": [{}]}, 400, "exactly one"),
        ({}, 400, "exactly one"),
        ({"dataframe_records": [{"mean radius": 1.0}]}, 400, "missing column"),
        ({"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}, 400, "dataframe_split.data[0]"),
        ({"instances": [["x"] * 30]}, 400, "instances[0].mean radius"),
        ({"inputs": {"mean radius": [1.0]}}, 400, "missing column"),
    ],
)
def test_mlflow_invocations_refuse_bad_input(
    admin: Client, srv: dict, body, status: int, says: str
) -> None:
    name = srv.setdefault("mlflow_dep", _dep(admin, srv))
    resp = srv["raw"].post(f"/api/v1/deployments/{name}/invocations", json=body)
    assert resp.status_code == status, resp.text
    assert resp.json()["error_code"] == "BAD_REQUEST" and says in resp.json()["message"]


def test_mlflow_invocations_refuse_csv_with_415(admin: Client, srv: dict) -> None:
    name = srv.setdefault("mlflow_dep", _dep(admin, srv))
    resp = srv["raw"].post(
        f"/api/v1/deployments/{name}/invocations",
        content=b"a,b\n1,2\n",
        headers={"Content-Type": "text/csv"},
    )
    assert resp.status_code == 415


# -- metrics -----------------------------------------------------------------------------------


def test_metrics_count_requests_errors_and_latency(admin: Client, srv: dict) -> None:
    name = _dep(admin, srv)
    for _ in range(3):
        admin.predict(name, srv["rows"][:2])
    with pytest.raises(InvalidInput):
        admin.predict(name, [{"x": 1}])
    text = srv["raw"].get("/metrics").text
    labels = f'deployment="{name}",mode="live",model="clf",version="1"'
    assert f"mlteam_predict_requests_total{{{labels}}} 4.0" in text
    assert f"mlteam_predict_errors_total{{{labels}}} 1.0" in text
    assert f"mlteam_predict_rows_total{{{labels}}} 6.0" in text
    assert f"mlteam_predict_latency_seconds_count{{{labels}}} 3.0" in text
    assert "mlteam_predict_latency_seconds_bucket{" in text


# -- real server processes ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(live_server, cancer_csv: Path, tmp_path_factory) -> dict:
    res = live_server.cli("users", "create", f"{uid('srvroot')}@example.com", "--admin")
    token = res.stdout.strip().splitlines()[-1]
    c = Client(live_server.url, token)
    slug = uid("live")
    c.create_project(slug)
    # the model is fitted here and logged as a run's model (no training job: the live server's
    # short heartbeat timeout fails jobs on a loaded machine, and this is faster)
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = pd.read_csv(cancer_csv)
    frame = data.drop(columns="target")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(frame, data["target"])
    folder = tmp_path_factory.mktemp("live-model")
    sio.dump(model, folder / "model.skops")
    sig = {
        "inputs": [{"name": col, "type": "double"} for col in frame.columns],
        "output": {"name": "target", "type": "long", "classes": [0, 1]},
        "task": "classification",
    }
    (folder / "mlteam-model.json").write_text(
        json.dumps({"format": "sklearn-skops", "signature": sig})
    )
    run = c.create_run(slug, "serving")
    c.log_artifact(run["id"], folder / "model.skops", "model/model.skops")
    c.log_artifact(run["id"], folder / "mlteam-model.json", "model/mlteam-model.json")
    c.finish_run(run["id"])
    c.register(slug, "clf", run["id"])  # v1
    c.register(slug, "clf", run["id"])  # v2
    return {"c": c, "token": token, "slug": slug, "rows": frame.head(5).to_dict(orient="records")}


def test_tritonclient_against_a_live_server(live_server, live: dict) -> None:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    name = uid("triton")
    live["c"].deploy(live["slug"], name, "clf", 1)
    headers = {"Authorization": f"Bearer {live['token']}"}
    tc = triton.InferenceServerClient(live_server.url.removeprefix("http://"))
    try:
        assert tc.is_server_live() and tc.is_server_ready()
        assert tc.is_model_ready(name, headers=headers)
        meta = tc.get_model_metadata(name, headers=headers)
        cols = [i["name"] for i in meta["inputs"]]
        x = np.array([[r[c] for c in cols] for r in live["rows"]], dtype=np.float64)
        inp = triton.InferInput("x", list(x.shape), "FP64")
        inp.set_data_from_numpy(x, binary_data=False)
        out = triton.InferRequestedOutput("predict", binary_data=False)
        res = tc.infer(name, [inp], outputs=[out], headers=headers, request_id="r1")
        expected = [p["output"] for p in live["c"].predict(name, live["rows"])["predictions"]]
        assert res.as_numpy("predict").tolist() == expected
        per_col = []
        for i, col in enumerate(cols):
            t = triton.InferInput(col, [len(x)], "FP64")
            t.set_data_from_numpy(x[:, i], binary_data=False)
            per_col.append(t)
        res = tc.infer(name, per_col, outputs=[out], headers=headers)
        assert res.as_numpy("predict").tolist() == expected
        with pytest.raises(InferenceServerException) as bad:
            tc.infer(name, per_col[1:], outputs=[out], headers=headers)
        assert cols[0] in str(bad.value)
    finally:
        tc.close()


def test_switching_revisions_under_load_fails_no_request(live_server, live: dict) -> None:
    c, name = live["c"], uid("switch")
    c.deploy(live["slug"], name, "clf", 1)
    stop = threading.Event()
    results: list[tuple[int, int | None]] = []

    def hammer() -> None:
        with Client(live_server.url, live["token"]) as mine:
            while not stop.is_set():
                try:
                    results.append((0, mine.predict(name, live["rows"][:1])["version"]))
                except Exception:
                    results.append((1, None))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        for i in range(6):
            if i % 3 == 2:
                c.rollback(name)
            else:
                v = 2 if i % 2 == 0 else 1
                c.revise(name, [{"model": "clf", "version": v, "weight": 100}])
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    errors = sum(e for e, _ in results)
    assert errors == 0 and len(results) > 20
    assert {v for _, v in results} == {1, 2}


def _replica(live_server, server_factory, **env: str):
    """A second server on the live one's database and artifacts whose prediction log holds
    everything until it is stopped (flush interval 30 s)."""
    replica = server_factory(home=live_server.home, db_url=live_server.db_url)
    replica.env.update({"MLTEAM_PREDICTION_FLUSH_SECONDS": "30", **env})
    return replica.start()


def _logged_after_sigterm(replica, folder: Path) -> list[str]:
    """Stop the replica with SIGTERM (nothing was written before) and count what it flushed."""
    assert not glob.glob(str(folder / "*.parquet"))
    replica.proc.send_signal(15)
    # uvicorn shuts down gracefully, then re-raises the signal: the exit status is -15
    assert replica.proc.wait(timeout=60) in (0, -15)
    return glob.glob(str(folder / "*.parquet"))


def _count(files: list[str]) -> int:
    """Predictions in the log's segments (a row per request, `rows` predictions each)."""
    con = duckdb.connect()
    try:
        got = con.execute('SELECT sum("rows") FROM read_parquet(?)', [files]).fetchall()
        return int(got[0][0] or 0)
    finally:
        con.close()


def test_prediction_log_keeps_every_request_through_sigterm(
    live_server, live: dict, server_factory
) -> None:
    # a second replica on the same database and artifacts; stopping it with SIGTERM flushes
    name = uid("term")
    dep = live["c"].deploy(live["slug"], name, "clf", 1)
    replica = _replica(live_server, server_factory)
    n = 37
    with Client(replica.url, live["token"]) as c:
        for i in range(n):
            c.predict(name, live["rows"][i % 5 : i % 5 + 1])
    files = _logged_after_sigterm(
        replica, live_server.home / "artifacts" / "predictions" / dep["id"]
    )
    assert files
    assert _count(files) == n
    assert os.path.getsize(files[0]) > 0


def test_two_worker_processes_switch_together_and_log_every_request_through_sigterm(
    live_server, live: dict, server_factory
) -> None:
    # `mlteam server --workers 2` (MLTEAM_SERVER_WORKERS): connections land on either process;
    # each reads the deployment's pointer per request and flushes its own log when stopped
    name = uid("two")
    dep = live["c"].deploy(live["slug"], name, "clf", 1)
    replica = _replica(live_server, server_factory, MLTEAM_SERVER_WORKERS="2")
    headers = {"Authorization": f"Bearer {live['token']}"}
    url = f"{replica.url}/api/v1/deployments/{name}/predict"
    versions = []
    for i in range(40):
        if i == 20:  # a switch made through one process holds at once in both
            with Client(replica.url, live["token"]) as c:
                c.revise(name, [{"model": "clf", "version": 2, "weight": 100}])
        row = live["rows"][i % 5 : i % 5 + 1]
        r = httpx.post(url, json={"inputs": row}, headers=headers, timeout=30)  # new connection
        assert r.status_code == 200, r.text
        versions.append(r.json()["version"])
    assert versions == [1] * 20 + [2] * 20
    files = _logged_after_sigterm(
        replica, live_server.home / "artifacts" / "predictions" / dep["id"]
    )
    assert _count(files) == 40


def _workers_of(proc) -> list[int]:
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    return [int(c) for c in children]


def _connections_per_worker(proc, port: int) -> list[int]:
    """Established connections on `port` held by each worker process (from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == "01":  # ESTABLISHED
                inodes.add(f[9])
    counts = []
    for pid in _workers_of(proc):
        fds = Path(f"/proc/{pid}/fd")
        held = {os.readlink(fd) for fd in fds.iterdir() if fd.exists()}
        counts.append(sum(f"socket:[{i}]" in held for i in inodes))
    return sorted(counts)


def test_two_workers_share_keep_alive_connections_evenly_and_a_dead_one_is_replaced(
    live_server, live: dict, server_factory
) -> None:
    # a client with a pool of 8 keep-alive connections: 4 on each process, not all on one
    name = uid("even")
    live["c"].deploy(live["slug"], name, "clf", 1)
    replica = _replica(live_server, server_factory, MLTEAM_SERVER_WORKERS="2")
    try:
        url = f"{replica.url}/api/v1/deployments/{name}/invocations"
        body = {"dataframe_records": live["rows"][:1]}
        headers = {"Authorization": f"Bearer {live['token']}"}
        for _ in range(3):
            clients = [httpx.Client(headers=headers, timeout=30) for _ in range(8)]
            try:
                for c in clients:
                    assert c.post(url, json=body).status_code == 200
                assert _connections_per_worker(replica.proc, replica.port) == [4, 4]
            finally:
                for c in clients:
                    c.close()
            time.sleep(0.3)
        # a worker killed outright is started again; the server answers throughout
        first = _workers_of(replica.proc)
        os.kill(first[0], 9)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = _workers_of(replica.proc)
            if len(now) == 2 and first[0] not in now:
                break
            time.sleep(0.2)
        assert len(now) == 2 and first[0] not in now
        for _ in range(10):
            r = httpx.post(url, json=body, headers=headers, timeout=60)
            assert r.status_code == 200, r.text
    finally:
        replica.stop()
    assert replica.proc.returncode == 0


def test_cli_revise_show_rollback(live_server, live: dict) -> None:
    name, token = uid("cli"), live["token"]
    live["c"].deploy(live["slug"], name, "clf", 1)
    cli = live_server.cli
    out = cli(
        "deployments", "revise", name, "--route", "clf:1:95", "--route", "clf:2:5", token=token
    ).stdout
    assert "revision 2" in out and "clf v1 95%" in out and "clf v2 5%" in out
    shown = json.loads(
        cli("deployments", "show", name, "--revisions", "--json", token=token).stdout
    )
    assert shown["revision"] == 2 and [r["revision"] for r in shown["revisions"]] == [2, 1]
    assert "revision 3: clf v1 100%" in cli("deployments", "rollback", name, token=token).stdout
    bad = cli("deployments", "revise", name, "--route", "clf:1:50", token=token, check=False)
    assert bad.returncode == 1 and "add up to 100" in bad.stderr


# -- batch scoring -----------------------------------------------------------------------------


def test_batch_scoring_publishes_a_dataset_version_with_lineage(admin: Client, srv: dict) -> None:
    slug = srv["slug"]
    source = admin.dataset_version(slug, "cancer", 1)
    job = admin.wait(admin.score(slug, "cancer", "clf", 1)["id"], timeout=120)
    assert job["state"] == "succeeded", job["error"]
    r = job["result"]
    assert r["dataset"] == "cancer-scored" and r["version"] == 1 and r["rows"] == 569
    out = admin.dataset_version(slug, "cancer-scored", 1)
    assert out["parents"] == [source["id"]] and out["row_count"] == 569
    assert out["source"]["kind"] == "batch_score" and out["source"]["model_version"] == 1
    assert {"name": "prediction", "type": "int64"} in out["columns"]
    assert any(e["action"] == "job.submit" for e in admin.audit(slug, limit=50))
    with pytest.raises(InvalidInput) as bad:
        admin.score(slug, "cancer-scored", "clf", 1)  # already has a prediction column
    assert bad.value.details["field"] == "dataset"


def test_only_devops_data_engineers_and_owners_batch_score(
    admin: Client, srv: dict, new_user, client_for
) -> None:
    email, token = new_user(prefix="viewer")
    admin.add_member(srv["slug"], email, "viewer")
    with pytest.raises(Forbidden):
        client_for(token).score(srv["slug"], "cancer", "clf", 1)


# -- runtime -------------------------------------------------------------------------------------


def test_models_without_named_columns_skip_pandas_and_answer_the_same() -> None:
    import warnings

    import skops.io as sio
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlteam.serving import runtime

    X, y = load_breast_cancer(as_frame=True, return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)

    class Store:
        def read_bytes(self, key: str) -> bytes:
            return sio.dumps(model)

    sig = {"inputs": [{"name": c, "type": "double"} for c in X.columns]}
    loaded = runtime._sklearn_loader(Store(), "k", sig)
    predict = loaded.predict
    assert predict.__name__ == "predict_array" and loaded.runtime == "sklearn"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names"
        cols = runtime.check_columns({c: X[c].tolist() for c in X.columns}, sig)
        assert predict(cols) == model.predict(X).tolist()
    reordered = {"inputs": list(reversed(sig["inputs"]))}
    assert runtime._sklearn_loader(Store(), "k", reordered).predict.__name__ == "predict_frame"
    # the all-numbers fast path (a float64 matrix built by numpy) answers the same
    fast = runtime.check_split(list(X.columns), X.values.tolist(), sig)
    assert fast.matrix is not None and predict(fast) == model.predict(X).tolist()


@pytest.mark.parametrize(
    ("bad", "field"),
    [(True, "data[17].b"), ("1.5", "data[17].b"), ([1.0], "data[17]"), ({}, "data[17].b")],
)
def test_the_all_numbers_fast_path_still_names_a_bad_value(bad, field: str) -> None:
    from mlteam.serving import runtime

    sig = {"inputs": [{"name": "a", "type": "double"}, {"name": "b", "type": "long"}]}
    rows = [[float(i), i] for i in range(40)]
    good = runtime.check_split(["a", "b"], rows, sig, "data")
    assert good.matrix is not None and good["b"].tolist() == [float(i) for i in range(40)]
    rows[17][1] = bad
    with pytest.raises(InvalidInput) as err:
        runtime.check_split(["a", "b"], rows, sig, "data")
    assert err.value.details["field"].startswith(field)
    records = [{"a": r[0], "b": r[1]} for r in rows]
    with pytest.raises(InvalidInput):
        runtime.check_records(records, sig, "data")
    with pytest.raises(InvalidInput):
        runtime.check_columns({"a": [r[0] for r in rows], "b": [r[1] for r in rows]}, sig)


def test_a_sql_rule_baseline_is_served(admin: Client, srv: dict, tmp_path: Path) -> None:
    # a baseline the team wrote as SQL: meta only (format sql-rule), no model file
    slug, rows = srv["slug"], srv["rows"]
    cols = list(rows[0])
    sig = {
        "inputs": [{"name": c, "type": "double"} for c in cols],
        "output": {"name": "target", "type": "long", "classes": [0, 1]},
        "task": "classification",
    }
    rule = 'CASE WHEN "worst radius" > 16 THEN 0 ELSE 1 END'
    meta = {"format": "sql-rule", "expression": rule, "signature": sig, "kind": "baseline"}
    (tmp_path / "mlteam-model.json").write_text(json.dumps(meta))
    run = admin.create_run(slug, "rule")
    admin.log_artifact(run["id"], tmp_path / "mlteam-model.json", "model/mlteam-model.json")
    admin.finish_run(run["id"])
    v = admin.register(slug, "rule", run["id"])["version"]
    name = uid("rule")
    admin.deploy(slug, name, "rule", v)
    assert admin.deployment(name)["routes"][0]["runtime"] == "duckdb"
    expected = [0 if r["worst radius"] > 16 else 1 for r in rows]
    assert 0 in expected and 1 in expected
    got = admin.predict(name, rows)["predictions"]
    assert [p["output"] for p in got] == expected
    split = {"columns": cols, "data": [[r[c] for c in cols] for r in rows]}
    inv = srv["raw"].post(
        f"/api/v1/deployments/{name}/invocations", json={"dataframe_split": split}
    )
    assert inv.json() == {"predictions": expected}


def test_the_log_keeps_numeric_inputs_as_values_and_reads_them_back_as_json(
    tmp_path: Path,
) -> None:
    import math
    from datetime import UTC, datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlteam.core.artifacts import ArtifactStore
    from mlteam.serving import predlog, runtime

    sig = {"inputs": [{"name": c, "type": "double"} for c in ("a", "b c")]}
    data = [[i / 7, float(i)] for i in range(40)]
    data[3][0] = math.nan
    big = runtime.check_split(["a", "b c"], data, sig)
    small = runtime.check_split(["a", "b c"], data[:1], sig)
    store = ArtifactStore(str(tmp_path))
    log = predlog.PredictionLog(store)
    now = datetime.now(UTC)
    one, ids, text_id = (
        predlog.PredictionIds(1),
        predlog.PredictionIds(40),
        predlog.PredictionIds(1),
    )
    log.append_batch(predlog.Batch(now, "d", 1, "v", "live", one, small, [1], 1.0))
    log.append_batch(predlog.Batch(now, "d", 1, "v", "live", ids, big, [0] * 40, 4.0))
    # a request with a text column stays JSON, in the same segment
    text_cols = {"a": ["x"], "b c": [2.5]}
    log.append_batch(predlog.Batch(now, "d", 1, "v", "live", text_id, text_cols, ["yes"], 1.0))
    assert log.flush() == 42
    # a row per request, the numbers stored as values (no JSON written, for the single row
    # as for the 40 rows) ...
    (segment,) = glob.glob(str(tmp_path / "predictions" / "d" / "*.parquet"))
    stored = pq.read_table(segment)
    assert stored.column("rows").to_pylist() == [1, 40, 1]
    assert stored.column("inputs").null_count == 2
    assert [len(v or b"") for v in stored.column("input_values").to_pylist()] == [16, 640, 0]
    # ... and read back as the same JSON objects, in the readers' schema
    table = log.read("d")
    assert table.schema == predlog.SCHEMA and table.num_rows == 42
    rows = table.to_pylist()
    assert [r["prediction_id"] for r in rows] == [*one, *ids, *text_id]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids) and len(set(ids)) == 40
    text = rows.pop()
    assert json.loads(text["inputs"]) == {"a": "x", "b c": 2.5} and text["output"] == '"yes"'
    for r, values in zip(rows[1:], data, strict=True):
        got = json.loads(r["inputs"])
        assert list(got) == ["a", "b c"]
        assert all(
            (math.isnan(g) and math.isnan(w)) or g == w
            for g, w in zip(got.values(), values, strict=True)
        )
    assert json.loads(rows[0]["inputs"]) == {"a": 0.0, "b c": 0.0}
    # a segment of before, its ids as text and its values as JSON, is read as it was
    earlier = {f.name: [None] for f in predlog.SCHEMA} | {
        "prediction_id": ["0" * 32],
        "ts": [now],
        "deployment_id": ["d"],
        "revision": [1],
        "model_version_id": ["v"],
        "latency_ms": [2.0],
        "inputs": ['{"a": 1.5}'],
        "output": ["1"],
    }
    pq.write_table(
        pa.table(earlier, schema=predlog.SCHEMA), tmp_path / "predictions" / "d" / "seg-0.parquet"
    )
    again = log.read("d").to_pylist()
    assert len(again) == 43 and again[0]["prediction_id"] == "0" * 32
    assert again[0]["inputs"] == '{"a": 1.5}'
    # feedback's lookup finds ids of either layout, and nothing else
    asked = [ids[0], ids[39], text_id[0], "0" * 32, "f" * 32, "not an id", ids[0].upper()]
    assert log.find("d", asked) == {ids[0], ids[39], text_id[0], "0" * 32}
    found = log.lookup("d", asked).to_pylist()
    assert sorted((r["prediction_id"], r["output"]) for r in found) == sorted(
        [(ids[0], "0"), (ids[39], "0"), (text_id[0], '"yes"'), ("0" * 32, "1")]
    )
    # what a report reads: counts and latency of everything, predictions of the latest segments
    ((version, (n, mean_ms)),) = log.counts("d").items()
    assert version == "v" and n == 43 and mean_ms == pytest.approx((1.0 + 4.0 + 1.0 + 2.0) / 43)
    assert log.latest("d", 10).num_rows == 42  # the newest segment is whole and enough
    assert log.latest("d", 43).num_rows == 43


def test_prediction_ids_carry_their_time_and_feedback_reads_only_the_log_since(
    tmp_path: Path,
) -> None:
    from datetime import UTC, datetime

    from mlteam.core.artifacts import ArtifactStore
    from mlteam.serving import predlog

    before = time.time_ns() // 1_000_000
    ids = predlog.PredictionIds(3)
    one = predlog.PredictionIds(1)
    after = time.time_ns() // 1_000_000
    for i in [*ids, *one]:  # UUIDv7: the millisecond, version 7, the RFC's variant
        u = uuid.UUID(i)
        assert u.version == 7 and u.variant == uuid.RFC_4122
        assert before <= int(i[:12], 16) <= after
    assert len({*ids, *one}) == 4
    log = predlog.PredictionLog(ArtifactStore(str(tmp_path)))
    folder = tmp_path / "predictions" / "d"
    folder.mkdir(parents=True)
    # the log of long ago, as one segment that cannot even be read: feedback on today's
    # predictions never opens it
    old = predlog.PredictionIds(1, ms=before - 10 * predlog.CLOCK_SKEW_MS)
    (folder / f"seg-{before - 2 * predlog.CLOCK_SKEW_MS:015d}-0badf11e.parquet").write_bytes(
        b"not parquet"
    )
    log.append_batch(
        predlog.Batch(datetime.now(UTC), "d", 1, "v", "live", ids, {"a": [1, 2, 3]}, [0] * 3, 1.0)
    )
    assert log.find("d", [ids[1], one[0]]) == {ids[1]}
    with pytest.raises(Exception, match="Parquet|parquet|magic"):
        log.find("d", [old[0]])  # an id from back then: that segment must be read


def test_the_prediction_log_writes_early_once_many_rows_wait(tmp_path) -> None:
    from datetime import UTC, datetime

    from mlteam.core.artifacts import ArtifactStore
    from mlteam.serving import predlog, runtime

    sig = {"inputs": [{"name": "a", "type": "double"}]}
    log = predlog.PredictionLog(ArtifactStore(str(tmp_path)), flush_seconds=60)
    log.start()
    try:
        folder = tmp_path / "predictions" / "d"
        n = 1_000
        for _ in range(predlog.FLUSH_ROWS // n + 1):  # just past FLUSH_ROWS
            cols = runtime.check_split(["a"], [[float(j)] for j in range(n)], sig)
            ids = predlog.PredictionIds(n)
            log.append_batch(
                predlog.Batch(datetime.now(UTC), "d", 1, "v", "live", ids, cols, [0] * n, 1.0)
            )
        deadline = time.monotonic() + 20  # far sooner than the 60 s interval
        while not glob.glob(str(folder / "*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _count(glob.glob(str(folder / "*.parquet"))) == (predlog.FLUSH_ROWS // n + 1) * n
    finally:
        log.stop()


def test_inputs_past_the_log_buffer_and_in_a_reused_one_read_back_whole(
    tmp_path, monkeypatch
) -> None:
    # A request's values are copied into a buffer kept from one segment to the next; what
    # does not fit goes after it, in order. Neither may lose, reorder or mix up a value.
    from datetime import UTC, datetime

    from mlteam.core.artifacts import ArtifactStore
    from mlteam.serving import predlog, runtime

    monkeypatch.setattr(predlog, "ARENA_VALUES", 50)  # 2.5 requests of 10 rows x 2 columns
    sig = {"inputs": [{"name": c, "type": "double"} for c in ("a", "b")]}
    log = predlog.PredictionLog(ArtifactStore(str(tmp_path)))
    sent: list[dict[str, float]] = []

    def request(first: int) -> None:
        data = [[float(first + i), -float(first + i)] for i in range(10)]
        cols = runtime.check_split(["a", "b"], data, sig)
        ids = predlog.PredictionIds(10)
        log.append_batch(
            predlog.Batch(datetime.now(UTC), "d", 1, "v", "live", ids, cols, [0] * 10, 1.0)
        )
        sent.extend({"a": a, "b": b} for a, b in data)

    for first in (0, 10, 20, 30):  # the third and fourth go past the buffer
        request(first)
    assert log.flush() == 40
    for first in (40, 50):  # into the buffer the first segment used
        request(first)
    assert log.flush() == 20
    got = [json.loads(text) for text in log.read("d").column("inputs").to_pylist()]
    assert got == sent


def test_a_segment_that_cannot_be_written_keeps_its_predictions_for_the_next_flush(
    tmp_path,
) -> None:
    from datetime import UTC, datetime

    from mlteam.core.artifacts import ArtifactStore
    from mlteam.serving import predlog, runtime

    sig = {"inputs": [{"name": "a", "type": "double"}]}
    log = predlog.PredictionLog(ArtifactStore(str(tmp_path)))

    def request(deployment: str, n: int) -> predlog.Batch:
        cols = runtime.check_split(["a"], [[float(j)] for j in range(n)], sig)
        ids = predlog.PredictionIds(n)
        return predlog.Batch(datetime.now(UTC), deployment, 1, "v", "live", ids, cols, [0] * n, 1.0)

    blocker = tmp_path / "predictions" / "d1"
    blocker.parent.mkdir()
    blocker.write_text("a file where d1's folder of segments goes")
    first = [request("d1", 3), request("d1", 1)]
    for b in [first[0], request("d2", 5), first[1]]:
        log.append_batch(b)
    with pytest.raises(OSError):
        log.flush()  # d1's segment cannot be written; d2's is, all the same
    assert log.read("d2").num_rows == 5
    blocker.unlink()
    # a reader's flush of d1 alone writes what failed before, nothing new waiting for it
    ids = log.read("d1").column("prediction_id").to_pylist()
    assert ids == [*first[0].ids, *first[1].ids]
    later = request("d1", 2)
    log.append_batch(later)
    assert log.flush() == 2  # nothing of d1 lost, in the order it came
    ids = log.read("d1").column("prediction_id").to_pylist()
    assert ids == [*first[0].ids, *first[1].ids, *later.ids]


def test_a_small_request_on_the_event_loop_never_loads_a_model(
    admin: Client, srv: dict, platform
) -> None:
    # A load takes 0.1-1 s: done on the event loop it would hold up every request of the
    # process. The inference routes answer there only once the models are loaded.
    from mlteam.core.auth import authenticate
    from mlteam.serving import service
    from mlteam.serving.protocols import mlflow_checker

    name = _dep(admin, srv)
    token = admin._http.headers["Authorization"].split()[-1]
    body = {"dataframe_records": srv["rows"][:1]}
    with platform.db.session() as s:
        user = authenticate(s, token)
        with pytest.raises(service.NotLoaded):
            service.infer(s, user, platform.serving, name, mlflow_checker(body), may_load=False)
    # the same first request over HTTP is answered (its models loaded in the thread pool) ...
    r = srv["raw"].post(f"/api/v1/deployments/{name}/invocations", json=body)
    assert r.status_code == 200, r.text
    # ... and from then on the models are there for the event loop
    with platform.db.session() as s:
        user = authenticate(s, token)
        _, _, a = service.infer(
            s, user, platform.serving, name, mlflow_checker(body), may_load=False
        )
    assert a.outputs == r.json()["predictions"]
