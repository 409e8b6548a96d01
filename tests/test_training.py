"""Training recipes end to end through the SDK: candidates, tuning (reproducible, as child runs),
the SQL-rule baseline, the checked ONNX export, the Ray executor, custom-code models, and bad
input refused at submission or failing the job cleanly. Small data, few trials."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlteam import Client
from mlteam.core.artifacts import ArtifactStore
from mlteam.core.errors import InvalidInput, NotFound
from mlteam.core.modelfiles import RuleModel, load_model, load_sklearn
from tests.conftest import uid

RULE = 'CASE WHEN "x1" > 0 THEN 1 ELSE 0 END'


def _frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Binary target driven by x1 and x2 and the colour; a few missing numerics."""
    rng = np.random.default_rng(seed)
    x1, x2, x3 = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], n)
    logit = 2.0 * x1 - 1.5 * x2 + (colour == "red") * 1.0
    y = (logit + rng.normal(scale=0.7, size=n) > 0).astype(int)
    df = pd.DataFrame({"x1": x1, "x2": x2, "x3": x3, "colour": colour, "y": y})
    df.loc[::17, "x3"] = np.nan
    return df


@pytest.fixture(scope="module")
def proj(admin: Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A project with a binary, a multiclass/regression and a few broken datasets."""
    tmp = tmp_path_factory.mktemp("training")
    slug = uid("train")
    admin.create_project(slug)
    df = _frame()
    df.to_csv(tmp / "bin.csv", index=False)
    admin.upload(slug, "bin", tmp / "bin.csv")
    rng = np.random.default_rng(1)
    multi = df.assign(
        kind=np.select([df.x1 > 0.5, df.x1 < -0.5], ["high", "low"], "mid"),
        amount=3.0 * df.x1 - 2.0 * df.x2 + rng.normal(scale=0.1, size=len(df)),
    ).drop(columns="y")
    multi.to_csv(tmp / "multi.csv", index=False)
    admin.upload(slug, "multi", tmp / "multi.csv")
    df.assign(empty=np.nan).to_csv(tmp / "nulls.csv", index=False)
    admin.upload(slug, "nulls", tmp / "nulls.csv", types={"empty": "DOUBLE"})
    df.head(12).to_csv(tmp / "few.csv", index=False)
    admin.upload(slug, "few", tmp / "few.csv")
    return {"slug": slug, "df": df, "multi": multi}


def _train(c: Client, slug: str, dataset: str, target: str, **opts: Any) -> dict[str, Any]:
    return c.wait(c.train(slug, dataset, target, **opts)["id"], timeout=300, poll=0.2)


def _children(c: Client, slug: str, parent: str) -> list[dict[str, Any]]:
    return [r for r in c.runs(slug) if r["parent_run_id"] == parent]


# -- recipes and tuning -------------------------------------------------------------------------


TUNED = {"candidates": ["linear", "lightgbm"], "trials": 3, "cv": 3, "workers": 2, "seed": 7}


@pytest.fixture(scope="module")
def tuned(admin: Client, proj: dict) -> dict[str, Any]:
    """One tuned job on the local executor with a 2-process pool."""
    return _train(admin, proj["slug"], "bin", "y", experiment="tune-a", **TUNED)


def test_tuned_candidates_are_tracked(admin: Client, proj: dict, tuned: dict) -> None:
    slug, result = proj["slug"], tuned["result"]
    assert tuned["state"] == "succeeded" and tuned["progress"] == 1.0
    assert [r["name"] for r in result["runs"]] == [
        "baseline_majority",
        "logistic_regression",
        "lightgbm",
    ]
    assert result["beats_baseline"] and "beats the baseline" in result["verdict"]
    tuning = result["tuning"]["candidates"]
    assert set(tuning) == {"logistic_regression", "lightgbm"}
    assert all(t["trials"] == 3 and t["best_params"] for t in tuning.values())
    # every trial is a child run of its candidate's run, with params and its CV score
    lgbm = next(r for r in result["runs"] if r["name"] == "lightgbm")
    trials = _children(admin, slug, lgbm["run_id"])
    assert len(trials) == 3 and all(t["kind"] == "tuning" for t in trials)
    one = admin.run(trials[0]["id"])
    assert "num_leaves" in one["params"] and "cv_accuracy" in one["metrics"]
    assert one["tags"]["mlteam.executor"] == "local"
    # two pool workers ran the trials
    pids = {admin.run(t["id"])["tags"]["mlteam.trial.pid"] for t in trials}
    assert len(pids) == 2
    cand = admin.run(lgbm["run_id"])
    assert cand["tags"]["mlteam.baseline_run"] == result["baseline_run_id"]
    assert cand["params"]["num_leaves"] == str(tuning["lightgbm"]["best_params"]["num_leaves"])
    assert json.loads(cand["params"]["features"]) == ["x1", "x2", "x3", "colour"]
    assert json.loads(cand["params"]["split"])["source"] == "split_frame"
    assert {"task", "seed", "test_fraction", "target"} <= set(cand["params"])
    # the parent run holds the candidates
    assert {r["id"] for r in _children(admin, slug, result["parent_run_id"])} == {
        r["run_id"] for r in result["runs"]
    }
    assert "trial 3/3" in admin.job_log(tuned["id"])


def _same_tuning(a: dict, b: dict) -> None:
    def strip(t: dict) -> dict:
        return {k: v for k, v in t.items() if k != "seconds"}

    for name, t in a["tuning"]["candidates"].items():
        assert strip(t) == strip(b["tuning"]["candidates"][name])
    for ra, rb in zip(a["runs"], b["runs"], strict=True):
        assert ra["params"] == rb["params"] and ra["metrics"] == rb["metrics"]


def test_rerun_with_the_same_seed_reproduces_the_result(
    admin: Client, proj: dict, tuned: dict
) -> None:
    again = _train(admin, proj["slug"], "bin", "y", experiment="tune-b", **TUNED)["result"]
    _same_tuning(tuned["result"], again)


def test_multiclass_and_regression(admin: Client, proj: dict) -> None:
    slug = proj["slug"]
    jobs = [  # submitted together: they run side by side
        admin.train(
            slug, "multi", "kind", features=["x1", "x2", "colour"], candidates=["random_forest"]
        ),
        admin.train(
            slug,
            "multi",
            "amount",
            features=["x1", "x2", "x3"],
            candidates=["linear"],
            trials=3,
        ),
    ]
    multi, reg = (admin.wait(j["id"], timeout=300, poll=0.2)["result"] for j in jobs)
    assert multi["task"] == "classification" and multi["beats_baseline"]
    meta = json.loads(admin.artifact(multi["best_run_id"], "model/mlteam-model.json"))
    assert meta["signature"]["output"]["classes"] == ["high", "low", "mid"]
    assert meta["candidate"] == "random_forest" and meta["kind"] == "model"

    assert reg["task"] == "regression" and reg["primary_metric"] == "rmse"
    assert reg["best"] == "ridge" and reg["runs"][1]["metrics"]["r2"] > 0.9
    assert reg["tuning"]["candidates"]["ridge"]["trials"] == 3


# -- ONNX, registration, custom code --------------------------------------------------------------


def test_best_model_registered_with_checked_onnx_export(
    admin: Client, proj: dict, settings
) -> None:
    import onnxruntime as ort

    slug, df = proj["slug"], proj["df"]
    job = _train(
        admin,
        slug,
        "bin",
        "y",
        features=["x1", "x2", "x3"],
        candidates=["linear"],
        register_as="bin-clf",
    )
    result = job["result"]
    mv = admin.model_version(slug, "bin-clf", result["model_version"]["version"])
    assert mv["run_id"] == result["best_run_id"]
    assert [i["name"] for i in mv["signature"]["inputs"]] == ["x1", "x2", "x3"]
    run_id = result["best_run_id"]
    files = {a["path"] for a in admin.artifacts(run_id, "model")}
    assert {"model.skops", "model.onnx", "mlteam-model.json"} <= files
    meta = json.loads(admin.artifact(run_id, "model/mlteam-model.json"))
    onnx = meta["onnx"]
    assert (
        onnx["max_abs_diff"] <= 1e-5
        and onnx["rows_checked"] == result["split"]["rows"]["validation"]
    )
    assert {i["type"] for i in onnx["inputs"]} == {"double"}
    # the export answers like the native model, checked here independently on every row
    native = load_sklearn(admin.artifact(run_id, "model/model.skops"))
    sess = ort.InferenceSession(admin.artifact(run_id, "model/model.onnx"))
    feeds = {
        i["name"]: df[i["feature"]].to_numpy(np.float64).reshape(-1, 1) for i in onnx["inputs"]
    }
    labels, proba = sess.run([onnx["outputs"]["label"], onnx["outputs"]["probabilities"]], feeds)
    X = df[["x1", "x2", "x3"]]
    assert (labels.ravel() == native.predict(X)).all()
    assert np.abs(proba - native.predict_proba(X)).max() <= 1e-5
    # and load_model reads the registered version's files
    store = ArtifactStore(settings.artifact_root)
    loaded = load_model(store, f"runs/{run_id}/artifacts/model")
    assert (loaded.predict(X) == native.predict(X)).all()


def _custom_model_dir(df: pd.DataFrame, folder: Path, model: Any = None) -> Any:
    """A model fitted in the user's own code, saved in the platform's model-folder format."""
    from sklearn.linear_model import LogisticRegression

    from mlteam.core.modelfiles import dump_sklearn

    model = (model or LogisticRegression()).fit(df[["x1", "x2"]], df["y"])
    folder.mkdir(parents=True, exist_ok=True)
    dump_sklearn(model, str(folder / "model.skops"))
    meta = {
        "format": "sklearn-skops",
        "signature": {
            "inputs": [{"name": "x1", "type": "double"}, {"name": "x2", "type": "double"}],
            "output": {"name": "y", "type": "long", "classes": [0, 1]},
            "task": "classification",
        },
        "target": "y",
        "candidate": "custom",
        "kind": "model",
    }
    (folder / "mlteam-model.json").write_text(json.dumps(meta))
    return model


def test_custom_code_model_registers_and_loads(
    admin: Client, proj: dict, tmp_path: Path, settings
) -> None:
    slug, df = proj["slug"], proj["df"]
    model = _custom_model_dir(df, tmp_path / "model")
    run = admin.create_run(slug, "custom", name="my notebook model")
    for name in ("model.skops", "mlteam-model.json"):
        admin.log_artifact(run["id"], tmp_path / "model" / name, f"model/{name}")
    admin.finish_run(run["id"])
    mv = admin.register(slug, "custom-clf", run["id"])
    assert mv["version"] == 1 and mv["format"] == "sklearn-skops"
    got = load_model(ArtifactStore(settings.artifact_root), f"runs/{run['id']}/artifacts/model")
    assert (got.predict(df[["x1", "x2"]]) == model.predict(df[["x1", "x2"]])).all()


def test_a_model_file_that_would_call_a_function_is_never_loaded(
    admin: Client, proj: dict, tmp_path: Path, settings
) -> None:
    """skops would rebuild `exec` or `numpy.load` by name; a FunctionTransformer holding one
    would call it on every prediction. Such a file is refused, naming the function."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    slug, df = proj["slug"], proj["df"]
    store = ArtifactStore(settings.artifact_root)
    from sklearn.linear_model import LogisticRegression

    from mlteam.core.modelfiles import dump_sklearn

    for func, name in ((exec, "builtins.exec"), (np.load, "numpy.load")):
        folder = tmp_path / name
        trap = _custom_model_dir(
            df, folder, make_pipeline(FunctionTransformer(), LogisticRegression())
        )
        trap[0].func = func  # fitted as the identity; the file says: call `func` on the input
        dump_sklearn(trap, str(folder / "model.skops"))
        run = admin.create_run(slug, "custom", name="a model with a function in it")
        for file in ("model.skops", "mlteam-model.json"):
            admin.log_artifact(run["id"], folder / file, f"model/{file}")
        with pytest.raises(InvalidInput, match=name.replace(".", r"\.")):
            load_model(store, f"runs/{run['id']}/artifacts/model")


def test_custom_code_logged_with_the_mlflow_client_registers(
    live_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow = pytest.importorskip("mlflow")
    token = live_server.cli("users", "create", f"{uid('mlf')}@example.com", "--admin")
    token = token.stdout.split()[-1]
    c = Client(live_server.url, token)
    slug = uid("mlfcustom")
    c.create_project(slug)
    df = _frame(120)
    model = _custom_model_dir(df, tmp_path / "model")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"{live_server.url}/mlflow/{slug}")
    try:
        mlflow.set_experiment("custom")
        with mlflow.start_run() as run:
            mlflow.log_param("C", 1.0)
            mlflow.log_artifacts(str(tmp_path / "model"), artifact_path="model")
    finally:
        mlflow.set_tracking_uri(before)
    mv = c.register(slug, "mlflow-custom", run.info.run_id)
    assert mv["format"] == "sklearn-skops" and mv["run_id"] == run.info.run_id
    got = load_sklearn(c.artifact(run.info.run_id, "model/model.skops"))
    assert (got.predict(df[["x1", "x2"]]) == model.predict(df[["x1", "x2"]])).all()


def test_sql_rule_baseline(admin: Client, proj: dict, settings) -> None:
    slug, df = proj["slug"], proj["df"]
    result = _train(
        admin, slug, "bin", "y", candidates=["baseline"], baseline_rule=RULE, register_as="rule"
    )["result"]
    base = result["runs"][0]
    assert base["name"] == "baseline_rule" and result["best"] == "baseline_rule"
    assert not result["beats_baseline"] and "baseline is the better product" in result["verdict"]
    expected = float(((df.x1 > 0).astype(int) == df.y).mean())
    assert base["metrics"]["accuracy"] > 0.6 and abs(base["metrics"]["accuracy"] - expected) < 0.15
    files = {a["path"] for a in admin.artifacts(base["run_id"], "model")}
    assert files == {"mlteam-model.json"}
    meta = json.loads(admin.artifact(base["run_id"], "model/mlteam-model.json"))
    assert meta["format"] == "sql-rule" and meta["expression"] == RULE
    mv = admin.model_version(slug, "rule", 1)
    assert mv["format"] == "sql-rule"
    rule = load_model(
        ArtifactStore(settings.artifact_root), f"runs/{base['run_id']}/artifacts/model"
    )
    assert isinstance(rule, RuleModel) and list(rule.classes_) == [0, 1]
    pred = rule.predict(df)
    assert (pred == (df.x1 > 0).astype(int)).all()
    assert (rule.predict_proba(df)[:, 1] == pred).all()


# -- executors ------------------------------------------------------------------------------------


def test_ray_executor_runs_trials_as_ray_tasks_like_local(
    admin: Client, proj: dict, tuned: dict
) -> None:
    ray = pytest.importorskip("ray")
    slug = proj["slug"]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        address = ray.get_runtime_context().gcs_address
        remote = _train(
            admin,
            slug,
            "bin",
            "y",
            experiment="exec-ray",
            executor="ray",
            ray_address=address,
            **TUNED,
        )["result"]
    finally:
        ray.shutdown()
    assert remote["tuning"]["executor"] == "ray"
    for cand in remote["runs"][1:]:
        tags = [admin.run(t["id"])["tags"] for t in _children(admin, slug, cand["run_id"])]
        assert len(tags) == 3
        assert all(t["mlteam.executor"] == "ray" and t["mlteam.trial.ray_task"] for t in tags)
    # the same seed gives the same trials, best params and metrics as the local executor
    _same_tuning(tuned["result"], remote)


# -- bad input ------------------------------------------------------------------------------------

BAD = [
    pytest.param({"target": "ghost"}, "target", id="target-missing"),
    pytest.param({"features": ["x1", "ghost"]}, "features", id="feature-unknown"),
    pytest.param(
        {"baseline_rule": 'CASE WHEN "x1" > THEN 1 END'}, "baseline_rule", id="rule-syntax"
    ),
    pytest.param(
        {"baseline_rule": "CASE WHEN nope > 1 THEN 1 ELSE 0 END"}, "baseline_rule", id="rule-column"
    ),
    pytest.param(
        {"baseline_rule": "CASE WHEN y > 1 THEN 1 ELSE 0 END"},
        "baseline_rule",
        id="rule-reads-target",
    ),
    pytest.param({"baseline_rule": "1; DROP TABLE v"}, "baseline_rule", id="rule-two-statements"),
    pytest.param(
        {"baseline_rule": "(SELECT count(*) FROM read_csv('/etc/passwd'))"},
        "baseline_rule",
        id="rule-reads-a-file",
    ),
    pytest.param({"trials": -1}, "trials", id="trials-negative"),
    pytest.param({"minutes": 0}, "minutes", id="minutes-zero"),
    pytest.param({"cv": 1}, "cv", id="cv-one"),
    pytest.param({"workers": 0}, "workers", id="workers-zero"),
    pytest.param({"executor": "spark"}, "executor", id="executor-unknown"),
    pytest.param({"executor": "ray"}, "ray_address", id="ray-without-address"),
    pytest.param({"candidates": ["xgboost"]}, "candidates", id="candidate-unknown"),
]


@pytest.mark.parametrize(("options", "field"), BAD)
def test_bad_request_is_refused_at_submission(
    admin: Client, proj: dict, options: dict, field: str
) -> None:
    slug = proj["slug"]
    opts = dict(options)
    target = opts.pop("target", "y")
    before = len(admin.jobs(slug))
    with pytest.raises(InvalidInput) as err:
        admin.train(slug, "bin", target, **opts)
    assert err.value.details["field"] == field
    assert len(admin.jobs(slug)) == before


def test_data_no_model_can_learn_from_is_refused_at_submission(
    admin: Client, proj: dict, tmp_path: Path
) -> None:
    """A feature of nulls, too few rows for the split, a constant target, a regression on text:
    a 4xx that names the problem, and no job, run or model version."""
    slug = proj["slug"]
    proj["df"].assign(flat=1).to_csv(tmp_path / "flat.csv", index=False)
    admin.upload(slug, "flat", tmp_path / "flat.csv")
    cases = [
        ("nulls", "y", {}, "features", "only nulls"),
        ("few", "y", {}, "rows", "too few rows"),
        ("flat", "flat", {}, "target", "constant"),
        ("bin", "colour", {"task": "regression"}, "task", "numeric target"),
    ]
    jobs_before, runs_before = len(admin.jobs(slug)), len(admin.runs(slug))
    for dataset, target, options, field, says in cases:
        name = uid("never")
        with pytest.raises(InvalidInput) as err:
            admin.train(slug, dataset, target, register_as=name, **options)
        assert err.value.details["field"] == field and says in err.value.message, err.value
        with pytest.raises(NotFound):
            admin.model_versions(slug, name)
    assert len(admin.jobs(slug)) == jobs_before and len(admin.runs(slug)) == runs_before


def test_recorded_version_split_is_used(admin: Client, proj: dict, tmp_path: Path) -> None:
    slug = proj["slug"]
    proj["df"].assign(id=range(len(proj["df"]))).to_csv(tmp_path / "keyed.csv", index=False)
    admin.upload(slug, "keyed", tmp_path / "keyed.csv")
    version = admin.split(
        slug, "keyed", 1, "id", fractions={"train": 0.6, "validation": 0.2, "test": 0.2}
    )
    result = _train(admin, slug, "keyed", "y", features=["x1", "x2"], candidates=["linear"])[
        "result"
    ]
    assert result["split"]["source"] == "version" and result["split"]["column"] == "id"
    assert result["split"]["rows"] == version["split"]["counts"]
    params = admin.run(result["best_run_id"])["params"]
    assert json.loads(params["split"])["method"] == "hash"


# -- without a server: budget and export edge cases ----------------------------------------------


def test_minutes_budget_stops_tuning() -> None:
    from mlteam.training import executors, recipes, tuning

    df = _frame(120)
    feats = ["x1", "x2", "x3", "colour"]
    ex = executors.make("local", df, 1)
    out = tuning.tune(
        "linear",
        "classification",
        df,
        feats,
        "y",
        executor=ex,
        trials=None,
        minutes=1e-6,
        cv=2,
        seed=0,
    )
    assert len(out["trials"]) == 1 and out["best_params"]["C"] > 0
    assert recipes.PRIMARY["classification"] == ("accuracy", True)


def test_float32_export_that_misses_the_tolerance_is_not_kept() -> None:
    from mlteam.training import export, recipes

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    df["t"] = 1e6 + 1e4 * df["a"] + rng.normal(size=200)  # large values: float32 rounds
    train, validation, _ = recipes.split_frame(df, "t", "regression", 0.2, 0)
    params = recipes.default_params("lightgbm", "regression")
    model = recipes.pipeline("lightgbm", "regression", train, ["a", "b"], params, 0, n_jobs=1)
    model.fit(train[["a", "b"]], train["t"])
    graph, meta = export.export(model, "lightgbm", "regression", validation, ["a", "b"])
    assert graph is None and meta["onnx"] is None
    assert "float32" in meta["onnx_note"]


def test_cli_train_with_tuning_and_a_rule_baseline(live_server, tmp_path: Path) -> None:
    cli = live_server.cli
    out = cli("users", "create", f"{uid('trcli')}@example.com", "--admin").stdout
    token = out.strip().splitlines()[-1]
    slug = uid("trcli")
    cli("projects", "create", slug, token=token)
    _frame().to_csv(tmp_path / "bin.csv", index=False)
    cli("data", "upload", slug, "bin", str(tmp_path / "bin.csv"), token=token)
    res = cli(
        "train",
        slug,
        "bin",
        "--target",
        "y",
        "--candidates",
        "linear",
        "--trials",
        "2",
        "--baseline-rule",
        RULE,
        "--register-as",
        "cli-clf",
        token=token,
    )
    assert "baseline_rule" in res.stdout and "logistic_regression" in res.stdout
    assert "trials" in res.stdout and "beats the baseline (baseline_rule)" in res.stdout
    assert "registered cli-clf v1" in res.stdout
    bad = cli(
        "train", slug, "bin", "--target", "y", "--executor", "spark", token=token, check=False
    )
    assert bad.returncode != 0 and "executor" in (bad.stdout + bad.stderr)


def test_pruning_is_deterministic() -> None:
    """Trials worse than the median of finished trials at a fold stop early; reruns prune the
    same trials at the same folds."""
    from mlteam.training import executors, tuning

    df = _frame(150)
    feats = ["x1", "x2", "x3", "colour"]

    def run() -> list[tuple]:
        ex = executors.make("local", df, 1)
        out = tuning.tune(
            "random_forest",
            "classification",
            df,
            feats,
            "y",
            executor=ex,
            trials=12,
            minutes=None,
            cv=3,
            seed=1,
        )
        return [(t["params"], t["pruned"], t["values"]) for t in out["trials"]]

    first = run()
    assert any(pruned for _, pruned, _ in first)
    assert all(len(v) < 3 for _, pruned, v in first if pruned)
    assert run() == first
