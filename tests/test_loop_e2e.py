"""The whole loop against a real `mlteam server` process, through the SDK over HTTP."""

from __future__ import annotations

import pandas as pd
import pytest

from mlteam import Client, InvalidInput, NotFound, Unauthenticated
from tests.conftest import uid


@pytest.fixture(scope="module")
def live_admin(live_server) -> Client:
    # The first admin is made on the host, as the README says: token alone on the last line.
    res = live_server.cli("users", "create", f"{uid('root')}@example.com", "--admin")
    token = res.stdout.strip().splitlines()[-1]
    assert token.startswith("mlt_") and " " not in token
    return Client(live_server.url, token)


def test_health_and_openapi(live_server) -> None:
    import httpx

    assert httpx.get(f"{live_server.url}/api/v1/health").json() == {"status": "ok"}
    spec = httpx.get(f"{live_server.url}/openapi.json").json()
    assert "/api/v1/deployments/{name}/predict" in spec["paths"]


def test_no_token_is_401_with_error_shape(live_server) -> None:
    import httpx

    r = httpx.get(f"{live_server.url}/api/v1/projects")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"
    with pytest.raises(Unauthenticated):
        Client(live_server.url, "mlt_not-a-token").projects()


def test_whole_loop_over_http(live_admin: Client, cancer_csv) -> None:
    c = live_admin
    slug = uid("e2e")
    project = c.create_project(slug, goal="triage biopsies", success_metric="accuracy")
    assert project["phase"] == "ideation"
    c.update_project(slug, value_matrix={"0": {"0": 500, "1": -2000}, "1": {"0": -100, "1": 0}})
    req = c.create_request(slug, "Biopsy triage", priority="high")
    c.triage_request(slug, req["number"], state="accepted", rationale="top of the backlog")

    # a. data → an immutable, content-addressed version
    v1 = c.upload(slug, "cancer", cancer_csv)
    assert v1["created"] and v1["n"] == 1 and v1["row_count"] == 569
    assert {"name": "target", "type": "int64"} in v1["columns"]
    again = c.upload(slug, "cancer", cancer_csv)
    assert not again["created"] and again["id"] == v1["id"]
    assert c.project(slug)["phase"] == "experimentation"

    # b. training as a background job: a baseline and a model, each a tracked run
    job = c.train(slug, "cancer", "target", candidates=["baseline", "linear"])
    assert job["state"] in ("queued", "running")
    job = c.wait(job["id"], timeout=300)
    result = job["result"]
    assert job["state"] == "succeeded" and job["progress"] == 1.0
    names = {r["name"] for r in result["runs"]}
    assert names == {"baseline_majority", "logistic_regression"}
    assert result["beats_baseline"] and result["best"] == "logistic_regression"
    assert "beats the baseline" in c.job_log(job["id"])
    best = c.run(result["best_run_id"])
    assert best["status"] == "FINISHED" and best["metrics"]["accuracy"] > 0.9
    assert best["params"]["candidate"] == "logistic_regression"
    assert best["inputs"] == [v1["id"]]
    files = {a["path"] for a in c.artifacts(best["id"], "model")}
    assert {"model.skops", "mlteam-model.json"} <= files

    # c. register the better model, with lineage
    mv = c.register(slug, "clf", result["best_run_id"])
    assert mv["version"] == 1 and mv["run_id"] == best["id"]
    assert mv["lineage"]["dataset_versions"][0]["id"] == v1["id"]
    assert mv["metrics"]["accuracy"] == best["metrics"]["accuracy"]
    assert c.project(slug)["phase"] == "experimentation"  # registered, not yet through gates

    # QA's gates: the version passes them, and only then is the project in development
    c.create_gate_set(
        slug,
        "release",
        [
            {"type": "metric", "metric": "accuracy", "min": 0.9},
            {"type": "beats_baseline", "metric": "accuracy"},
        ],
    )
    ev = c.wait(c.evaluate(slug, "clf", 1, gate_set="release", bootstrap=20)["id"], timeout=300)
    assert ev["result"]["passed"] is True, ev["result"]
    assert c.project(slug)["phase"] == "development"

    # d. deploy and predict, one id per prediction
    dep = uid("e2e")
    c.deploy(slug, dep, "clf", 1)
    frame = pd.read_csv(cancer_csv)
    rows = frame.drop(columns="target").head(40).to_dict(orient="records")
    answer = c.predict(dep, rows)
    preds = answer["predictions"]
    assert len(preds) == 40 and len({p["id"] for p in preds}) == 40
    assert all(p["output"] in (0, 1) for p in preds)
    assert c.project(slug)["phase"] == "production"
    with pytest.raises(InvalidInput) as bad:
        c.predict(dep, [{**rows[0], "mean radius": "big"}])
    assert "mean radius" in bad.value.message

    # e. ground truth as feedback
    truth = frame["target"].head(40).tolist()
    items = [{"prediction_id": p["id"], "truth": int(t)} for p, t in zip(preds, truth, strict=True)]
    assert c.feedback(dep, items) == 40
    assert c.project(slug)["phase"] == "iteration"

    # f. drift (PSI, KS per feature) and accuracy on the fed-back predictions
    rep = c.report(dep)
    assert rep["predictions"] == 40 and rep["feedback"] == 40
    version = rep["versions"][0]
    expected = sum(int(p["output"]) == t for p, t in zip(preds, truth, strict=True)) / 40
    assert version["performance"]["accuracy"] == pytest.approx(expected)
    assert set(version["drift"]) == set(frame.columns) - {"target"}
    d = version["drift"]["mean radius"]
    assert d["psi"] >= 0 and 0 <= d["ks"] <= 1 and 0 <= d["p_value"] <= 1

    # every step is in the audit log
    actions = {e["action"] for e in c.audit(slug, limit=500)}
    assert {
        "project.create",
        "project.update",
        "request.create",
        "request.triage",
        "dataset.version.create",
        "job.submit",
        "run.create",
        "model.version.create",
        "deployment.revise",
        "feedback.submit",
    } <= actions


def test_drift_is_flagged_when_inputs_shift(live_admin: Client, cancer_csv) -> None:
    c = live_admin
    slug = uid("drift")
    c.create_project(slug)
    c.upload(slug, "cancer", cancer_csv)
    job = c.wait(c.train(slug, "cancer", "target", register_as="clf")["id"], timeout=300)
    assert job["result"]["model_version"]["version"] == 1
    dep = uid("drift")
    c.deploy(slug, dep, "clf", 1)
    frame = pd.read_csv(cancer_csv).drop(columns="target").sample(200, random_state=1)
    shifted = frame.assign(**{"mean radius": frame["mean radius"] * 1.8})
    c.predict(dep, shifted.to_dict(orient="records"))
    drift = c.report(dep)["versions"][0]["drift"]
    assert drift["mean radius"]["drifted"] and drift["mean radius"]["psi"] > 0.5
    assert not drift["mean texture"]["drifted"]


def test_unknown_deployment_is_404(live_admin: Client) -> None:
    with pytest.raises(NotFound):
        live_admin.predict("no-such-deployment", [{"x": 1}])
