"""Every kind of bad input gets a 4xx `{"error": {"code", "message", "details"}}` that names
what was wrong, and leaves nothing half-written.

Each case snapshots what a user can see of the project (datasets and their versions, runs,
jobs, models, deployments, requests, the audit log, the prediction log and feedback) before
the bad call and checks it is unchanged after. The project serves a copy of the session
`loop` model, so predictions and feedback never touch the shared loop project.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from mlteam import (
    Client,
    Conflict,
    InvalidInput,
    MlteamError,
    NotFound,
)
from mlteam.client.bridge import SyncBridge
from tests.conftest import uid

MISSING_ID = "0123456789abcdef0123456789abcdef"


@dataclass
class Ctx:
    admin: Client
    token: str  # the admin's token, for raw requests
    slug: str
    project_id: str
    open_run: str  # a RUNNING run, for artifacts and metrics
    model_run: str  # the FINISHED run that `clf` v1 was registered from
    dep: str  # serves clf v1
    dep2: str  # another deployment of the same project
    sample: dict[str, float]
    col: str  # the first input column of the model
    artifact_root: Path


def _csv(rows: int, target: Callable[[int], int]) -> bytes:
    lines = ["x1,x2,y"] + [f"{i * 0.5},c{i % 3},{target(i)}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def ctx(admin, new_user, client_for, loop, cancer_csv, settings, tmp_path_factory) -> Ctx:
    tmp = tmp_path_factory.mktemp("bad")
    _, token = new_user(admin=True, prefix="bad-admin")
    c = client_for(token)
    slug = uid("bad")
    project = c.create_project(slug, goal="reject bad input", value_matrix={})
    c.upload(slug, "base", io.BytesIO(_csv(40, lambda i: i % 2)), format="csv")
    c.upload(slug, "flat", io.BytesIO(_csv(40, lambda i: 1)), format="csv")

    # a servable copy of the loop's model in this project
    src = loop["job"]["result"]["best_run_id"]
    run = c.create_run(slug, experiment="copied")
    for name in ("model.skops", "mlteam-model.json"):
        (tmp / name).write_bytes(c.artifact(src, f"model/{name}"))
        c.log_artifact(run["id"], tmp / name, f"model/{name}")
    c.finish_run(run["id"])
    c.register(slug, "clf", run["id"])
    dep, dep2 = uid("bad-dep"), uid("bad-dep2")
    c.deploy(slug, dep, "clf", 1)
    c.deploy(slug, dep2, "clf", 1)

    open_run = c.create_run(slug, experiment="scratch", params={"lr": "0.1"})["id"]
    frame = pd.read_csv(cancer_csv).drop(columns="target")
    sample = {k: float(v) for k, v in frame.iloc[0].items()}
    col = c.model_version(slug, "clf", 1)["signature"]["inputs"][0]["name"]
    return Ctx(
        c,
        token,
        slug,
        project["id"],
        open_run,
        run["id"],
        dep,
        dep2,
        sample,
        col,
        Path(settings.artifact_root),
    )


@pytest.fixture(scope="module")
def raw(app, ctx: Ctx) -> Iterator[httpx.Client]:
    """Plain HTTP against the app (no SDK), to see exact status codes and bodies; a bug in
    the app comes back as the 500 a user would get, not as a Python exception."""
    transport = SyncBridge(httpx.ASGITransport(app, raise_app_exceptions=False))
    with httpx.Client(
        transport=transport,
        base_url="http://testserver/api/v1",
        headers={"Authorization": f"Bearer {ctx.token}"},
    ) as client:
        yield client


def snapshot(ctx: Ctx) -> dict[str, Any]:
    """Everything a user could see change in the project."""
    a, slug = ctx.admin, ctx.slug
    p = a.project(slug)
    datasets = a.datasets(slug)
    run = a.run(ctx.open_run)
    return {
        "project": {
            k: p[k]
            for k in (
                "name",
                "goal",
                "success_metric",
                "value_matrix",
                "required_signoffs",
                "phase",
            )
        },
        "members": a.members(slug),
        "requests": [(r["number"], r["state"], r["priority"]) for r in a.requests(slug)],
        "datasets": sorted((d["name"], d["latest_version"]) for d in datasets),
        "versions": {d["name"]: len(a.dataset_versions(slug, d["name"])) for d in datasets},
        "dataset_files": sorted(
            p.name for p in (ctx.artifact_root / "datasets" / ctx.project_id).glob("*")
        ),
        "runs": sorted((r["id"], r["status"]) for r in a.runs(slug)),
        "open_run": (run["params"], run["tags"], run["metrics"], a.artifacts(ctx.open_run)),
        "jobs": sorted(j["id"] for j in a.jobs(slug)),
        "models": {
            m["name"]: [(v["version"], v["aliases"]) for v in a.model_versions(slug, m["name"])]
            for m in a.models(slug)
        },
        "deployments": sorted((d["name"], d["revision"]) for d in a.deployments(slug)),
        "log": {
            d: (r["predictions"], r["feedback"])
            for d, r in ((d, a.report(d)) for d in (ctx.dep, ctx.dep2))
        },
        "audit": [e["id"] for e in a.audit(slug, limit=1000)],
    }


def fields_of(details: Any) -> set[str]:
    if isinstance(details, dict) and "field" in details:
        return {str(details["field"])}
    if isinstance(details, list):
        return {str(d.get("field")) for d in details if isinstance(d, dict)}
    return set()


def expect_error(
    call: Callable[[], Any],
    cls: type[MlteamError],
    field: str | None = None,
    says: tuple[str, ...] = (),
) -> MlteamError:
    with pytest.raises(MlteamError) as info:
        call()
    err = info.value
    assert type(err) is cls, f"expected {cls.__name__}, got {type(err).__name__}: {err.message}"
    assert err.message
    if field is not None:
        assert field in fields_of(err.details), (field, err.details)
        if isinstance(err.details, list):  # request validation: the message names the field
            assert err.message.startswith(f"{field}:"), err.message
    for text in says:
        assert text in err.message, (text, err.message)
    return err


def check_unchanged(ctx: Ctx, build: Callable[[Ctx], Callable[[], Any]], cls, field, says):
    call = build(ctx)  # any setup the case needs happens here, before the snapshot
    before = snapshot(ctx)
    err = expect_error(call, cls, field, says)
    assert snapshot(ctx) == before, "a refused request changed the project"
    return err


def post(ctx: Ctx, path: str, body: Any, method: str = "POST") -> Callable[[], Any]:
    return lambda: ctx.admin._call(method, path.format(slug=ctx.slug), json=body)


# -- uploads ------------------------------------------------------------------------------------

UPLOADS = [
    # id, content, filename, format, field, says, details subset
    (
        "ragged-row",
        b"a,b\n1,2\n3,4\n5,6,7\n8,9\n",
        "r.csv",
        None,
        "file",
        ("line 4", "expected 2 fields, got 3"),
        {"line": 4},
    ),
    ("empty-file", b"", "e.csv", None, "file", ("empty",), {}),
    ("header-only", b"a,b\n", "h.csv", None, "file", ("no rows",), {}),
    (
        "non-utf8",
        b"a,name\n1,ok\n2,caf\xe9\n",
        "l.csv",
        None,
        "file",
        ("UTF-8", "'name'", "line 3"),
        {"column": "name", "line": 3},
    ),
    ("unknown-extension", b"a,b\n1,2\n", "sheet.xlsx", None, "format", ("format=csv",), {}),
    ("unknown-format", b"a,b\n1,2\n", "d.csv", "xlsx", "format", (), {}),
    ("not-parquet", b"this is not parquet at all", "d.parquet", None, "file", ("Parquet",), {}),
]


@pytest.mark.parametrize(
    ("content", "filename", "fmt", "field", "says", "details"),
    [pytest.param(*u[1:], id=u[0]) for u in UPLOADS],
)
def test_bad_upload_is_refused_and_stores_nothing(
    ctx: Ctx, tmp_path, content, filename, fmt, field, says, details
) -> None:
    path = tmp_path / filename
    path.write_bytes(content)
    for dataset in ("base", uid("fresh")):  # a new version of an old dataset, or a new one
        err = check_unchanged(
            ctx,
            lambda c, ds=dataset: lambda: c.admin.upload(c.slug, ds, path, format=fmt),
            InvalidInput,
            field,
            says,
        )
        assert details.items() <= err.details.items()


def test_bad_dataset_name_is_refused(ctx: Ctx) -> None:
    check_unchanged(
        ctx,
        lambda c: lambda: c.admin.upload(c.slug, "no spaces!", io.BytesIO(b"a\n1\n"), "csv"),
        InvalidInput,
        "dataset",
        ("no spaces!",),
    )


# -- predictions --------------------------------------------------------------------------------


def _inputs(ctx: Ctx, change: Callable[[dict], Any], rows: int = 1, bad_row: int = 0) -> list:
    records = [dict(ctx.sample) for _ in range(rows)]
    records[bad_row] = change(records[bad_row])
    return records


def _set(col_value: Any) -> Callable[[Ctx], Callable[[dict], dict]]:
    return lambda c: lambda r: {**r, c.col: col_value}


PREDICTS = [
    # id, build inputs from ctx, field (with {col}), says
    pytest.param(
        lambda c: _inputs(c, _set("abc")(c)),
        "inputs[0].{col}",
        ("inputs[0].{col}", "expected a number"),
        id="string-for-number",
    ),
    pytest.param(
        lambda c: _inputs(c, _set("abc")(c), rows=3, bad_row=2),
        "inputs[2].{col}",
        ("inputs[2].{col}",),
        id="bad-value-in-third-row",
    ),
    pytest.param(
        lambda c: _inputs(c, _set(True)(c)), "inputs[0].{col}", ("{col}",), id="bool-for-number"
    ),
    pytest.param(
        lambda c: _inputs(c, _set([1, 2])(c)), "inputs[0].{col}", ("{col}",), id="list-for-number"
    ),
    pytest.param(
        lambda c: _inputs(c, lambda r: {k: v for k, v in r.items() if k != c.col}),
        "inputs[0].{col}",
        ("missing column", "{col}"),
        id="missing-column",
    ),
    pytest.param(lambda c: [], "inputs", ("non-empty",), id="empty-inputs"),
    pytest.param(lambda c: {"a": 1}, "inputs", (), id="inputs-not-a-list"),
]


@pytest.mark.parametrize(("make", "field", "says"), PREDICTS)
def test_bad_predict_input_is_refused_and_logs_nothing(ctx: Ctx, make, field, says) -> None:
    check_unchanged(
        ctx,
        lambda c: post(c, f"/deployments/{c.dep}/predict", {"inputs": make(c)}),
        InvalidInput,
        field.format(col=ctx.col),
        tuple(s.format(col=ctx.col) for s in says),
    )


def test_predict_record_that_is_not_an_object_is_refused(ctx: Ctx) -> None:
    err = check_unchanged(
        ctx,
        lambda c: post(c, f"/deployments/{c.dep}/predict", {"inputs": [1]}),
        InvalidInput,
        None,
        (),
    )
    assert fields_of(err.details) & {"inputs.0", "inputs[0]"}


def test_good_predict_still_works(ctx: Ctx) -> None:
    """The control for the cases above: the same record, unchanged, is answered."""
    out = ctx.admin.predict(ctx.dep, [ctx.sample])
    assert out["predictions"][0]["output"] in (0, 1)


# -- unknown ids → 404 ---------------------------------------------------------------------------

NOT_FOUND = [
    pytest.param(
        lambda c: lambda: c.admin.project("no-such-project"), "no-such-project", id="project"
    ),
    pytest.param(
        lambda c: lambda: c.admin.update_project("no-such-project", goal="x"),
        "no-such-project",
        id="project-update",
    ),
    pytest.param(
        lambda c: lambda: c.admin.upload("no-such-project", "d", io.BytesIO(b"a\n1\n"), "csv"),
        "no-such-project",
        id="project-upload",
    ),
    pytest.param(
        lambda c: lambda: c.admin.train("no-such-project", "base", "y"),
        "no-such-project",
        id="project-train",
    ),
    pytest.param(lambda c: lambda: c.admin.run(MISSING_ID), MISSING_ID, id="run"),
    pytest.param(
        lambda c: lambda: c.admin.log_metrics(MISSING_ID, [{"key": "a", "value": 1}]),
        MISSING_ID,
        id="run-log-metrics",
    ),
    pytest.param(
        lambda c: lambda: c.admin.register(c.slug, "clf", MISSING_ID), MISSING_ID, id="run-register"
    ),
    pytest.param(lambda c: lambda: c.admin.job(MISSING_ID), MISSING_ID, id="job"),
    pytest.param(lambda c: lambda: c.admin.job_log(MISSING_ID), MISSING_ID, id="job-log"),
    pytest.param(
        lambda c: lambda: c.admin.dataset_versions(c.slug, "ghost"), "ghost", id="dataset"
    ),
    pytest.param(
        lambda c: lambda: c.admin.dataset_version(c.slug, "base", 99), "99", id="dataset-version"
    ),
    pytest.param(
        lambda c: lambda: c.admin.train(c.slug, "ghost", "y"), "ghost", id="dataset-train"
    ),
    pytest.param(
        lambda c: lambda: c.admin.train(c.slug, "base", "y", version=99),
        "99",
        id="dataset-version-train",
    ),
    pytest.param(lambda c: lambda: c.admin.model_versions(c.slug, "ghost"), "ghost", id="model"),
    pytest.param(
        lambda c: lambda: c.admin.model_version(c.slug, "clf", 99), "99", id="model-version"
    ),
    pytest.param(
        lambda c: lambda: c.admin.model_version(c.slug, "clf", "no-alias"),
        "no-alias",
        id="model-alias",
    ),
    pytest.param(
        lambda c: lambda: c.admin.set_alias(c.slug, "clf", "champion", 99),
        "99",
        id="model-version-alias",
    ),
    pytest.param(
        lambda c: lambda: c.admin.deploy(c.slug, c.dep, "ghost", 1), "ghost", id="model-deploy"
    ),
    pytest.param(
        lambda c: lambda: c.admin.deploy(c.slug, c.dep, "clf", 99), "99", id="model-version-deploy"
    ),
    pytest.param(
        lambda c: lambda: c.admin.deployment("no-such-dep"), "no-such-dep", id="deployment"
    ),
    pytest.param(
        lambda c: lambda: c.admin.predict("no-such-dep", [c.sample]),
        "no-such-dep",
        id="deployment-predict",
    ),
    pytest.param(
        lambda c: lambda: c.admin.feedback("no-such-dep", [{"prediction_id": "a", "truth": 1}]),
        "no-such-dep",
        id="deployment-feedback",
    ),
    pytest.param(
        lambda c: lambda: c.admin.report("no-such-dep"), "no-such-dep", id="deployment-report"
    ),
    pytest.param(
        lambda c: lambda: c.admin.triage_request(c.slug, 999, state="accepted"), "999", id="request"
    ),
    pytest.param(
        lambda c: lambda: c.admin.add_member(c.slug, "nobody@example.com", "viewer"),
        "nobody@example.com",
        id="member-email",
    ),
    pytest.param(
        lambda c: lambda: c.admin.remove_member(c.slug, "nobody@example.com", "viewer"),
        "nobody@example.com",
        id="member-remove",
    ),
    pytest.param(lambda c: lambda: c.admin.revoke_token(MISSING_ID), MISSING_ID, id="token"),
]


@pytest.mark.parametrize(("build", "name"), NOT_FOUND)
def test_unknown_id_is_404_naming_it(ctx: Ctx, build, name) -> None:
    check_unchanged(ctx, build, NotFound, None, (name,))


# -- JSON bodies: missing fields, extra fields, wrong types ------------------------------------

MISSING_FIELDS = [
    pytest.param("/projects", {"name": "no slug"}, "slug", id="project-slug"),
    pytest.param("/projects/{slug}/members", {"email": "a@example.com"}, "role", id="member-role"),
    pytest.param("/projects/{slug}/requests", {"priority": "high"}, "title", id="request-title"),
    pytest.param("/projects/{slug}/train", {"dataset": "base"}, "target", id="train-target"),
    pytest.param(
        "/projects/{slug}/deployments", {"name": "x", "version": 1}, "model", id="deploy-model"
    ),
    pytest.param(
        "/projects/{slug}/models/clf/versions", {"description": "x"}, "run_id", id="register-run-id"
    ),
    pytest.param(
        "/projects/{slug}/runs",
        {"name": "x", "params": None},
        "params",
        id="run-params-null-for-object",
    ),
    pytest.param("/users", {"name": "no email"}, "email", id="user-email"),
]


@pytest.mark.parametrize(("path", "body", "field"), MISSING_FIELDS)
def test_missing_field_is_400_naming_it(ctx: Ctx, path, body, field) -> None:
    before = [p["slug"] for p in ctx.admin.projects()]
    check_unchanged(ctx, lambda c: post(c, path, body), InvalidInput, field, ())
    assert [p["slug"] for p in ctx.admin.projects()] == before


def test_missing_nested_fields_are_named(ctx: Ctx) -> None:
    check_unchanged(
        ctx,
        lambda c: post(c, f"/deployments/{c.dep}/feedback", {"items": [{"truth": 1}]}),
        InvalidInput,
        "items.0.prediction_id",
        (),
    )
    check_unchanged(
        ctx,
        lambda c: post(c, f"/runs/{c.open_run}/metrics", {"metrics": [{"key": "loss"}]}),
        InvalidInput,
        "metrics.0.value",
        (),
    )
    check_unchanged(
        ctx,
        lambda c: post(c, "/projects/{slug}/models/clf/aliases/champion", {}, "PUT"),
        InvalidInput,
        "version",
        (),
    )
    check_unchanged(
        ctx,
        lambda c: post(c, f"/deployments/{c.dep}/predict", {"rows": [c.sample]}),
        InvalidInput,
        "inputs",
        (),
    )


def _predict_then(extra: Callable[[Ctx, str], tuple[str, Any]]):
    """A fresh prediction id, then the bad call that uses it."""

    def build(c: Ctx) -> Callable[[], Any]:
        pid = c.admin.predict(c.dep, [c.sample])["predictions"][0]["id"]
        path, body = extra(c, pid)
        return post(c, path, body)

    return build


EXTRA_FIELDS = [
    pytest.param(
        lambda c: post(c, "/projects", {"slug": uid("xtra"), "colour": "red"}), id="create-project"
    ),
    pytest.param(
        lambda c: post(c, "/projects/{slug}", {"goal": "changed", "colour": "red"}, "PATCH"),
        id="update-project",
    ),
    pytest.param(
        lambda c: post(c, "/projects/{slug}/requests", {"title": "t", "colour": "red"}),
        id="create-request",
    ),
    pytest.param(
        lambda c: post(
            c, "/projects/{slug}/train", {"dataset": "base", "target": "y", "colour": "red"}
        ),
        id="train",
    ),
    pytest.param(
        lambda c: post(
            c,
            "/projects/{slug}/deployments",
            {"name": uid("x"), "model": "clf", "version": 1, "colour": "red"},
        ),
        id="deploy",
    ),
    pytest.param(
        lambda c: post(
            c, "/projects/{slug}/models/clf/versions", {"run_id": c.model_run, "colour": "red"}
        ),
        id="register",
    ),
    pytest.param(
        lambda c: post(
            c,
            "/projects/{slug}/models/clf/aliases/champion",
            {"version": 1, "colour": "red"},
            "PUT",
        ),
        id="alias",
    ),
    pytest.param(
        lambda c: post(c, f"/runs/{c.open_run}/tags", {"values": {"a": "b"}, "colour": "red"}),
        id="tags",
    ),
    pytest.param(
        lambda c: post(c, f"/deployments/{c.dep}/predict", {"inputs": [c.sample], "colour": "red"}),
        id="predict",
    ),
    pytest.param(
        _predict_then(
            lambda c, pid: (
                f"/deployments/{c.dep}/feedback",
                {"items": [{"prediction_id": pid, "truth": 1, "colour": "red"}]},
            )
        ),
        id="feedback-item",
    ),
    pytest.param(
        lambda c: post(
            c,
            f"/runs/{c.open_run}/metrics",
            {"metrics": [{"key": "loss", "value": 1.0, "colour": "red"}]},
        ),
        id="metric-item",
    ),
]


@pytest.mark.parametrize("build", EXTRA_FIELDS)
def test_extra_field_is_400_naming_it(ctx: Ctx, build) -> None:
    before = [p["slug"] for p in ctx.admin.projects()]
    err = check_unchanged(ctx, build, InvalidInput, None, ("colour",))
    assert any(f.endswith("colour") for f in fields_of(err.details)), err.details
    assert [p["slug"] for p in ctx.admin.projects()] == before


WRONG_VALUES = [
    # id, path, body, method, error class, field, says
    (
        "member-role",
        "/projects/{slug}/members",
        {"email": "a@example.com", "role": "king"},
        "POST",
        InvalidInput,
        "role",
        (),
    ),
    (
        "request-priority",
        "/projects/{slug}/requests",
        {"title": "t", "priority": "urgent"},
        "POST",
        InvalidInput,
        "priority",
        (),
    ),
    (
        "signoff-role",
        "/projects/{slug}",
        {"required_signoffs": ["king"]},
        "PATCH",
        InvalidInput,
        "required_signoffs.0",
        (),
    ),
    (
        "no-signoffs",
        "/projects/{slug}",
        {"required_signoffs": []},
        "PATCH",
        InvalidInput,
        "required_signoffs",
        (),
    ),
    (
        "alias-version-zero",
        "/projects/{slug}/models/clf/aliases/champion",
        {"version": 0},
        "PUT",
        InvalidInput,
        "version",
        (),
    ),
    (
        "alias-version-text",
        "/projects/{slug}/models/clf/aliases/champion",
        {"version": "one"},
        "PUT",
        InvalidInput,
        "version",
        (),
    ),
    (
        "alias-name",
        "/projects/{slug}/models/clf/aliases/1st",
        {"version": 1},
        "PUT",
        InvalidInput,
        "alias",
        ("1st",),
    ),
    (
        "deploy-name",
        "/projects/{slug}/deployments",
        {"name": "Not Valid", "model": "clf", "version": 1},
        "POST",
        InvalidInput,
        "name",
        ("Not Valid",),
    ),
    (
        "deploy-stage",
        "/projects/{slug}/deployments",
        {"name": "bad-stage-dep", "model": "clf", "version": 1, "stage": "prod"},
        "POST",
        InvalidInput,
        "stage",
        (),
    ),
    (
        "train-test-fraction",
        "/projects/{slug}/train",
        {"dataset": "base", "target": "y", "test_fraction": "a lot"},
        "POST",
        InvalidInput,
        "test_fraction",
        (),
    ),
    (
        "feedback-not-a-list",
        "/deployments/{dep}/feedback",
        {"items": {"a": 1}},
        "POST",
        InvalidInput,
        "items",
        (),
    ),
    ("run-status", "/runs/{run}", {"status": "DONE"}, "PATCH", InvalidInput, "status", ()),
    (
        "param-changed",
        "/runs/{run}/params",
        {"values": {"lr": "0.5"}},
        "POST",
        InvalidInput,
        "lr",
        ("immutable",),
    ),
    (
        "project-duplicate",
        "/projects",
        {"slug": "{slug}"},
        "POST",
        Conflict,
        "slug",
        ("already exists",),
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "method", "cls", "field", "says"),
    [pytest.param(*w[1:], id=w[0]) for w in WRONG_VALUES],
)
def test_wrong_value_is_refused_naming_the_field(
    ctx: Ctx, path, body, method, cls, field, says
) -> None:
    def build(c: Ctx) -> Callable[[], Any]:
        fill = {"slug": c.slug, "dep": c.dep, "run": c.open_run}
        b = {k: (v.format(**fill) if isinstance(v, str) else v) for k, v in body.items()}
        return lambda: c.admin._call(method, path.format(**fill), json=b)

    check_unchanged(ctx, build, cls, field, says)


def test_registering_an_unfinished_run_is_a_conflict(ctx: Ctx) -> None:
    check_unchanged(
        ctx,
        lambda c: lambda: c.admin.register(c.slug, "clf", c.open_run),
        Conflict,
        None,
        ("RUNNING",),
    )


def test_audit_limit_out_of_range(ctx: Ctx) -> None:
    expect_error(lambda: ctx.admin.audit(ctx.slug, limit=0), InvalidInput, "limit")
    expect_error(lambda: ctx.admin.audit(ctx.slug, limit=5000), InvalidInput, "limit")


def test_removing_the_last_owner_is_a_conflict(ctx: Ctx) -> None:
    me = ctx.admin.me()["email"]
    check_unchanged(
        ctx,
        lambda c: lambda: c.admin.remove_member(c.slug, me, "owner"),
        Conflict,
        None,
        ("owner",),
    )


def test_removing_a_member_with_an_unknown_role_is_400(ctx: Ctx, raw: httpx.Client) -> None:
    me = ctx.admin.me()["email"]
    resp = raw.delete(f"/projects/{ctx.slug}/members/{me}/king")
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "invalid_input"


def test_run_with_unknown_input_dataset_version_is_refused(ctx: Ctx) -> None:
    check_unchanged(
        ctx,
        lambda c: lambda: c.admin.create_run(c.slug, inputs=[MISSING_ID]),
        InvalidInput,
        "inputs",
        (MISSING_ID,),
    )


# -- project slugs and value matrices -------------------------------------------------------


@pytest.mark.parametrize(
    "slug", ["Upper-Case", "a", "-leading-dash", "with space", "under_score", "x" * 64, "ünï"]
)
def test_bad_project_slug_is_refused(ctx: Ctx, slug: str) -> None:
    before = [p["slug"] for p in ctx.admin.projects()]
    expect_error(lambda: ctx.admin.create_project(slug), InvalidInput, "slug")
    assert [p["slug"] for p in ctx.admin.projects()] == before


BAD_MATRICES = [
    pytest.param("not a matrix", "value_matrix", (), id="not-an-object"),
    pytest.param({"fraud": 1}, "value_matrix.fraud", ("fraud",), id="row-not-an-object"),
    pytest.param({"fraud": {}}, "value_matrix.fraud", ("fraud",), id="empty-row"),
    pytest.param(
        {"fraud": {"ok": "10"}}, "value_matrix.fraud.ok", ("fraud", "ok"), id="text-value"
    ),
    pytest.param(
        {"fraud": {"ok": True}}, "value_matrix.fraud.ok", ("fraud", "ok"), id="bool-value"
    ),
    pytest.param(
        {"cost_per_unit_error": "5"},
        "value_matrix",
        ("cost_per_unit_error",),
        id="cost-not-a-number",
    ),
]


@pytest.mark.parametrize(("matrix", "field", "says"), BAD_MATRICES)
def test_bad_value_matrix_is_refused(ctx: Ctx, matrix, field, says) -> None:
    check_unchanged(
        ctx,
        lambda c: lambda: c.admin.update_project(c.slug, value_matrix=matrix),
        InvalidInput,
        field,
        says,
    )
    slug = uid("vm")
    expect_error(
        lambda: ctx.admin.create_project(slug, value_matrix=matrix), InvalidInput, field, says
    )
    with pytest.raises(NotFound):
        ctx.admin.project(slug)


# -- training ---------------------------------------------------------------------------------

TRAINING = [
    pytest.param({"target": "ghost"}, "target", ("ghost",), id="unknown-target"),
    pytest.param(
        {"target": "y", "features": ["x1", "ghost"]}, "features", ("ghost",), id="unknown-feature"
    ),
    pytest.param(
        {"target": "y", "features": ["x1", "y"]}, "features", ("target",), id="target-as-feature"
    ),
    pytest.param({"target": "y", "task": "clustering"}, "task", (), id="unknown-task"),
    pytest.param(
        {"target": "y", "test_fraction": 0.9}, "test_fraction", (), id="test-fraction-too-big"
    ),
    pytest.param(
        {"target": "y", "register_as": "no spaces!"}, "register_as", (), id="bad-model-name"
    ),
]


@pytest.mark.parametrize(("options", "field", "says"), TRAINING)
def test_bad_training_request_queues_nothing(ctx: Ctx, options, field, says) -> None:
    opts = dict(options)
    target = opts.pop("target")
    check_unchanged(
        ctx,
        lambda c: lambda: c.admin.train(c.slug, "base", target, **opts),
        InvalidInput,
        field,
        says,
    )


def _experiments(ctx: Ctx) -> list[str]:
    return sorted(e["name"] for e in ctx.admin._call("GET", f"/projects/{ctx.slug}/experiments"))


@pytest.fixture(scope="module")
def constant_target(ctx: Ctx) -> dict[str, Any]:
    """Training on a constant target, refused at submission, and what the project held before."""
    a, slug = ctx.admin, ctx.slug
    before = {
        "runs": sorted(r["id"] for r in a.runs(slug)),
        "models": [m["name"] for m in a.models(slug)],
        "experiments": _experiments(ctx),
        "jobs": len(a.jobs(slug)),
    }
    with pytest.raises(InvalidInput) as err:
        a.train(slug, "flat", "y", register_as="flat-model", experiment="flat-experiment")
    return {"before": before, "error": err.value}


def test_constant_target_is_refused_and_registers_nothing(
    ctx: Ctx, constant_target: dict[str, Any]
) -> None:
    a, slug = ctx.admin, ctx.slug
    err, before = constant_target["error"], constant_target["before"]
    assert err.details["field"] == "target"
    assert "'y'" in err.message and "constant" in err.message
    assert len(a.jobs(slug)) == before["jobs"]  # no job was queued
    assert sorted(r["id"] for r in a.runs(slug)) == before["runs"]
    assert [m["name"] for m in a.models(slug)] == before["models"]
    with pytest.raises(NotFound):
        a.model_versions(slug, "flat-model")


def test_constant_target_leaves_no_empty_experiment(
    ctx: Ctx, constant_target: dict[str, Any]
) -> None:
    assert _experiments(ctx) == constant_target["before"]["experiments"]


# -- feedback ---------------------------------------------------------------------------------


def _pid(ctx: Ctx, dep: str | None = None) -> str:
    return ctx.admin.predict(dep or ctx.dep, [ctx.sample])["predictions"][0]["id"]


def test_feedback_for_unknown_prediction_is_refused(ctx: Ctx) -> None:
    check_unchanged(
        ctx,
        lambda c: lambda: c.admin.feedback(c.dep, [{"prediction_id": "f" * 32, "truth": 1}]),
        InvalidInput,
        "prediction_id",
        ("f" * 32,),
    )


def test_feedback_mixing_known_and_unknown_ids_records_none(ctx: Ctx) -> None:
    pid = _pid(ctx)
    check_unchanged(
        ctx,
        lambda c: (
            lambda: c.admin.feedback(
                c.dep, [{"prediction_id": pid, "truth": 1}, {"prediction_id": "e" * 32, "truth": 0}]
            )
        ),
        InvalidInput,
        "prediction_id",
        ("e" * 32,),
    )
    assert ctx.admin.feedback(ctx.dep, [{"prediction_id": pid, "truth": 1}]) == 1


def test_feedback_for_another_deployments_prediction_is_refused(ctx: Ctx) -> None:
    pid = _pid(ctx, ctx.dep2)
    check_unchanged(
        ctx,
        lambda c: lambda: c.admin.feedback(c.dep, [{"prediction_id": pid, "truth": 1}]),
        InvalidInput,
        "prediction_id",
        (pid,),
    )


def test_duplicate_feedback_is_a_conflict_and_records_nothing_new(ctx: Ctx) -> None:
    taken, fresh = _pid(ctx), _pid(ctx)
    assert ctx.admin.feedback(ctx.dep, [{"prediction_id": taken, "truth": 0}]) == 1
    check_unchanged(
        ctx,
        lambda c: lambda: c.admin.feedback(c.dep, [{"prediction_id": taken, "truth": 1}]),
        Conflict,
        None,
        (taken,),
    )
    check_unchanged(
        ctx,
        lambda c: (
            lambda: c.admin.feedback(
                c.dep, [{"prediction_id": fresh, "truth": 1}, {"prediction_id": taken, "truth": 1}]
            )
        ),
        Conflict,
        None,
        (taken,),
    )
    assert ctx.admin.feedback(ctx.dep, [{"prediction_id": fresh, "truth": 1}]) == 1


def test_feedback_naming_one_prediction_twice_or_none_is_refused(ctx: Ctx) -> None:
    pid = _pid(ctx)
    check_unchanged(
        ctx,
        lambda c: (
            lambda: c.admin.feedback(
                c.dep, [{"prediction_id": pid, "truth": 1}, {"prediction_id": pid, "truth": 0}]
            )
        ),
        InvalidInput,
        "items",
        ("twice",),
    )
    check_unchanged(ctx, lambda c: lambda: c.admin.feedback(c.dep, []), InvalidInput, "items", ())


# -- artifact paths -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["%2E%2E/evil", "a/%2E%2E/%2E%2E/evil", "%2E%2E/%2E%2E/%2E%2E/evil", "%2Fetc%2Fevil"]
)
def test_artifact_path_leaving_the_run_is_refused(ctx: Ctx, path: str) -> None:
    check_unchanged(
        ctx,
        lambda c: (
            lambda: c.admin._call("PUT", f"/runs/{c.open_run}/artifacts/{path}", content=b"payload")
        ),
        InvalidInput,
        "path",
        ("invalid artifact path",),
    )
    expect_error(
        lambda: ctx.admin._call("GET", f"/runs/{ctx.open_run}/artifacts/{path}"),
        InvalidInput,
        "path",
    )
    assert not list(ctx.artifact_root.rglob("evil")), "a file escaped the run's artifact root"


def test_artifact_listing_outside_the_run_is_refused(ctx: Ctx) -> None:
    expect_error(lambda: ctx.admin.artifacts(ctx.open_run, "../.."), InvalidInput, "path")


def test_sdk_artifact_path_with_dotdot_is_refused(ctx: Ctx, tmp_path) -> None:
    f = tmp_path / "evil"
    f.write_bytes(b"payload")
    expect_error(
        lambda: ctx.admin.log_artifact(ctx.open_run, f, "../evil"),
        InvalidInput,
        "path",
        ("invalid artifact path",),
    )


# -- the exact wire format ----------------------------------------------------------------------


def _ragged(c: Ctx) -> dict:
    return {
        "method": "POST",
        "url": f"/projects/{c.slug}/datasets/base/versions",
        "params": {"format": "csv"},
        "content": b"a,b\n1,2\n3\n",
    }


RAW = [
    pytest.param(_ragged, 400, "invalid_input", {"field": "file", "line": 3}, id="ragged-csv"),
    pytest.param(
        lambda c: {
            "method": "POST",
            "url": f"/deployments/{c.dep}/predict",
            "json": {"inputs": [{**c.sample, c.col: "abc"}]},
        },
        400,
        "invalid_input",
        {"field": "inputs[0].{col}"},
        id="predict-type",
    ),
    pytest.param(
        lambda c: {"method": "POST", "url": "/projects", "json": {}},
        400,
        "invalid_input",
        [{"field": "slug"}],
        id="missing-field",
    ),
    pytest.param(
        lambda c: {
            "method": "POST",
            "url": "/projects",
            "content": b"{not json",
            "headers": {"content-type": "application/json"},
        },
        400,
        "invalid_input",
        None,
        id="malformed-json",
    ),
    pytest.param(
        lambda c: {"method": "GET", "url": f"/runs/{MISSING_ID}"},
        404,
        "not_found",
        None,
        id="unknown-run",
    ),
    pytest.param(
        lambda c: {"method": "GET", "url": "/no/such/endpoint"},
        404,
        "not_found",
        None,
        id="unknown-endpoint",
    ),
    pytest.param(
        lambda c: {"method": "GET", "url": f"/projects/{c.slug}", "headers": {"Authorization": ""}},
        401,
        "unauthenticated",
        None,
        id="no-token",
    ),
    pytest.param(
        lambda c: {
            "method": "GET",
            "url": f"/projects/{c.slug}",
            "headers": {"Authorization": "Bearer mlt_wrong"},
        },
        401,
        "unauthenticated",
        None,
        id="bad-token",
    ),
]


@pytest.mark.parametrize(("request_of", "status", "code", "details"), RAW)
def test_error_body_is_exactly_code_message_details(
    ctx: Ctx, raw: httpx.Client, request_of, status, code, details
) -> None:
    before = snapshot(ctx)
    resp = raw.request(**request_of(ctx))
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if isinstance(details, dict):
        want = {k: (v.format(col=ctx.col) if isinstance(v, str) else v) for k, v in details.items()}
        assert want.items() <= body["error"]["details"].items()
    elif isinstance(details, list):
        got = body["error"]["details"]
        assert [{k: d[k] for k in w} for w, d in zip(details, got, strict=False)] == details
    assert snapshot(ctx) == before
