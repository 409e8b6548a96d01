"""Tracking: MLflow's filter language, search, latest metrics, compare, bad input, concurrency."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest

from mlteam import Client, InvalidInput, NotFound
from mlteam.core.auth import get_user_by_email
from mlteam.core.models import User
from mlteam.tracking import service
from mlteam.tracking.filters import parse_filter, parse_order_by
from mlteam.tracking.models import Run
from mlteam.tracking.search import search_runs
from tests.conftest import uid

# -- the language ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("metrics.acc > 0.9", [("metric", "acc", ">", 0.9)]),
        (
            "metrics.acc >= 1 AND params.lr = '0.01' and tags.team != \"x\"",
            [("metric", "acc", ">=", 1), ("param", "lr", "=", "0.01"), ("tag", "team", "!=", "x")],
        ),
        ("metric.`my metric` <= -1.5e-3", [("metric", "my metric", "<=", -0.0015)]),
        ("tags.\"mlflow.runName\" LIKE 'cand%'", [("tag", "mlflow.runName", "LIKE", "cand%")]),
        ("params.model.lr ILIKE 'A%'", [("param", "model.lr", "ILIKE", "A%")]),
        ("param.a = 'it''s'", [("param", "a", "=", "it's")]),
        ("parameters.a IS NULL", [("param", "a", "IS NULL", None)]),
        ("tag.a is not null", [("tag", "a", "IS NOT NULL", None)]),
        ("metrics.a<-1", [("metric", "a", "<", -1)]),
        (
            "attributes.run_id IN ('a', 'b') and run.status NOT IN ('FAILED')",
            [("attr", "run_id", "IN", ["a", "b"]), ("attr", "status", "NOT IN", ["FAILED"])],
        ),
        ("attr.`Run Name` = 'x'", [("attr", "run_name", "=", "x")]),
        (
            "attribute.created > 5 and attributes.end_time < 7",
            [
                ("attr", "start_time", ">", 5),
                ("attr", "end_time", "<", 7),
            ],
        ),
    ],
)
def test_parse_filter(text: str, expected: list[tuple]) -> None:
    got = [(c.kind, c.key, c.op, c.value) for c in parse_filter(text)]
    assert got == expected


@pytest.mark.parametrize(
    ("text", "position", "says"),
    [
        ("metrics.acc", 11, "expected a comparator after 'metrics.acc'"),
        ("params.lr = '0.01' and metrics.acc", 34, "expected a comparator after 'metrics.acc'"),
        ("metrics.acc 0.9", 12, "expected a comparator"),
        ("params.lr = 0.01", 12, "expected a quoted string"),
        ("metrics.acc = 'high'", 14, "expected a number"),
        ("foo.x = 1", 0, "unknown identifier 'foo'"),
        ("acc > 1", 0, "expected an identifier"),
        ("metrics.a > 1 or metrics.b > 2", 14, "OR is not supported"),
        ("metrics.a > 1 and", 17, "found the end of the filter"),
        ("metrics.a > 1 metrics.b > 2", 14, "expected AND"),
        ("attributes.status > 'x'", 18, "> does not apply to 'attributes.status'"),
        ("metrics.a LIKE '1'", 10, "LIKE does not apply"),
        ("attributes.colour = 'red'", 0, "unknown attribute 'colour'"),
        ("params.a = 'open", 11, "no closing '"),
        ("tags.`open = 'x'", 5, "no closing `"),
        ("attributes.run_id IN ('a' 'b')", 26, "expected ',' or ')'"),
        ("attributes.run_id IN 'a'", 21, "expected '('"),
        ("params.a IS 'x'", 9, "IS NULL or IS NOT NULL"),
        ("params.a LIKE 'x\\'", 14, "lone '\\'"),
        ("`x` = 1", 0, "needs a prefix"),
        ("metrics. > 1", 8, "expected a key"),
        ("params.a = 'x' ; drop table runs", 15, "unexpected character ';'"),
    ],
)
def test_bad_filter_says_where(text: str, position: int, says: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_filter(text)
    assert err.value.details == {"field": "filter", "position": position}
    assert err.value.message.startswith(f"invalid filter at position {position}: ")
    assert says in err.value.message


def test_parse_order_by() -> None:
    got = parse_order_by(["metrics.acc DESC", "params.lr", "attributes.start_time asc", "tags.x"])
    assert [(o.kind, o.key, o.ascending) for o in got] == [
        ("metric", "acc", False),
        ("param", "lr", True),
        ("attr", "start_time", True),
        ("tag", "x", True),
    ]
    assert parse_order_by(["end_time DESC"])[0].key == "end_time"
    for bad, says in [
        (["metrics.acc DOWN"], "expected ASC or DESC"),
        (["metrics.a", "metric.a DESC"], "twice"),
        (["metrics.a ASC more"], "expected the end"),
        (["colour"], "expected an identifier"),
    ]:
        with pytest.raises(InvalidInput, match=says) as err:
            parse_order_by(bad)
        assert err.value.details["field"] == "order_by"


# -- search over a handful of runs -------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(admin: Client) -> dict:
    """Five runs; created a few ms apart so start_time orders them."""
    slug = uid("search")
    admin.create_project(slug)
    specs = {
        "alpha": (
            {"lr": "0.01", "model": "tree"},
            {"team": "x"},
            [("acc", 0.5, 0), ("acc", 0.95, 1), ("loss", 0.1, 1)],
            "FINISHED",
        ),
        "beta": ({"lr": "0.1", "model": "Tree"}, {"team": "y"}, [("acc", 0.8, 0)], "FAILED"),
        "gamma": (
            {"lr": "0.01"},
            {"team": "X", "mlflow.runName": "gamma"},
            [("acc", math.nan, 0)],
            "RUNNING",
        ),
        "delta": ({}, {}, [("loss", 0.5, 0)], "FINISHED"),
        "epsilon": (
            {"lr": "0.001", "model": "tree_%"},
            {},
            [("acc", 0.9, 0), ("my metric", 3, 0)],
            "KILLED",
        ),
    }
    ids = {}
    for name, (params, tags, metrics, status) in specs.items():
        experiment = "other" if name == "delta" else "main"
        run = admin.create_run(slug, experiment, name=name, params=params, tags=tags)
        points = [{"key": k, "value": v, "step": s} for k, v, s in metrics]
        admin.log_metrics(run["id"], points)
        if status != "RUNNING":
            admin.finish_run(run["id"], status)
        ids[name] = run["id"]
        time.sleep(0.005)
    return {"slug": slug, "ids": ids, "names": {v: k for k, v in ids.items()}}


def names(runs: dict, page: dict) -> list[str]:
    return [runs["names"][r["id"]] for r in page["runs"]]


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("", {"alpha", "beta", "gamma", "delta", "epsilon"}),
        ("metrics.acc > 0.9", {"alpha"}),
        ("metrics.acc >= 0.9", {"alpha", "epsilon"}),
        ("metrics.acc < 0.9", {"beta"}),
        ("metrics.acc <= 0.8", {"beta"}),
        ("metrics.acc = 0.8", {"beta"}),
        ("metrics.acc != 0.8", {"alpha", "gamma", "epsilon"}),  # NaN differs from 0.8
        ("metrics.acc IS NULL", {"delta"}),
        ("metrics.acc IS NOT NULL", {"alpha", "beta", "gamma", "epsilon"}),
        ("metrics.`my metric` > 2", {"epsilon"}),
        ("params.lr = '0.01'", {"alpha", "gamma"}),
        ("params.lr != '0.01'", {"beta", "epsilon"}),
        ("params.lr LIKE '0.0%'", {"alpha", "gamma", "epsilon"}),
        ("params.model LIKE 'tree%'", {"alpha", "epsilon"}),  # case-sensitive on both backends
        ("params.model ILIKE 'TREE%'", {"alpha", "beta", "epsilon"}),
        ("params.model LIKE 'tree\\_\\%'", {"epsilon"}),
        ("params.model LIKE 'tre_'", {"alpha"}),
        ("params.model IS NULL", {"gamma", "delta"}),
        ("params.lr IN ('0.1', '0.001')", {"beta", "epsilon"}),
        ("tags.team = 'x'", {"alpha"}),
        ("tags.team ILIKE 'x'", {"alpha", "gamma"}),
        ("tags.team NOT IN ('x')", {"beta", "gamma"}),
        ("tags.\"mlflow.runName\" = 'gamma'", {"gamma"}),
        ("tags.team IS NOT NULL", {"alpha", "beta", "gamma"}),
        ("attributes.status = 'FINISHED'", {"alpha", "delta"}),
        ("attributes.status IN ('FAILED', 'KILLED')", {"beta", "epsilon"}),
        ("attributes.status NOT IN ('FAILED', 'KILLED')", {"alpha", "gamma", "delta"}),
        ("attributes.run_name LIKE '%ta'", {"beta", "delta"}),
        ("attributes.run_name != 'alpha'", {"beta", "gamma", "delta", "epsilon"}),
        ("attributes.end_time IS NULL", {"gamma"}),
        ("metrics.acc > 0.85 and params.lr = '0.01'", {"alpha"}),
        ("metrics.acc > 0.5 AND tags.team = 'y' and attributes.status = 'FAILED'", {"beta"}),
        ("metrics.acc > 0.5 and params.lr = '0.001' and tags.team = 'x'", set()),
    ],
)
def test_search_filters(admin: Client, runs: dict, filter_string: str, expected: set) -> None:
    page = admin.search_runs(runs["slug"], filter_string)
    assert set(names(runs, page)) == expected
    assert page["next_page_token"] is None


def test_search_by_run_id_and_start_time(admin: Client, runs: dict) -> None:
    ids = runs["ids"]
    page = admin.search_runs(runs["slug"], f"attributes.run_id IN ('{ids['beta']}', 'nope')")
    assert names(runs, page) == ["beta"]
    gamma = admin.run(ids["gamma"])
    page = admin.search_runs(runs["slug"], f"attributes.start_time >= {gamma['start_time']}")
    assert set(names(runs, page)) == {"gamma", "delta", "epsilon"}


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        ([], ["epsilon", "delta", "gamma", "beta", "alpha"]),  # newest first
        (["attributes.start_time ASC"], ["alpha", "beta", "gamma", "delta", "epsilon"]),
        # values, then NaN, then runs without the metric — in both directions
        (["metrics.acc DESC"], ["alpha", "epsilon", "beta", "gamma", "delta"]),
        (["metrics.acc"], ["beta", "epsilon", "alpha", "gamma", "delta"]),
        # ties (alpha, gamma) fall back to start_time DESC; missing params last
        (["params.lr ASC"], ["epsilon", "gamma", "alpha", "beta", "delta"]),
        (["params.lr DESC"], ["beta", "gamma", "alpha", "epsilon", "delta"]),
        (["tags.team", "attributes.run_name DESC"], ["gamma", "alpha", "beta", "epsilon", "delta"]),
        (["end_time DESC", "run_name"], ["epsilon", "delta", "beta", "alpha", "gamma"]),
    ],
)
def test_search_order(admin: Client, runs: dict, order_by: list, expected: list) -> None:
    assert names(runs, admin.search_runs(runs["slug"], order_by=order_by)) == expected


def test_text_sorts_by_code_point_on_postgresql_too() -> None:
    # A database created with an en_US locale would sort 'a,b,B,C' where SQLite says 'B,C,a,b'.
    from sqlalchemy import select
    from sqlalchemy.dialects import postgresql, sqlite

    from mlteam.tracking.search import _ordered

    orders = parse_order_by(["params.lr", "tags.t DESC", "run_name", "metrics.m", "start_time"])
    pg = str(_ordered(select(Run.id), orders, "postgresql").compile(dialect=postgresql.dialect()))
    assert pg.count('COLLATE "C"') == 3 and 'runs.name COLLATE "C" ASC' in pg
    lite = str(_ordered(select(Run.id), orders, "sqlite").compile(dialect=sqlite.dialect()))
    assert "COLLATE" not in lite  # SQLite compares text byte by byte already


@pytest.mark.parametrize("order_by", [[], ["metrics.acc DESC"], ["params.model"]])
def test_paging_returns_every_run_once(admin: Client, runs: dict, order_by: list) -> None:
    seen, token, pages = [], None, 0
    while True:
        page = admin.search_runs(runs["slug"], order_by=order_by, max_results=2, page_token=token)
        seen += names(runs, page)
        pages += 1
        token = page["next_page_token"]
        if token is None:
            break
    assert pages == 3 and len(seen) == 5 and set(seen) == set(runs["ids"])
    assert seen == names(runs, admin.search_runs(runs["slug"], order_by=order_by))


def test_search_returns_whole_runs_and_filters_experiments(admin: Client, runs: dict) -> None:
    page = admin.search_runs(runs["slug"], "params.lr = '0.01'", order_by=["attributes.run_name"])
    alpha = page["runs"][0]
    assert alpha["name"] == "alpha" and alpha["experiment"] == "main"
    assert alpha["params"] == {"lr": "0.01", "model": "tree"}
    assert alpha["tags"] == {"team": "x"}
    assert alpha["metrics"] == {"acc": 0.95, "loss": 0.1}
    assert page["runs"][1]["metrics"] == {"acc": None}  # NaN shows as null in JSON
    only = admin.search_runs(runs["slug"], experiments=["other"])
    assert names(runs, only) == ["delta"]
    with pytest.raises(NotFound, match="'ghost'"):
        admin.search_runs(runs["slug"], experiments=["ghost"])


def test_search_bad_input(admin: Client, runs: dict) -> None:
    with pytest.raises(InvalidInput) as err:
        admin.search_runs(runs["slug"], "metrics.acc >")
    assert err.value.details == {"field": "filter", "position": 13}
    with pytest.raises(InvalidInput, match="page_token"):
        admin.search_runs(runs["slug"], page_token="not-a-token")
    with pytest.raises(InvalidInput, match="max_results"):
        admin.search_runs(runs["slug"], max_results=0)
    with pytest.raises(InvalidInput, match="max_results"):
        admin.search_runs(runs["slug"], max_results=50_001)
    with pytest.raises(InvalidInput, match="order_by"):
        admin.search_runs(runs["slug"], order_by=["metrics.acc sideways"])


def test_search_service_checks_every_experiment(platform, new_user, runs: dict) -> None:
    email, _ = new_user()
    ids = runs["ids"]
    with platform.db.session() as s:
        exp_ids = sorted({s.get(Run, i).experiment_id for i in ids.values()})
        owner = s.get(User, s.get(Run, ids["alpha"]).user_id)
        outsider = get_user_by_email(s, email)
        with pytest.raises(NotFound):
            search_runs(s, outsider, exp_ids)
        with pytest.raises(NotFound):
            search_runs(s, owner, [exp_ids[0], "0" * 32])
        query = (s, owner, exp_ids, "metrics.acc > 0.85", ["metrics.acc DESC"], 1)
        found, token = search_runs(*query)
        assert [r.id for r in found] == [ids["alpha"]] and token
        found, token = search_runs(*query, token)
        assert [r.id for r in found] == [ids["epsilon"]] and token is None
        assert search_runs(s, owner, []) == ([], None)
        assert search_runs(s, owner, exp_ids, run_view_type="DELETED_ONLY") == ([], None)
        assert len(search_runs(s, owner, exp_ids, run_view_type="ALL")[0]) == 5
        with pytest.raises(InvalidInput, match="run_view_type"):
            search_runs(s, owner, exp_ids, run_view_type="SOME")


# -- latest metrics ----------------------------------------------------------------------------


def test_latest_metric_is_highest_step_then_time_then_value(admin: Client, project: str) -> None:
    run = admin.create_run(project)["id"]
    admin.log_metrics(run, [{"key": "a", "value": 5.0, "step": 5, "timestamp": 10}])
    admin.log_metrics(run, [{"key": "a", "value": 9.0, "step": 3, "timestamp": 99}])  # older step
    assert admin.run(run)["metrics"] == {"a": 5.0}
    admin.log_metrics(run, [{"key": "a", "value": 1.0, "step": 5, "timestamp": 11}])  # later time
    assert admin.run(run)["metrics"] == {"a": 1.0}
    admin.log_metrics(run, [{"key": "a", "value": 0.5, "step": 5, "timestamp": 11}])  # lower value
    assert admin.run(run)["metrics"] == {"a": 1.0}
    # within one batch too, in any order
    admin.log_metrics(
        run,
        [
            {"key": "b", "value": 2.0, "step": 2, "timestamp": 1},
            {"key": "b", "value": 7.0, "step": 9, "timestamp": 1},
            {"key": "b", "value": 3.0, "step": 4, "timestamp": 1},
        ],
    )
    assert admin.run(run)["metrics"] == {"a": 1.0, "b": 7.0}
    assert [p["value"] for p in admin.metric_history(run, "b")] == [2.0, 3.0, 7.0]


def test_batched_loaders(platform, admin: Client, project: str) -> None:
    runs = [
        admin.create_run(project, params={"i": str(i)}, tags={"t": "x"})["id"] for i in range(3)
    ]
    for i, run in enumerate(runs):
        admin.log_metrics(run, [{"key": "m", "value": i, "step": 7, "timestamp": 5}])
    admin.log_metrics(runs[2], [{"key": "n", "value": math.nan, "step": 1, "timestamp": 2}])
    with platform.db.session() as s:
        assert service.params_of(s, runs) == {r: {"i": str(i)} for i, r in enumerate(runs)}
        assert service.tags_of(s, runs[:2]) == {r: {"t": "x"} for r in runs[:2]}
        assert service.params_of(s, []) == {} and service.latest_metrics_of(s, ["0" * 32]) == {}
        points = service.latest_points_of(s, runs)
        assert points[runs[0]] == [{"key": "m", "value": 0.0, "step": 7, "timestamp": 5}]
        assert math.isnan(service.latest_metrics_of(s, [runs[2]])[runs[2]]["n"])
        mlflow_shape = {p["key"]: p for p in service.latest_metric_points(s, s.get(Run, runs[2]))}
        assert math.isnan(mlflow_shape["n"]["value"]) and mlflow_shape["m"]["value"] == 2.0
        described = service.describe_many(s, [s.get(Run, r) for r in runs])
        assert [d["params"]["i"] for d in described] == ["0", "1", "2"]


def test_nan_and_infinity_are_stored_on_every_backend(admin: Client, project: str) -> None:
    run = admin.create_run(project)["id"]
    points = [
        {"key": "loss", "value": 1.0, "step": 0},
        {"key": "loss", "value": math.nan, "step": 1},
        {"key": "loss", "value": math.inf, "step": 2},
        {"key": "train/loss", "value": -math.inf, "step": 0},
    ]
    admin.log_metrics(run, points)
    assert [p["value"] for p in admin.metric_history(run, "loss")] == [1.0, None, None]
    assert admin.metric_history(run, "train/loss")[0]["step"] == 0
    slug = project
    page = admin.search_runs(slug, "metrics.loss > 1000000")
    assert [r["id"] for r in page["runs"]] == [run]  # +inf compares as a number


# -- compare -----------------------------------------------------------------------------------


def test_compare_aligns_histories_by_step(admin: Client, project: str) -> None:
    a = admin.create_run(project, name="a", params={"lr": "0.1", "depth": "3"})["id"]
    b = admin.create_run(project, "exp2", name="b", params={"lr": "0.2"})["id"]
    admin.log_metrics(
        a, [{"key": "loss", "value": v, "step": s} for s, v in [(0, 1.0), (1, 0.5), (2, 0.3)]]
    )
    admin.log_metrics(b, [{"key": "loss", "value": v, "step": s} for s, v in [(1, 0.9), (3, 0.2)]])
    later = int(time.time() * 1000) + 60_000
    admin.log_metrics(b, [{"key": "loss", "value": 0.8, "step": 1, "timestamp": later}])  # again
    admin.log_metrics(b, [{"key": "acc", "value": 0.7, "step": 0}])
    out = admin.compare_runs([a, b, a])
    assert out["runs"] == [
        {"id": a, "name": "a", "experiment": "default"},
        {"id": b, "name": "b", "experiment": "exp2"},
    ]
    assert out["params"] == {"depth": {a: "3", b: None}, "lr": {a: "0.1", b: "0.2"}}
    assert out["metrics"]["loss"] == {
        "steps": [0, 1, 2, 3],
        "values": {a: [1.0, 0.5, 0.3, None], b: [None, 0.8, None, 0.2]},
    }
    assert out["metrics"]["acc"] == {"steps": [0], "values": {a: [None], b: [0.7]}}


def test_compare_checks_access(admin: Client, project: str, new_user, client_for) -> None:
    run = admin.create_run(project)["id"]
    _, token = new_user()
    with pytest.raises(NotFound):
        client_for(token).compare_runs([run])
    with pytest.raises(NotFound):
        admin.compare_runs([run, "0" * 32])
    with pytest.raises(InvalidInput, match="run_ids"):
        admin.compare_runs([])


# -- bad input: a clear 4xx, and nothing stored ------------------------------------------------


def test_bad_params_and_tags_store_nothing(admin: Client, project: str) -> None:
    run = admin.create_run(project, params={"lr": "0.1"})["id"]
    cases = [
        (lambda: admin.log_params(run, {"ok": "1", "k" * 251: "v"}), "1..250"),
        (lambda: admin.log_params(run, {"ok": "1", "big": "x" * 6001}), "longer than 6000"),
        (lambda: admin.log_params(run, {"ok": "1", "lr": "0.2"}), "immutable"),
        (lambda: admin.log_params(run, {"ok": "1", "nul": "a\x00b"}), "NUL"),
        (lambda: admin.set_tags(run, {"ok": "1", "big": "x" * 8001}), "longer than 8000"),
        (lambda: admin.set_tags(run, {"ok": "1", "": "empty key"}), "1..250"),
        (lambda: admin.set_tags(run, {"ok": "1", "a\x00": "x"}), "NUL"),
    ]
    for call, says in cases:
        with pytest.raises(InvalidInput, match=says):
            call()
    stored = admin.run(run)
    assert stored["params"] == {"lr": "0.1"} and stored["tags"] == {}
    admin.log_params(run, {"lr": "0.1", "ok": "1"})  # the same value again is fine
    admin.log_params(run, {"lr": 0.1})  # as the same string
    admin.set_tags(run, {"ok": "1"})
    admin.set_tags(run, {"ok": "2"})  # tags may change
    stored = admin.run(run)
    assert stored["params"] == {"lr": "0.1", "ok": "1"} and stored["tags"] == {"ok": "2"}


def test_bad_metrics_store_nothing(admin: Client, project: str) -> None:
    run = admin.create_run(project)["id"]
    good = {"key": "ok", "value": 1.0}
    for bad, field in [
        ({"key": "loss", "value": "high"}, "metrics.1.value"),
        ({"key": "loss", "value": None}, "metrics.1.value"),
        ({"key": "k" * 251, "value": 1}, "metrics.1.key"),
        ({"key": "loss", "value": 1, "step": "first"}, "metrics.1.step"),
    ]:
        with pytest.raises(InvalidInput) as err:
            admin.log_metrics(run, [good, bad])
        assert err.value.details[0]["field"] == field
    with pytest.raises(InvalidInput, match="step must be a 64-bit integer"):
        admin.log_metrics(run, [good, {"key": "loss", "value": 1, "step": 2**63}])
    with pytest.raises(InvalidInput, match="NUL"):
        admin.log_metrics(run, [good, {"key": "a\x00", "value": 1}])
    assert admin.run(run)["metrics"] == {} and admin.metric_history(run, "ok") == []
    with pytest.raises(NotFound):
        admin.log_metrics("0" * 32, [good])
    with pytest.raises(NotFound):
        admin.log_params("0" * 32, {"a": "1"})


def test_service_refuses_a_bad_batch_whole(platform, admin: Client, project: str) -> None:
    """What the MLflow endpoints pass straight to the service: no pydantic in front."""
    run_id = admin.create_run(project)["id"]
    for bad, says in [
        ({"key": "b", "value": "abc"}, "not a number"),
        ({"key": "b", "value": True}, "not a number"),
        ({"key": None, "value": 1}, "1..250"),
        ({"key": "b", "value": 1, "timestamp": 1.5}, "timestamp"),
        ("not a point", "must be an object"),
    ]:
        with pytest.raises(InvalidInput, match=says), platform.db.session() as s:
            actor = s.get(User, s.get(Run, run_id).user_id)
            service.log_metrics(s, actor, run_id, [{"key": "a", "value": 1}, bad])
    with platform.db.session() as s:
        actor = s.get(User, s.get(Run, run_id).user_id)
        assert service.log_metrics(s, actor, run_id, [{"key": "a", "value": "0.5", "step": "2"}])
    assert admin.run(run_id)["metrics"] == {"a": 0.5}


def test_run_with_bad_params_is_not_created(admin: Client, project: str) -> None:
    with pytest.raises(InvalidInput, match="longer than 6000"):
        admin.create_run(project, "strict", params={"a": "1", "b": "x" * 6001})
    assert admin.runs(project, "strict") == []


# -- concurrency through a real server ---------------------------------------------------------

WORKER = r"""
import sys, time
from mlteam import Client

url, token, run_id, n, start = sys.argv[1:6]
n = int(n)
points = [
    {"key": "shared" if j % 2 == 0 else f"own{n}", "value": float(n * 1000 + j),
     "step": n * 1000 + j}
    for j in range(1000)
]
with Client(url, token) as c:
    time.sleep(max(0.0, float(start) - time.time()))
    for b in range(9):  # 9 batches of 100 ...
        c.log_metrics(run_id, points[b * 100 : (b + 1) * 100])
    for p in points[900:]:  # ... and 100 one by one
        c.log_metrics(run_id, [p])
"""


@pytest.fixture(scope="module")
def live_admin(live_server) -> tuple[Client, str]:
    res = live_server.cli("users", "create", f"{uid('trk')}@example.com", "--admin")
    token = res.stdout.strip().splitlines()[-1]
    return Client(live_server.url, token), token


def test_eight_writers_one_run(live_server, live_admin) -> None:
    c, token = live_admin
    slug = uid("conc")
    c.create_project(slug)
    run = c.create_run(slug, name="busy")["id"]
    start = time.time() + 2.0  # every process imported and connected before the first write
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, live_server.url, token, run, str(n), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(8)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
    shared = c.metric_history(run, "shared")
    own = [c.metric_history(run, f"own{n}") for n in range(8)]
    assert len(shared) == 4000 and all(len(h) == 500 for h in own)
    assert len(shared) + sum(len(h) for h in own) == 8000
    assert len({p["step"] for p in shared}) == 4000
    latest = c.run(run)["metrics"]
    assert latest["shared"] == 7998.0  # the highest step any writer logged
    assert all(latest[f"own{n}"] == n * 1000 + 999 for n in range(8))


def test_search_and_compare_from_the_cli(live_server, live_admin) -> None:
    c, token = live_admin
    slug = uid("cli")
    c.create_project(slug)
    a = c.create_run(slug, name="a", params={"lr": "0.1"})["id"]
    b = c.create_run(slug, name="b", params={"lr": "0.2"})["id"]
    c.log_metrics(a, [{"key": "acc", "value": 0.9}])
    c.log_metrics(b, [{"key": "acc", "value": 0.7}])
    res = live_server.cli(
        "runs", "search", slug, "--filter", "metrics.acc > 0.8", "--json", token=token
    )
    page = json.loads(res.stdout)
    assert [r["id"] for r in page["runs"]] == [a] and page["next_page_token"] is None
    res = live_server.cli(
        "runs", "search", slug, "--filter", "metrics.acc >", token=token, check=False
    )
    assert res.returncode == 1 and "position 13" in res.stderr
    res = live_server.cli("runs", "compare", a, b, "--json", token=token)
    assert json.loads(res.stdout)["params"] == {"lr": {a: "0.1", b: "0.2"}}
    table = live_server.cli("runs", "compare", a, b, token=token).stdout
    assert "0.9" in table and "0.2" in table
