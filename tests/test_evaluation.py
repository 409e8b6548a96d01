"""Evaluation as a capability: QA's gate sets, evaluation jobs on a registered version, stored
gate results and reports, and promotions refused without a passing evaluation.

One module-scoped project trains a small model through the training API (a synthetic credit
set with a sensitive `group` column and an id column the prediction must not depend on);
the tests below share it and run in order where they build on each other.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from mlteam import Client, Conflict, Forbidden, InvalidInput, MlteamError, NotFound
from mlteam.evaluation.gates import check_gates, validate_rules
from tests.conftest import uid


def credit_csv(n: int = 400, seed: int = 3) -> bytes:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    group = rng.choice(["a", "b"], size=n)
    logit = 1.8 * x1 - 1.2 * x2 + (group == "a") * 0.4
    y = (logit + rng.normal(scale=0.8, size=n) > 0).astype(int)
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(n) + 1000,
            "x1": x1.round(4),
            "x2": x2.round(4),
            "group": group,
            "y": y,
        }
    )
    return frame.to_csv(index=False).encode()


@dataclass
class World:
    slug: str
    admin: Client
    qa: Client
    ds: Client
    labeler: Client
    expert: Client
    qa_email: str


@pytest.fixture(scope="module")
def world(admin: Client, new_user, client_for) -> World:
    slug = uid("eval")
    admin.create_project(slug, value_matrix={"0": {"0": 0, "1": -50}, "1": {"0": -200, "1": 100}})
    members = {}
    for role in ("qa", "data_scientist", "labeler", "domain_expert"):
        email, token = new_user(prefix=role)
        admin.add_member(slug, email, role)
        members[role] = (email, client_for(token))
    admin.upload(slug, "credit", io.BytesIO(credit_csv()), format="csv")
    ds = members["data_scientist"][1]
    job = ds.wait(ds.train(slug, "credit", "y", register_as="clf")["id"], timeout=300)
    assert job["result"]["model_version"] == {"model": "clf", "version": 1}
    return World(
        slug,
        admin,
        members["qa"][1],
        ds,
        members["labeler"][1],
        members["domain_expert"][1],
        members["qa"][0],
    )


LOOSE = [
    {"type": "metric", "metric": "accuracy", "min": 0.6},
    {"type": "beats_baseline", "metric": "accuracy", "margin": 0.05},
    {"type": "fairness", "measure": "demographic_parity_difference", "max": 0.9},
    {"type": "robustness", "max_drop": 0.5},
    {"type": "not_worse_than_champion", "metric": "roc_auc", "tolerance": 0.01},
    {"type": "no_leakage"},
]
STRICT = [
    {"type": "metric", "metric": "accuracy", "min": 0.999},
    {"type": "metric", "metric": "log_loss", "max": 0.001, "name": "tiny_log_loss"},
    {"type": "robustness", "max_drop": 0.5},
    # the trained model takes customer_id as a feature: changing it changes predictions
    {"type": "invariance", "name": "id_does_not_matter"},
]


def _evaluate(c: Client, slug: str, version: int | str = 1, model: str = "clf", **options) -> dict:
    options = {"sensitive": "group", "slice_columns": ["group"], "bootstrap": 30, **options}
    job = c.wait(c.evaluate(slug, model, version, **options)["id"], timeout=120)
    return job["result"]


def test_gate_sets_are_defined_by_qa_and_versioned(world: World) -> None:
    w = world
    w.expert.add_invariance(w.slug, "id_does_not_matter", "customer_id", "an id carries no signal")
    loose = w.qa.create_gate_set(w.slug, "release", LOOSE, "what we ship")
    assert loose["version"] == 1 and loose["required"] is False
    assert [r["name"] for r in loose["rules"]][:2] == ["min_accuracy", "beats_baseline_accuracy"]
    strict = w.qa.create_gate_set(w.slug, "strict", STRICT)
    assert {g["name"] for g in w.ds.gate_sets(w.slug)} == {"release", "strict"}

    # an update is the next version; the old one stays readable
    changed = w.qa.update_gate_set(w.slug, "strict", [*STRICT, {"type": "no_leakage"}])
    assert changed["version"] == 2 and len(changed["rules"]) == len(STRICT) + 1
    assert len(w.qa.gate_set(w.slug, "strict", version=1)["rules"]) == len(STRICT)
    assert [v["version"] for v in w.qa.gate_set_versions(w.slug, "strict")] == [1, 2]
    assert strict["id"] != changed["id"]
    with pytest.raises(Conflict):
        w.qa.create_gate_set(w.slug, "strict", STRICT)

    # the project requires one; only a known one
    with pytest.raises(InvalidInput) as info:
        w.qa.require_gate_set(w.slug, "no-such-set")
    assert info.value.details["field"] == "required_gate_set"
    assert w.qa.require_gate_set(w.slug, "strict")["required_gate_set"] == "strict"
    assert w.ds.gate_set(w.slug, "strict")["required"] is True
    with pytest.raises(Conflict):  # the required set cannot be deleted
        w.qa.delete_gate_set(w.slug, "strict")

    events = {(e["action"], e["actor_email"]) for e in w.admin.audit(w.slug, limit=200)}
    assert ("gateset.create", w.qa_email) in events
    assert ("gateset.update", w.qa_email) in events
    assert ("invariance.create", w.qa_email) not in events  # the expert declared it
    assert any(a == "project.update" for a, _ in events)


def test_only_qa_and_owners_write_gates(world: World) -> None:
    w = world
    for c in (w.labeler, w.ds, w.expert):
        with pytest.raises(Forbidden):
            c.create_gate_set(w.slug, uid("g"), LOOSE)
        with pytest.raises(Forbidden):
            c.require_gate_set(w.slug, "release")
    with pytest.raises(Forbidden):
        w.labeler.gate_sets(w.slug)  # labelers see that the project exists, nothing else
    with pytest.raises(Forbidden):
        w.ds.add_invariance(w.slug, "x", "customer_id")  # domain experts and QA declare them
    for c in (w.labeler, w.expert):
        with pytest.raises(Forbidden):
            c.evaluate(w.slug, "clf", 1)
    gs = w.admin.create_gate_set(w.slug, uid("owner"), LOOSE[:1])  # owners may
    w.admin.delete_gate_set(w.slug, gs["name"])
    with pytest.raises(NotFound):
        w.admin.gate_set(w.slug, gs["name"])


@pytest.mark.parametrize(
    ("rules", "field"),
    [
        (
            [{"type": "metric", "metric": "accuracy", "min": 0.9}, {"type": "magic"}],
            "rules[1].type",
        ),
        ([{"type": "metric", "metric": "acuracy", "min": 0.9}], "rules[0].metric"),
        ([{"type": "metric", "metric": "accuracy"}], "rules[0].min"),
        ([{"type": "metric", "metric": "accuracy", "min": "high"}], "rules[0].min"),
        ([{"type": "fairness", "measure": "vibes", "max": 0.1}], "rules[0].measure"),
        ([{"type": "robustness"}], "rules[0].max_drop"),
        ([{"type": "beats_baseline", "metric": "f1", "margn": 0.1}], "rules[0].margn"),
        ([], "rules"),
        (["accuracy > 0.9"], "rules[0].type"),
    ],
)
def test_bad_rules_name_the_rule_and_field(world: World, rules: list, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        world.qa.create_gate_set(world.slug, uid("bad"), rules)
    assert info.value.details["field"] == field, info.value.message
    assert field.split(".")[0] in info.value.message


def test_bad_evaluation_requests_are_refused_at_submission(world: World) -> None:
    w = world
    jobs_before = len(w.admin.jobs(w.slug))
    with pytest.raises(InvalidInput) as info:
        w.ds.evaluate(w.slug, "clf", 1, sensitive="gender")
    assert info.value.details["field"] == "sensitive" and "gender" in info.value.message
    with pytest.raises(InvalidInput) as info:
        w.ds.evaluate(w.slug, "clf", 1, slice_columns=["group", "region"])
    assert info.value.details["field"] == "slice_columns" and "region" in info.value.message
    with pytest.raises(NotFound, match="gate set"):
        w.ds.evaluate(w.slug, "clf", 1, gate_set="nope")
    with pytest.raises(NotFound, match="no version 9"):
        w.ds.evaluate(w.slug, "clf", 9)
    with pytest.raises(NotFound):
        w.ds.evaluate(w.slug, "no-model", 1)
    with pytest.raises(NotFound):
        w.ds.evaluate(w.slug, "clf", 1, dataset="credit", dataset_version=7)
    with pytest.raises(InvalidInput):
        w.ds.evaluate(w.slug, "clf", 1, bootstrap=-1)
    assert len(w.admin.jobs(w.slug)) == jobs_before


def test_promotion_refused_until_a_passing_evaluation(world: World) -> None:
    w = world
    # required: strict; nothing evaluated yet
    with pytest.raises(Conflict) as info:
        w.ds.request_promotion(w.slug, "clf", 1, "ready")
    assert "no evaluation" in info.value.message and "strict" in info.value.message

    # a failing evaluation (the required gate set by default), stored with per-gate results
    result = _evaluate(w.qa, w.slug)
    assert result["gate_set"] == "strict" and result["passed"] is False
    assert set(result["failed_gates"]) == {"min_accuracy", "tiny_log_loss", "id_does_not_matter"}
    ev = w.ds.evaluation(w.slug, result["evaluation"])
    assert ev["passed"] is False and ev["gate_set_version"] == 2
    assert ev["options"]["target"] == "y" and ev["options"]["sensitive"] == "group"
    gates = {g["name"]: g for g in ev["gates"]}
    assert gates["min_accuracy"]["passed"] is False
    assert gates["min_accuracy"]["value"] == pytest.approx(ev["summary"]["metrics"]["accuracy"])
    assert gates["max_robustness_drop_max"]["passed"] is True
    assert gates["no_leakage"]["passed"] is True  # no shared rows, no single-feature leak
    assert ev["summary"]["baseline"]["accuracy"] is not None
    assert any("training recipe's split" in n or "recorded split" in n for n in ev["notes"])
    assert [e["number"] for e in w.ds.evaluations(w.slug, "clf", 1)] == [ev["number"]]

    with pytest.raises(Conflict) as info:
        w.ds.request_promotion(w.slug, "clf", 1, "ready")
    assert "min_accuracy" in info.value.message and "tiny_log_loss" in info.value.message
    assert "min_accuracy" in {f["name"] for f in info.value.details["failed"]}
    assert info.value.details["evaluation"] == ev["number"]

    # the reports: JSON (suite output plus gates) and the HTML page with plots
    report = w.ds.evaluation_report(w.slug, ev["number"])
    assert report["evaluation"]["passed"] is False
    assert report["fairness"]["column"] == "group"
    (inv,) = report["robustness"]["invariances"]
    assert inv["name"] == "id_does_not_matter" and inv["passed"] is False
    assert "broken: id_does_not_matter" in gates["id_does_not_matter"]["message"]
    assert {s["column"] for s in report["slices"]} == {"group"}
    html = w.ds.evaluation_report(w.slug, ev["number"], "html")
    assert "<svg" in html and "FAILED" in html and "min_accuracy" in html
    assert ev["report_html"] == f"/api/v1/projects/{w.slug}/evaluations/{ev['number']}/report.html"
    resp = w.ds._http.get(f"http://testserver{ev['report_html']}")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    with pytest.raises(Forbidden):
        w.labeler.evaluation(w.slug, ev["number"])
    # linked from the version and its model card
    (linked,) = w.ds.model_version(w.slug, "clf", 1)["evaluations"]
    assert linked["number"] == ev["number"] and linked["report_html"] == ev["report_html"]
    assert linked["passed"] is False and "min_accuracy" in linked["failed_gates"]
    card = w.ds.model_card(w.slug, "clf", 1, format="markdown")
    assert f"Evaluation {ev['number']} (gate set strict v2 failed:" in card
    assert ev["report_html"] in card

    # QA switches the requirement to the release gates: a passing evaluation opens the door
    w.qa.require_gate_set(w.slug, "release")
    with pytest.raises(Conflict, match="no evaluation"):
        w.ds.request_promotion(w.slug, "clf", 1, "ready")
    passing = _evaluate(w.ds, w.slug)  # data scientists may evaluate too
    assert passing["gate_set"] == "release" and passing["passed"] is True, passing["gates"]
    msgs = {g["name"]: g["message"] for g in passing["gates"]}
    assert msgs["not_worse_than_champion_roc_auc"] == "no champion"
    assert msgs["no_leakage"].startswith("0 test rows also in train")

    req = w.ds.request_promotion(w.slug, "clf", 1, "passes the release gates")
    assert req["state"] == "open"

    # a new version of the gate set needs a new evaluation before the next request
    w.qa.update_gate_set(w.slug, "release", LOOSE[:4])
    with pytest.raises(Conflict, match="now at version 2"):
        w.ds.request_promotion(w.slug, "clf", 1, "ready", target="champion")

    events = w.admin.audit(w.slug, action="evaluation", limit=100)
    gate_events = [e for e in events if e["action"] == "evaluation.gates"]
    assert len([e for e in events if e["action"] == "evaluation.create"]) == 2
    assert {e["detail"]["passed"] for e in gate_events} == {True, False}
    assert any("min_accuracy" in e["detail"]["failed"] for e in gate_events)


def test_a_failed_job_leaves_no_evaluation(world: World, tmp_path) -> None:
    w = world
    # A version whose model files are in a format nothing can load: the job fails.
    best = w.ds.model_version(w.slug, "clf", 1)
    run = w.ds.create_run(w.slug, experiment="odd", name="odd format")
    meta = {"format": "pickled-mystery", "signature": best["signature"]}
    (tmp_path / "mlteam-model.json").write_text(json.dumps(meta))
    w.ds.log_artifact(run["id"], tmp_path / "mlteam-model.json", "model/mlteam-model.json")
    w.ds.finish_run(run["id"])
    w.ds.register(w.slug, "odd", run["id"])
    before = len(w.ds.evaluations(w.slug))
    job = w.ds.evaluate(w.slug, "odd", 1, dataset="credit", gate_set="release", bootstrap=0)
    with pytest.raises(MlteamError, match="pickled-mystery"):
        w.ds.wait(job["id"], timeout=60)
    assert len(w.ds.evaluations(w.slug)) == before
    assert w.ds.evaluations(w.slug, "odd", 1) == []


def test_a_model_logged_the_mlflow_way(world: World, tmp_path) -> None:
    """A skops model in MLflow's layout (MLmodel, no mlteam-model.json, no signature, no
    training split): evaluated on the whole dataset it is given, target named by the caller."""
    from sklearn.linear_model import LogisticRegression

    from mlteam.core.modelfiles import dump_sklearn

    w = world
    frame = pd.read_csv(io.BytesIO(credit_csv()))
    model = LogisticRegression().fit(frame[["x1", "x2"]], frame["y"])
    dump_sklearn(model, str(tmp_path / "model.skops"))
    (tmp_path / "MLmodel").write_text(
        "flavors:\n  sklearn:\n    pickled_model: model.skops\n    serialization_format: skops\n"
    )
    run = w.ds.create_run(w.slug, experiment="mlflow-style", name="logged by hand")
    for name in ("model.skops", "MLmodel"):
        w.ds.log_artifact(run["id"], tmp_path / name, f"model/{name}")
    w.ds.finish_run(run["id"])
    resp = w.ds._http.post(
        f"http://testserver/mlflow/{w.slug}/api/2.0/mlflow/model-versions/create",
        json={"name": "mlf", "source": f"runs:/{run['id']}/model", "run_id": run["id"]},
    )
    assert resp.status_code == 200, resp.text
    assert w.ds.model_version(w.slug, "mlf", 1)["format"] == "sklearn-skops"

    with pytest.raises(InvalidInput) as info:
        w.ds.evaluate(w.slug, "mlf", 1, dataset="credit")
    assert info.value.details["field"] == "target"
    result = _evaluate(w.ds, w.slug, model="mlf", dataset="credit", target="y", gate_set="release")
    assert result["summary"]["rows"] == 400 and result["summary"]["metrics"]["accuracy"] > 0.7
    assert any(n.startswith("test rows: all 400 rows") for n in result["notes"])
    assert any(n.startswith("features: x1, x2") for n in result["notes"])


def test_cli_gates_evaluate_and_reports(world: World, monkeypatch, tmp_path) -> None:
    """After the promotion test: `release` v2 is required and v1 was evaluated against v1."""
    from typer.testing import CliRunner

    from mlteam.cli import evaluation as cli_evaluation
    from mlteam.cli.main import app

    w = world
    runner = CliRunner()

    def run(who: Client, *args: str, code: int = 0) -> str:
        monkeypatch.setattr(cli_evaluation, "client", lambda: who)
        res = runner.invoke(app, list(args))
        assert res.exit_code == code, res.output
        return res.output

    rule = '{"type": "metric", "metric": "balanced_accuracy", "min": 0.5}'
    assert "created gate set cli-gates v1 (1 rules)" in run(
        w.qa, "gates", "create", w.slug, "cli-gates", "--rule", rule
    )
    bad = run(w.qa, "gates", "create", w.slug, "cli-bad", "--rule", '{"type": "nope"}', code=1)
    assert "rules[0].type" in bad
    listed = json.loads(run(w.ds, "gates", "list", w.slug, "--json"))
    assert {g["name"]: g["required"] for g in listed}["release"] is True
    assert "min_balanced_accuracy" in run(w.ds, "gates", "show", w.slug, "cli-gates")
    assert "customer_id" in run(w.ds, "invariances", "list", w.slug)
    denied = run(w.labeler, "gates", "require", w.slug, "cli-gates", code=1)
    assert "gates.write" in denied

    out = run(
        w.ds,
        "evaluate",
        "clf",
        "1",
        "--project",
        w.slug,
        "--sensitive",
        "group",
        "--slice",
        "group",
        "--bootstrap",
        "20",
    )
    assert "PASSED gate set release" in out and "accuracy" in out
    rows = json.loads(run(w.ds, "evaluations", "list", w.slug, "--model", "clf", "--json"))
    newest = rows[0]
    assert newest["gate_set"] == "release" and newest["gate_set_version"] == 2 and newest["passed"]
    assert "PASSED" in run(w.ds, "evaluations", "show", w.slug, str(newest["number"]))
    page = tmp_path / "report.html"
    run(w.ds, "evaluations", "report", w.slug, str(newest["number"]), "--html", "-o", str(page))
    assert "<svg" in page.read_text()
    report = json.loads(run(w.ds, "evaluations", "report", w.slug, str(newest["number"])))
    assert report["evaluation"]["gate_set_version"] == 2

    # evaluated against the current version now: the champion request goes through
    assert (
        w.ds.request_promotion(w.slug, "clf", 1, "v2 gates pass", target="champion")["state"]
        == "open"
    )
    assert "requires no gate set" in run(w.qa, "gates", "require", w.slug, "--none")
    assert w.ds.project(w.slug)["required_gate_set"] is None


def test_a_new_version_is_judged_against_the_champion(world: World) -> None:
    """After the CLI test: v1's production request is open; QA signs it, v2 comes along."""
    w = world
    (req,) = [r for r in w.ds.promotions(w.slug, state="open") if r["target"] == "production"]
    assert w.qa.approve_promotion(w.slug, req["number"], "qa", "gates pass")["state"] == "approved"
    v1 = w.ds.model_version(w.slug, "clf", 1)
    v2 = w.ds.register(w.slug, "clf", v1["run_id"])["version"]
    w.qa.create_gate_set(
        w.slug, "champ", [{"type": "not_worse_than_champion", "metric": "roc_auc"}]
    )
    result = _evaluate(w.ds, w.slug, v2, gate_set="champ")
    (gate,) = result["gates"]
    assert result["summary"]["champion_version"] == 1
    assert gate["passed"] and "champion v1" in gate["message"]  # the same model: not worse
    assert any(n == "champion: v1 (alias production)" for n in result["notes"])
    report = w.ds.evaluation_report(w.slug, result["evaluation"])
    assert report["champion"]["version"] == 1
    assert report["business_value"]["vs_champion"] is not None


def test_check_gates_on_missing_inputs() -> None:
    rules = validate_rules(
        [
            {"type": "not_worse_than_champion", "metric": "rmse"},
            {"type": "fairness", "measure": "equalized_odds_difference", "max": 0.2},
            {"type": "beats_baseline", "metric": "rmse", "margin": 1.0},
            {"type": "metric", "metric": "roc_auc", "min": 0.5},
        ]
    )
    report = {
        "metrics": {"rmse": {"value": 3.0}},
        "baseline": {"metrics": {"rmse": {"value": 4.5}}},
        "champion": None,
        "fairness": None,
    }
    out = {g["name"]: g for g in check_gates(rules, report)}
    assert (
        out["not_worse_than_champion_rmse"]["passed"]
        and out["not_worse_than_champion_rmse"]["message"] == "no champion"
    )
    assert not out["max_equalized_odds_difference"]["passed"]
    assert "not evaluated" in out["max_equalized_odds_difference"]["message"]
    # lower is better for rmse: 3.0 beats 4.5 by more than 1.0
    assert out["beats_baseline_rmse"]["passed"] and out["beats_baseline_rmse"]["threshold"] == 3.5
    assert not out["min_roc_auc"]["passed"]  # a regression report has no roc_auc

    report["champion"] = {"version": 2, "metrics": {"rmse": {"value": 2.5}}}
    report["baseline"]["metrics"]["rmse"]["value"] = 3.5
    out = {g["name"]: g for g in check_gates(rules, report)}
    assert not out["not_worse_than_champion_rmse"]["passed"]
    assert "v2" in out["not_worse_than_champion_rmse"]["message"]
    assert not out["beats_baseline_rmse"]["passed"]
