"""The evaluation suite as a library: metrics against scikit-learn's and fairlearn's own,
the ship decision, leakage, invariances, robustness, slices, HTML, and bad input.

No server and no database: run_suite takes fitted models and DataFrames.
"""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from sklearn import metrics as skm
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlteam.core.errors import InvalidInput
from mlteam.evaluation.metrics import (
    HIGHER_IS_BETTER,
    PRIMARY,
    Predictions,
    bootstrap_weights,
    compute,
)
from mlteam.evaluation.report import render_html
from mlteam.evaluation.suite import run_suite

CONTRACT_KEYS = {
    "task",
    "target",
    "rows",
    "primary_metric",
    "metrics",
    "confusion_matrix",
    "baseline",
    "champion",
    "slices",
    "worst_slices",
    "fairness",
    "robustness",
    "leakage",
    "business_value",
    "feature_importance",
    "curves",
}


def classifier():
    return make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=2000))


def split(frame: pd.DataFrame, stratify: bool = True):
    return train_test_split(
        frame, test_size=0.35, random_state=0, stratify=frame["target"] if stratify else None
    )


@pytest.fixture(scope="module")
def binary():
    df = load_breast_cancer(as_frame=True).frame
    feats = [c for c in df.columns if c != "target"]
    df["group"] = np.where(df["mean texture"] > df["mean texture"].median(), "high", "low")
    train, test = split(df)
    model = classifier().fit(train[feats], train["target"])
    baseline = DummyClassifier(strategy="most_frequent").fit(train[feats], train["target"])
    return train, test, feats, model, baseline


@pytest.fixture(scope="module")
def binary_report(binary):
    train, test, feats, model, baseline = binary
    return run_suite(
        "classification",
        model,
        test,
        "target",
        feats,
        train=train,
        baseline=baseline,
        slice_columns=["group", "mean radius"],
        sensitive="group",
    )


def test_binary_report_has_contract_shape_and_is_strict_json(binary_report):
    assert set(binary_report) == CONTRACT_KEYS
    json.dumps(binary_report, allow_nan=False)  # no NaN, no numpy types
    assert binary_report["primary_metric"] == PRIMARY["classification"] == "roc_auc"
    for name in binary_report["metrics"]:
        assert name in HIGHER_IS_BETTER


def test_binary_metrics_equal_sklearn_for_the_positive_class(binary, binary_report):
    _, test, feats, model, _ = binary
    y, pred, proba = (
        test["target"],
        model.predict(test[feats]),
        model.predict_proba(test[feats])[:, 1],
    )
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred),
        "recall": skm.recall_score(y, pred),
        "f1": skm.f1_score(y, pred),
        "roc_auc": skm.roc_auc_score(y, proba),
        "pr_auc": skm.average_precision_score(y, proba),
        "log_loss": skm.log_loss(y, proba),
    }
    got = {k: binary_report["metrics"][k]["value"] for k in expected}
    assert got == pytest.approx(expected, abs=1e-9)
    cm = binary_report["confusion_matrix"]
    assert cm["labels"] == [0, 1]
    assert cm["matrix"] == skm.confusion_matrix(y, pred, labels=[0, 1]).tolist()
    curves = binary_report["curves"]
    assert 2 < len(curves["roc"]["fpr"]) <= 200 and len(curves["pr"]["recall"]) <= 200
    assert curves["roc"]["fpr"][0] == 0.0 and curves["roc"]["tpr"][-1] == 1.0


def test_bootstrap_ci_contains_point_value_and_is_reproducible_by_seed(binary, binary_report):
    for name, m in binary_report["metrics"].items():
        assert m["ci_low"] <= m["value"] + 1e-12 and m["value"] <= m["ci_high"] + 1e-12, name
        assert m["ci_low"] < m["ci_high"] or name in ("recall", "precision"), name
    _, test, feats, model, _ = binary
    again = run_suite("classification", model, test, "target", feats, bootstrap=200, seed=0)
    other = run_suite("classification", model, test, "target", feats, bootstrap=200, seed=1)
    assert again["metrics"] == binary_report["metrics"]
    assert other["metrics"]["roc_auc"]["ci_low"] != again["metrics"]["roc_auc"]["ci_low"]


def test_bootstrap_weights_give_sklearns_weighted_metrics_with_tied_scores():
    rng = np.random.default_rng(3)
    n = 400
    y = rng.integers(0, 2, n)
    score = np.round(np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1), 1)  # many ties
    pred = (score > 0.5).astype(int)
    p = Predictions("classification", [0, 1], y, pred, np.c_[1 - score, score])
    W = next(bootstrap_weights(n, 3, seed=7))
    got = compute(p, W)
    for b, w in enumerate(W):
        assert got["roc_auc"][b] == pytest.approx(
            skm.roc_auc_score(y, score, sample_weight=w), abs=1e-12
        )
        assert got["pr_auc"][b] == pytest.approx(
            skm.average_precision_score(y, score, sample_weight=w), abs=1e-12
        )
        assert got["f1"][b] == pytest.approx(skm.f1_score(y, pred, sample_weight=w), abs=1e-12)
        assert got["balanced_accuracy"][b] == pytest.approx(
            skm.balanced_accuracy_score(y, pred, sample_weight=w), abs=1e-12
        )


def test_ece_is_zero_for_calibrated_scores_and_the_gap_otherwise():
    y = np.array([0, 1] * 50)
    flat = np.full((100, 2), 0.5)
    calibrated = Predictions("classification", [0, 1], y, np.zeros(100, dtype=int), flat)
    assert compute(calibrated, np.ones((1, 100)), ["ece"])["ece"][0] == pytest.approx(0.0)
    overconfident = np.tile([0.1, 0.9], (100, 1))
    p = Predictions("classification", [0, 1], y, np.ones(100, dtype=int), overconfident)
    assert compute(p, np.ones((1, 100)), ["ece"])["ece"][0] == pytest.approx(0.4)


def test_multiclass_metrics_are_sklearn_macro_averages_and_curves_are_none():
    df = load_iris(as_frame=True).frame
    feats = [c for c in df.columns if c != "target"]
    train, test = split(df)
    model = classifier().fit(train[feats], train["target"])
    test = test.assign(site=np.where(np.arange(len(test)) % 3 == 0, "x", "y"))
    report = run_suite(
        "classification", model, test, "target", feats, sensitive="site", bootstrap=50
    )
    y, pred, proba = test["target"], model.predict(test[feats]), model.predict_proba(test[feats])
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred, average="macro"),
        "recall": skm.recall_score(y, pred, average="macro"),
        "f1": skm.f1_score(y, pred, average="macro"),
        "roc_auc": skm.roc_auc_score(y, proba, multi_class="ovr"),
        "log_loss": skm.log_loss(y, proba),
    }
    assert {k: report["metrics"][k]["value"] for k in expected} == pytest.approx(expected, abs=1e-9)
    assert report["confusion_matrix"]["matrix"] == skm.confusion_matrix(y, pred).tolist()
    assert report["curves"] == {"roc": None, "pr": None, "calibration": None}
    assert report["fairness"]["equalized_odds_difference"] is None
    assert 0.0 <= report["fairness"]["demographic_parity_difference"] <= 1.0


@pytest.fixture(scope="module")
def regression():
    df = load_diabetes(as_frame=True).frame
    feats = [c for c in df.columns if c != "target"]
    train, test = split(df, stratify=False)
    return (
        train,
        test,
        feats,
        Ridge(alpha=0.1).fit(train[feats], train["target"]),
        DummyRegressor().fit(train[feats], train["target"]),
    )


def test_regression_metrics_equal_sklearn_and_cost_gives_value_per_1000(regression):
    train, test, feats, model, baseline = regression
    report = run_suite(
        "regression",
        model,
        test,
        "target",
        feats,
        train=train,
        baseline=baseline,
        value_matrix={"cost_per_unit_error": 2.0},
        slice_columns=["sex"],
    )
    y, pred = test["target"], model.predict(test[feats])
    expected = {
        "mae": skm.mean_absolute_error(y, pred),
        "rmse": skm.root_mean_squared_error(y, pred),
        "r2": skm.r2_score(y, pred),
        "mape": skm.mean_absolute_percentage_error(y, pred),
    }
    assert {k: report["metrics"][k]["value"] for k in expected} == pytest.approx(expected, rel=1e-9)
    assert report["primary_metric"] == "rmse" and report["confusion_matrix"] is None
    bv = report["business_value"]
    assert bv["per_1000"]["model"] == pytest.approx(-2.0 * np.abs(pred - y).mean() * 1000)
    assert bv["ship"] == "model" and bv["statement"].startswith("Ship the model")
    assert "cost_per_unit_error" in bv["unit"]
    json.dumps(report, allow_nan=False)


def test_rows_without_a_target_are_left_out_and_float_labels_match_int_classes(
    binary, binary_report
):
    _, test, feats, model, _ = binary
    # one unlabelled row turns the target column into floats (0.0 / 1.0); the model knows ints
    holed = test.assign(target=test["target"].astype(float))
    holed = pd.concat([holed, holed.iloc[:1].assign(target=np.nan)], ignore_index=True)
    report = run_suite(
        "classification",
        model,
        holed,
        "target",
        feats,
        bootstrap=10,
        value_matrix={"0": {"0": 1, "1": -1}, "1": {"0": -1, "1": 1}},
    )
    assert report["rows"] == len(test)
    assert report["confusion_matrix"] == binary_report["confusion_matrix"]
    assert report["metrics"]["roc_auc"]["value"] == binary_report["metrics"]["roc_auc"]["value"]


def test_baseline_beating_a_deliberately_bad_model_is_shipped(binary):
    train, test, feats, _, baseline = binary
    # trained on flipped labels: confidently wrong
    bad = classifier().fit(train[feats], 1 - train["target"])
    report = run_suite(
        "classification", bad, test, "target", feats, baseline=baseline, bootstrap=100
    )
    bv = report["business_value"]
    assert bv["ship"] == "baseline"
    assert bv["vs_baseline"]["difference_per_1000"] < 0 and bv["vs_baseline"]["significant"]
    assert bv["vs_baseline"]["ci_high"] < 0
    assert bv["statement"].startswith("Ship the baseline") and "better product" in bv["statement"]


def test_value_matrix_gives_per_1000_values_and_a_plain_ship_statement(binary):
    train, test, feats, model, baseline = binary
    matrix = {"0": {"0": 10, "1": -50}, "1": {"0": -5, "1": 2}}
    report = run_suite(
        "classification", model, test, "target", feats, baseline=baseline, value_matrix=matrix
    )
    y, pred = test["target"].to_numpy(), model.predict(test[feats])
    hand = np.mean([matrix[str(t)][str(p)] for t, p in zip(y, pred, strict=True)]) * 1000
    bv = report["business_value"]
    assert bv["per_1000"]["model"] == pytest.approx(hand)
    assert bv["per_1000"]["champion"] is None and bv["vs_champion"] is None
    diff = bv["vs_baseline"]
    assert diff["ci_low"] <= diff["difference_per_1000"] <= diff["ci_high"]
    assert bv["ship"] == "model"
    assert re.match(
        r"Ship the model: it is worth [\d,.]+ per 1,000 decisions more than the baseline \(95% CI",
        bv["statement"],
    )


def test_without_bootstrap_there_are_no_intervals_but_still_a_decision(binary):
    _, test, feats, model, baseline = binary
    report = run_suite(
        "classification", model, test, "target", feats, baseline=baseline, bootstrap=0
    )
    assert (
        report["metrics"]["accuracy"]["ci_low"] is None
        and report["metrics"]["accuracy"]["value"] > 0.9
    )
    bv = report["business_value"]
    assert bv["vs_baseline"]["ci_low"] is None and bv["ship"] == "model"
    assert "95% CI" not in bv["statement"]
    json.dumps(report, allow_nan=False)


def test_champion_the_model_does_not_beat_is_kept(binary):
    _, test, feats, model, baseline = binary
    report = run_suite(
        "classification",
        model,
        test,
        "target",
        feats,
        baseline=baseline,
        champion=model,
        champion_version=3,
        bootstrap=50,
    )
    bv = report["business_value"]
    assert bv["ship"] == "champion"
    assert bv["vs_champion"]["difference_per_1000"] == 0 and not bv["vs_champion"]["significant"]
    assert bv["statement"].startswith("Keep the champion (version 3)")
    assert report["champion"]["version"] == 3
    assert report["champion"]["metrics"] == report["metrics"]


def test_leakage_flags_a_copy_of_the_target_and_no_honest_feature(binary):
    train, test, feats, _, _ = binary
    train, test = train.assign(leak=train["target"] * 3.0), test.assign(leak=test["target"] * 3.0)
    model = classifier().fit(train[feats + ["leak"]], train["target"])
    report = run_suite("classification", model, test, "target", feats + ["leak"], bootstrap=20)
    leak = report["leakage"]
    assert leak["suspects"] == ["leak"]
    assert leak["single_feature"][0] == {"feature": "leak", "score": 1.0}


def test_leakage_flags_a_monotone_copy_of_a_regression_target(regression):
    train, test, feats, _, _ = regression
    train, test = (
        train.assign(leak=train["target"] * 2 + 1),
        test.assign(leak=test["target"] * 2 + 1),
    )
    model = Ridge().fit(train[feats + ["leak"]], train["target"])
    report = run_suite("regression", model, test, "target", feats + ["leak"], bootstrap=20)
    assert report["leakage"]["suspects"] == ["leak"]


def test_leakage_counts_test_rows_duplicated_from_train(binary):
    train, test, feats, model, _ = binary
    clean = run_suite("classification", model, test, "target", feats, train=train, bootstrap=10)
    assert clean["leakage"]["shared_rows"] == 0
    dup = pd.concat([test, train.iloc[:7]], ignore_index=True)
    report = run_suite("classification", model, dup, "target", feats, train=train, bootstrap=10)
    assert report["leakage"]["shared_rows"] == 7
    assert report["leakage"]["shared_fraction"] == pytest.approx(7 / len(dup))
    without = run_suite("classification", model, dup, "target", feats, bootstrap=10)
    assert without["leakage"]["shared_rows"] == 0 and without["leakage"]["train_checked"] is False


def test_invariance_on_an_id_column_passes_when_ignored_and_fails_when_used(binary):
    train, test, feats, _, _ = binary
    rng = np.random.default_rng(0)
    # ids that happen to encode the label: a model that uses them leans on them hard
    train = train.assign(customer_id=rng.integers(0, 1000, len(train)) + 1000 * train["target"])
    test = test.assign(customer_id=rng.integers(0, 1000, len(test)) + 1000 * test["target"])
    cols = feats + ["customer_id"]
    ignores = make_pipeline(
        ColumnTransformer([("keep", "passthrough", feats)]),
        StandardScaler(),
        LogisticRegression(max_iter=2000),
    ).fit(train[cols], train["target"])
    uses = classifier().fit(train[cols], train["target"])
    inv = [{"name": "customer id does not matter", "column": "customer_id"}]
    ok = run_suite("classification", ignores, test, "target", cols, invariances=inv, bootstrap=10)
    bad = run_suite("classification", uses, test, "target", cols, invariances=inv, bootstrap=10)
    assert ok["robustness"]["invariances"] == [
        {
            "name": "customer id does not matter",
            "column": "customer_id",
            "changed_fraction": 0.0,
            "passed": True,
        }
    ]
    [check] = bad["robustness"]["invariances"]
    assert check["passed"] is False and check["changed_fraction"] > 0.3


def test_fairness_numbers_equal_fairlearns_own(binary, binary_report):
    _, test, feats, model, _ = binary
    y, pred, group = test["target"], model.predict(test[feats]), test["group"]
    fair = binary_report["fairness"]
    assert fair["column"] == "group" and fair["positive"] == "1"
    assert fair["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y, pred, sensitive_features=group), abs=1e-12
    )
    assert fair["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y, pred, sensitive_features=group), abs=1e-12
    )
    by = {g["group"]: g for g in fair["groups"]}
    for g in ("high", "low"):
        mask = (group == g).to_numpy()
        assert by[g]["rows"] == mask.sum()
        assert by[g]["selection_rate"] == pytest.approx((pred[mask] == 1).mean())
        assert by[g]["metrics"]["accuracy"] == pytest.approx(
            skm.accuracy_score(y[mask], pred[mask])
        )


def test_robustness_reports_noise_missing_and_permutation_importance(binary_report):
    rob = binary_report["robustness"]
    assert (
        rob["metric"] == "roc_auc" and rob["base"] == binary_report["metrics"]["roc_auc"]["value"]
    )
    assert rob["missing"]["value"] is not None  # the pipeline imputes
    assert abs(rob["noise"]["drop"]) < 0.05
    drops = [
        rob["noise"]["drop"],
        rob["missing"]["drop"],
        *(s["drop"] for s in rob["shuffled"].values()),
    ]
    assert rob["max_drop"] == pytest.approx(max(drops))
    imp = binary_report["feature_importance"]
    assert [i["importance"] for i in imp] == sorted((i["importance"] for i in imp), reverse=True)
    assert {i["feature"]: i["importance"] for i in imp} == {
        f: s["drop"] for f, s in rob["shuffled"].items()
    }
    assert imp[0]["importance"] > 0


def test_missing_values_a_model_cannot_take_are_reported_not_raised(binary):
    _, test, feats, _, _ = binary
    no_imputer = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(
        test[feats], test["target"]
    )
    report = run_suite("classification", no_imputer, test, "target", feats, bootstrap=10)
    missing = report["robustness"]["missing"]
    assert missing["value"] is None and "NaN" in missing["error"]


def test_slices_list_every_value_and_numeric_bins_worst_first(binary, binary_report):
    _, test, _, _, _ = binary
    slices = binary_report["slices"]
    by_col: dict[str, list] = {}
    for s in slices:
        by_col.setdefault(s["column"], []).append(s)
    assert {s["slice"] for s in by_col["group"]} == {"high", "low"}
    assert 2 <= len(by_col["mean radius"]) <= 5  # many distinct values: quantile bins
    for rows in by_col.values():
        assert sum(s["rows"] for s in rows) == len(test)
    aucs = [s["metrics"]["roc_auc"] for s in slices if s["metrics"]["roc_auc"] is not None]
    assert aucs == sorted(aucs)
    assert binary_report["worst_slices"] == slices[:5]
    high = test["group"] == "high"
    model_auc = [s for s in by_col["group"] if s["slice"] == "high"][0]["metrics"]["roc_auc"]
    _, _, feats, model, _ = binary
    assert model_auc == pytest.approx(
        skm.roc_auc_score(test["target"][high], model.predict_proba(test[feats][high])[:, 1])
    )


def test_missing_slice_and_group_values_get_their_own_slice(binary):
    _, test, feats, model, _ = binary
    region = np.where(
        np.arange(len(test)) % 4 == 0, None, np.where(np.arange(len(test)) % 2, "north", "south")
    )
    test = test.assign(region=region, vip=np.arange(len(test)) % 3 == 0)
    report = run_suite(
        "classification",
        model,
        test,
        "target",
        feats,
        slice_columns=["region", "vip"],
        sensitive="region",
        bootstrap=10,
    )
    slices = {(s["column"], s["slice"]): s["rows"] for s in report["slices"]}
    assert slices[("region", "(missing)")] == (np.arange(len(test)) % 4 == 0).sum()
    assert slices[("vip", "True")] + slices[("vip", "False")] == len(test)
    groups = {g["group"]: g["rows"] for g in report["fairness"]["groups"]}
    assert set(groups) == {"(missing)", "north", "south"} and sum(groups.values()) == len(test)


def test_tiny_slices_are_listed_but_ranked_after_real_ones(binary):
    _, test, feats, model, _ = binary
    # four rows the model ranks worst (AUC 0 among them): listed, but not the "worst slice"
    score = model.predict_proba(test[feats])[:, 1]
    y = test["target"].to_numpy()
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    worst = np.r_[pos[np.argsort(score[pos])[:2]], neg[np.argsort(-score[neg])[:2]]]
    tiny = np.full(len(test), "main", dtype=object)
    tiny[worst] = "tiny"
    report = run_suite(
        "classification",
        model,
        test.assign(seg=tiny),
        "target",
        feats,
        slice_columns=["seg"],
        bootstrap=10,
    )
    assert [s["slice"] for s in report["slices"]] == ["main", "tiny"]
    assert (
        report["slices"][1]["metrics"]["roc_auc"] == 0.0 < report["slices"][0]["metrics"]["roc_auc"]
    )


def test_render_html_is_self_contained_with_statement_plots_and_escaped_text(binary_report):
    page = render_html(binary_report, 'Churn <script>alert("x")</script>')
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert html.escape(binary_report["business_value"]["statement"], quote=False) in page
    assert page.count("<svg") >= 5  # confusion, ROC, PR, calibration, importance, fairness
    assert "<script" not in page and "&lt;script&gt;" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", page)
    assert "<link" not in page
    assert page.index("Ship the model") < page.index("<h2>Metrics")


def test_render_html_for_regression_without_curves(regression):
    _, test, feats, model, _ = regression
    report = run_suite("regression", model, test, "target", feats, bootstrap=10)
    page = render_html(report, "diabetes")
    assert "<svg" in page and "Confusion matrix" not in page and "Ship the model" in page


def test_lightgbm_with_a_categorical_column_keeps_its_dtype_through_every_perturbation():
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame(
        {
            "plan": pd.Categorical(rng.choice(["basic", "pro", "team"], n)),
            "spend": rng.gamma(2.0, 30.0, n),
            "seats": rng.integers(1, 50, n),
        }
    )
    frame["target"] = ((frame["spend"] > 60) ^ (frame["plan"] == "pro")).astype(int)
    feats = ["plan", "spend", "seats"]
    train, test = frame.iloc[:400], frame.iloc[400:]
    # one thread: OpenMP threads fighting over a busy machine cost seconds on 200 rows
    model = lgb.LGBMClassifier(n_estimators=30, n_jobs=1, verbose=-1).fit(
        train[feats], train["target"]
    )
    report = run_suite(
        "classification",
        model,
        test,
        "target",
        feats,
        train=train,
        bootstrap=20,
        invariances=[{"name": "plan", "column": "plan"}],
        slice_columns=["plan"],
    )
    rob = report["robustness"]
    assert all(s["value"] is not None for s in rob["shuffled"].values())
    assert rob["shuffled"]["plan"]["drop"] > 0.05 and rob["shuffled"]["spend"]["drop"] > 0.05
    assert rob["missing"]["value"] is not None  # LightGBM takes missing values natively
    assert rob["invariances"][0]["passed"] is False  # the model does use the plan
    assert report["metrics"]["roc_auc"]["value"] > 0.9


class Rule:
    """A predict-only classifier (no predict_proba), like a hand-written rule."""

    classes_ = np.array([0, 1])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (X["worst radius"] < 16).astype(int).to_numpy()


def test_a_predict_only_rule_is_evaluated_with_one_hot_probabilities(binary):
    _, test, feats, model, _ = binary
    report = run_suite(
        "classification", model, test, "target", feats, baseline=Rule(), bootstrap=20
    )
    base = report["baseline"]["metrics"]
    pred = Rule().predict(test)
    assert base["accuracy"]["value"] == pytest.approx(skm.accuracy_score(test["target"], pred))
    assert base["roc_auc"]["value"] == pytest.approx(skm.roc_auc_score(test["target"], pred))


def test_progress_is_reported_up_to_done(binary):
    _, test, feats, model, _ = binary
    seen: list[tuple[float, str]] = []
    run_suite(
        "classification",
        model,
        test,
        "target",
        feats,
        bootstrap=10,
        progress=lambda f, m: seen.append((f, m)),
    )
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and seen[-1] == (1.0, "done")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"target": "nope"}, "target"),
        ({"test": "empty"}, "test"),
        ({"sensitive": "nope"}, "sensitive"),
        ({"slice_columns": ["group", "nope"]}, "slice_columns"),
        ({"invariances": [{"name": "id", "column": "nope"}]}, "invariances"),
        ({"value_matrix": {"yes": {"no": 1}}}, "value_matrix"),
        ({"value_matrix": {"0": {"0": 1, "7": -1}}}, "value_matrix"),
        ({"task": "ranking"}, "task"),
        ({"features": ["nope"]}, "features"),
        ({"bootstrap": -1}, "bootstrap"),
    ],
)
def test_bad_input_raises_invalid_input_naming_the_field(binary, kwargs, field):
    _, test, feats, model, _ = binary
    args = {
        "task": "classification",
        "model": model,
        "test": test,
        "target": "target",
        "features": feats,
        "bootstrap": 10,
    }
    if kwargs.get("test") == "empty":
        kwargs = {"test": test.iloc[:0]}
    args.update(kwargs)
    with pytest.raises(InvalidInput) as err:
        run_suite(**args)
    assert err.value.details["field"] == field


def test_a_label_matrix_for_a_regression_model_is_refused(regression):
    _, test, feats, model, _ = regression
    with pytest.raises(InvalidInput) as err:
        run_suite(
            "regression", model, test, "target", feats, value_matrix={"0": {"0": 1}}, bootstrap=10
        )
    assert err.value.details["field"] == "value_matrix"
