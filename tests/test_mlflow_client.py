"""The stock `mlflow` client, unchanged, against a live mlteam server."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from tests.conftest import uid

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def mlflow_project(live_server):
    """A project, and the mlflow client pointed at it with an mlteam token."""
    token = live_server.cli(
        "users", "create", f"{uid('mlf')}@example.com", "--admin"
    ).stdout.split()[-1]
    slug = uid("mlf")
    from mlteam import Client

    Client(live_server.url, token).create_project(slug)
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_URI")}
    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    uri = f"{live_server.url}/mlflow/{slug}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield {"slug": slug, "token": token, "uri": uri, "client": Client(live_server.url, token)}
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_tracking_with_the_mlflow_client(mlflow_project, tmp_path) -> None:
    from mlflow import MlflowClient

    mlflow.set_experiment("churn")
    with mlflow.start_run(run_name="first") as run:
        mlflow.log_param("lr", 0.01)
        mlflow.log_params({"depth": 3, "loss": "log"})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"acc": 0.91, "f1": 0.88})
        mlflow.set_tag("team", "growth")
        MlflowClient().log_batch(
            run.info.run_id,
            metrics=[mlflow.entities.Metric("batch", float(i), 0, i) for i in range(1000)],
        )
        (tmp_path / "notes.txt").write_text("hello")
        (tmp_path / "dir").mkdir()
        (tmp_path / "dir" / "a.txt").write_text("a")
        (tmp_path / "dir" / "b.txt").write_text("b")
        mlflow.log_artifact(str(tmp_path / "notes.txt"))
        mlflow.log_artifacts(str(tmp_path / "dir"), artifact_path="more")
    got = MlflowClient().get_run(run.info.run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "first"
    assert got.data.params == {"lr": "0.01", "depth": "3", "loss": "log"}
    assert got.data.metrics["loss"] == pytest.approx(0.2) and got.data.metrics["acc"] == 0.91
    assert got.data.tags["team"] == "growth"
    history = MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2, 3, 4]
    assert len(MlflowClient().get_metric_history(run.info.run_id, "batch")) == 1000
    out = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path / "dl"))
    assert Path(out, "notes.txt").read_text() == "hello"
    assert Path(out, "more", "b.txt").read_text() == "b"
    names = {a.path for a in MlflowClient().list_artifacts(run.info.run_id)}
    assert names == {"notes.txt", "more"}
    # the same run, seen through mlteam's own API
    native = mlflow_project["client"].run(run.info.run_id)
    assert native["params"]["lr"] == "0.01" and native["experiment"] == "churn"


def test_search_runs_with_a_filter(mlflow_project) -> None:
    mlflow.set_experiment("search")
    for i in range(4):
        with mlflow.start_run():
            mlflow.log_param("lr", f"0.0{i}")
            mlflow.log_metric("acc", 0.8 + i * 0.05)
            mlflow.set_tag("team", "x" if i % 2 else "y")
    found = mlflow.search_runs(
        filter_string="metrics.acc > 0.84 and tags.team = 'x'", order_by=["metrics.acc DESC"]
    )
    assert list(found["params.lr"]) == ["0.03", "0.01"]


def test_unknown_run_is_the_clients_own_error(mlflow_project) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as err:
        MlflowClient().get_run("0" * 32)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_param_is_immutable_as_in_mlflow(mlflow_project) -> None:
    from mlflow.exceptions import MlflowException

    mlflow.set_experiment("immutable")
    with mlflow.start_run():
        mlflow.log_param("lr", "0.1")
        mlflow.log_param("lr", "0.1")  # the same value again is fine
        with pytest.raises(MlflowException) as err:
            mlflow.log_param("lr", "0.2")
        assert err.value.error_code == "INVALID_PARAMETER_VALUE"


def test_log_model_register_load_and_alias(mlflow_project) -> None:
    from mlflow import MlflowClient
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    mlflow.set_experiment("models")
    name = uid("iris")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=name,
            input_example=X.head(3),
            skops_trusted_types=[
                "sklearn.tree._tree.Tree",
                "numpy.dtype",
            ],
        )
    assert str(info.registered_model_version) == "1"
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/1")
    assert list(loaded.predict(X.head(5))) == list(model.predict(X.head(5)))
    client = MlflowClient()
    client.set_registered_model_alias(name, "challenger", "1")
    assert client.get_model_version_by_alias(name, "challenger").version == "1"
    by_alias = mlflow.pyfunc.load_model(f"models:/{name}@challenger")
    assert list(by_alias.predict(X.head(2))) == list(model.predict(X.head(2)))
    # mlteam's own registry sees the same version, with its run as lineage
    mv = mlflow_project["client"].model_version(mlflow_project["slug"], name, 1)
    assert mv["aliases"] == ["challenger"] and mv["run_id"] == info.run_id
    # production moves only through sign-offs, even for MLflow clients
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as err:
        client.set_registered_model_alias(name, "production", "1")
    assert err.value.error_code == "PERMISSION_DENIED"


def test_bad_requests_get_mlflows_error_shape_and_store_nothing(mlflow_project) -> None:
    """What the stock client never sends, sent raw: a 4xx in MLflow's shape, nothing stored."""
    import httpx

    api = f"{mlflow_project['uri']}/api/2.0/mlflow"
    http = httpx.Client(headers={"Authorization": f"Bearer {mlflow_project['token']}"})
    exp = http.post(f"{api}/experiments/create", json={"name": uid("raw")}).json()
    run_id = http.post(f"{api}/runs/create", json={"experiment_id": exp["experiment_id"]}).json()[
        "run"
    ]["info"]["run_id"]

    def refused(resp: httpx.Response, status: int, code: str, *words: str) -> None:
        assert resp.status_code == status, resp.text
        assert resp.json()["error_code"] == code
        for word in words:
            assert word in resp.json()["message"]

    metric = {"run_id": run_id, "key": "loss", "value": 0.5, "timestamp": 1}
    refused(
        http.post(f"{api}/runs/log-metric", json={**metric, "step": "abc"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "step",
    )
    refused(
        http.post(f"{api}/runs/log-metric", json={**metric, "value": "high"}),
        400,
        "INVALID_PARAMETER_VALUE",
        "loss",
    )
    refused(
        http.post(f"{api}/runs/log-batch", json={"run_id": run_id, "metrics": {"a": 1}}),
        400,
        "INVALID_PARAMETER_VALUE",
        "metrics",
    )
    points = [{"key": "m", "value": i, "step": i, "timestamp": 1} for i in range(5)]
    points[3]["value"] = None
    refused(
        http.post(f"{api}/runs/log-batch", json={"run_id": run_id, "metrics": points}),
        400,
        "INVALID_PARAMETER_VALUE",
        "'m'",
    )
    for bad, field in (
        ({"key": ["m"], "value": 1.0}, "metric"),  # an unhashable key
        ({"key": "m", "value": 1.0, "step": 2**63}, "metrics[0].step"),
        ({"key": "m", "value": 1.0, "timestamp": 1.5}, "metrics[0].timestamp"),
        ({"key": "m", "value": True}, "not a number"),
    ):
        resp = http.post(f"{api}/runs/log-batch", json={"run_id": run_id, "metrics": [bad]})
        refused(resp, 400, "INVALID_PARAMETER_VALUE")
        assert field in resp.text, resp.text
    refused(
        http.get(
            f"{api}/metrics/get-history",
            params={"run_id": run_id, "metric_key": "m", "max_results": "many"},
        ),
        400,
        "INVALID_PARAMETER_VALUE",
        "max_results",
    )
    refused(http.post(f"{api}/runs/no-such-call", json={}), 404, "ENDPOINT_NOT_FOUND")
    refused(httpx.post(f"{api}/runs/log-metric", json=metric), 401, "UNAUTHENTICATED")
    got = http.get(f"{api}/runs/get", params={"run_id": run_id}).json()["run"]
    assert got["data"]["metrics"] == []  # nothing of the refused calls was stored

    # What Python's json.dumps writes for NaN (a bare literal, not JSON) is taken, as before.
    raw = json.dumps(
        {"run_id": run_id, "metrics": [{"key": "n", "value": math.nan, "timestamp": 1}]}
    )
    assert "NaN" in raw
    ok = http.post(
        f"{api}/runs/log-batch", content=raw, headers={"content-type": "application/json"}
    )
    assert ok.status_code == 200, ok.text
    got = http.get(f"{api}/runs/get", params={"run_id": run_id}).json()["run"]
    [point] = got["data"]["metrics"]
    assert point["key"] == "n" and math.isnan(point["value"])
