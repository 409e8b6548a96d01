"""MLflow's REST API for tracking, logged models and the artifact proxy, over mlteam's services.

The stock `mlflow` client logs here unchanged. Projects map to MLflow like this:

- tracking URI `http://HOST/mlflow/<project>`: every MLflow experiment is an experiment of that
  project (experiment id `0`, "Default", is the project's `Default` experiment);
- tracking URI `http://HOST`: experiment names are `<project>/<experiment>`; a bare name is
  taken from your only project, if you belong to exactly one.

Access rules are mlteam's (`MLFLOW_TRACKING_TOKEN` carries an mlteam token); errors use
MLflow's shape, `{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": ...}` (server/app.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from mlteam.core.access import Perm, require
from mlteam.core.artifacts import clean_key
from mlteam.core.errors import InvalidInput, NotFound
from mlteam.core.models import User
from mlteam.projects import service as projects
from mlteam.server.mlflow import (
    Routes,
    body,
    default_project,
    kv,
    ok,
    outward_name,
    req,
    scope,
    split_name,
)
from mlteam.server.platform import Platform
from mlteam.tracking import logged_models
from mlteam.tracking import service as tracking
from mlteam.tracking.models import Experiment, LoggedModel, Run

router = Routes()
API = "/mlflow"  # mounted under /api/2.0 and /mlflow/<project>/api/2.0 (server/app.py)
ARTIFACTS = "/mlflow-artifacts/artifacts"
DEFAULT = "Default"
MAX_BATCH_METRICS, MAX_BATCH_PARAMS, MAX_BATCH_TAGS = 1000, 100, 100


def _split_name(session: Session, actor: User, request: Request, name: str) -> tuple[str, str]:
    return split_name(session, actor, request, name, "experiment")


def _experiment(session: Session, actor: User, request: Request, experiment_id: str) -> Experiment:
    if str(experiment_id) == "0":
        slug = default_project(session, actor, request)
        return tracking.get_or_create_experiment(session, actor, slug, DEFAULT)
    return tracking.get_experiment(session, actor, str(experiment_id))


def _exp_json(session: Session, exp: Experiment, request: Request) -> dict[str, Any]:
    name = outward_name(request, projects.by_id(session, exp.project_id).slug, exp.name)
    ms = int(exp.created_at.timestamp() * 1000)
    return {
        "experiment_id": exp.id,
        "name": name,
        "artifact_location": f"mlflow-artifacts:/experiments/{exp.id}",
        "lifecycle_stage": exp.lifecycle_stage,
        "creation_time": ms,
        "last_update_time": ms,
        "tags": [],
    }


def _runs_json(session: Session, runs: list[Run]) -> list[dict[str, Any]]:
    """Runs in MLflow's shape, loaded in a handful of queries however many there are."""
    ids = [r.id for r in runs]
    params, tags, points = (
        tracking.params_of(session, ids),
        tracking.tags_of(session, ids),
        tracking.latest_points_of(session, ids),
    )
    outputs = logged_models.outputs_of_many(session, ids)
    out = []
    for run in runs:
        run_tags = {"mlflow.runName": run.name, **tags.get(run.id, {})}
        out.append(
            {
                "info": _run_info(run),
                "data": {
                    "metrics": points.get(run.id, []),
                    "params": [{"key": k, "value": v} for k, v in params.get(run.id, {}).items()],
                    "tags": [{"key": k, "value": v} for k, v in run_tags.items()],
                },
                "inputs": {"dataset_inputs": [], "model_inputs": []},
                "outputs": {
                    "model_outputs": [{"model_id": m, "step": 0} for m in outputs.get(run.id, [])]
                },
            }
        )
    return out


def _run_info(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "run_uuid": run.id,
        "run_name": run.name,
        "experiment_id": run.experiment_id,
        "user_id": run.user_id,
        "status": run.status,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "artifact_uri": f"mlflow-artifacts:/runs/{run.id}/artifacts",
        "lifecycle_stage": run.lifecycle_stage,
    }


def _run_json(session: Session, run: Run) -> dict[str, Any]:
    return _runs_json(session, [run])[0]


def _model_json(row: LoggedModel) -> dict[str, Any]:
    return {
        "info": {
            "model_id": row.id,
            "experiment_id": row.experiment_id,
            "name": row.name,
            "artifact_uri": f"mlflow-artifacts:/{logged_models.artifact_key(row.id)}",
            "creation_timestamp_ms": row.created_ms,
            "last_updated_timestamp_ms": row.updated_ms,
            "status": row.status,
            "status_message": row.status_message,
            "model_type": row.model_type,
            "source_run_id": row.source_run_id or "",
            "tags": [{"key": k, "value": v} for k, v in row.tags.items()],
        },
        "data": {
            "params": [{"key": k, "value": v} for k, v in row.params.items()],
            "metrics": [],
        },
    }


def _run_id(data: dict[str, Any]) -> str:
    run_id = data.get("run_id") or data.get("run_uuid")
    if not run_id:
        raise InvalidInput("missing value for required parameter 'run_id'", {"field": "run_id"})
    return str(run_id)


def _code_version(tags: dict[str, str]) -> dict[str, Any]:
    code = {
        "git_commit": tags.get("mlflow.source.git.commit"),
        "entry_point": tags.get("mlflow.source.name"),
        "source_type": tags.get("mlflow.source.type"),
    }
    return {k: v for k, v in code.items() if v}


# -- experiments -----------------------------------------------------------------------------


@router.get(f"{API}/experiments/get-by-name")
def get_experiment_by_name(
    request: Request, session: Session, user: User, experiment_name: str = ""
) -> Response:
    slug, name = _split_name(session, user, request, experiment_name)
    exp = tracking.find_experiment(session, user, slug, name)
    return ok({"experiment": _exp_json(session, exp, request)})


@router.post(f"{API}/experiments/create")
async def create_experiment(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    slug, name = _split_name(session, user, request, str(req(data, "name")))

    def create() -> Experiment:
        project = projects.resolve(session, user, slug, Perm.tracking_write)
        try:
            tracking.find_experiment(session, user, slug, name)
        except NotFound:
            return tracking.get_or_create_experiment(session, user, project.slug, name)
        from mlteam.core.errors import Conflict

        raise Conflict(f"experiment {name!r} already exists", {"field": "name"})

    exp = await run_in_threadpool(create)
    return ok({"experiment_id": exp.id})


@router.get(f"{API}/experiments/get")
def get_experiment(
    request: Request, session: Session, user: User, experiment_id: str = ""
) -> Response:
    exp = _experiment(session, user, request, experiment_id)
    return ok({"experiment": _exp_json(session, exp, request)})


@router.post(f"{API}/experiments/search")
async def search_experiments(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    slugs = (
        [scope(request)]
        if scope(request)
        else [p.slug for p in projects.list_projects(session, user)]
    )
    view = data.get("view_type", "ACTIVE_ONLY")
    found = []
    for slug in slugs:
        for exp in tracking.list_experiments(session, user, slug):
            if view == "ALL" or (exp.lifecycle_stage == "deleted") == (view == "DELETED_ONLY"):
                found.append(_exp_json(session, exp, request))
    max_results = int(data.get("max_results") or 1000)
    return ok({"experiments": found[:max_results]})


@router.post(f"{API}/experiments/delete")
async def delete_experiment(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    tracking.set_experiment_lifecycle(session, user, str(req(data, "experiment_id")), "deleted")
    return ok()


@router.post(f"{API}/experiments/restore")
async def restore_experiment(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    tracking.set_experiment_lifecycle(session, user, str(req(data, "experiment_id")), "active")
    return ok()


@router.post(f"{API}/experiments/update")
async def update_experiment(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    tracking.rename_experiment(
        session, user, str(req(data, "experiment_id")), str(data.get("new_name") or "")
    )
    return ok()


@router.post(f"{API}/experiments/set-experiment-tag")
async def set_experiment_tag(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    exp = _experiment(session, user, request, str(req(data, "experiment_id")))
    require(session, user, exp.project_id, Perm.tracking_write)
    return ok()  # experiment tags are accepted and not kept (mlteam tags runs and models)


# -- runs ----------------------------------------------------------------------------------


@router.post(f"{API}/runs/create")
async def create_run(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    exp = _experiment(session, user, request, str(data.get("experiment_id") or "0"))
    tags = kv(data.get("tags"), "tags")
    name = str(data.get("run_name") or tags.get("mlflow.runName") or "")
    parent = tags.get("mlflow.parentRunId")
    run = tracking.create_run(
        session,
        user,
        exp,
        name=name,
        parent_run_id=parent,
        code_version=_code_version(tags),
        tags=tags,
    )
    if data.get("start_time"):
        run.start_time = int(data["start_time"])
    # A new run holds only what was just given: answer without reading it back.
    tags.setdefault("mlflow.runName", run.name)
    data = {"metrics": [], "params": [], "tags": [{"key": k, "value": v} for k, v in tags.items()]}
    return ok({"run": {"info": _run_info(run), "data": data, "inputs": {}, "outputs": {}}})


@router.post(f"{API}/runs/update")
async def update_run(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    end = data.get("end_time")
    run = tracking.update_run(
        session,
        user,
        _run_id(data),
        status=data.get("status"),
        end_time=int(end) if end not in (None, "") else None,
        name=data.get("run_name"),
    )
    return ok({"run_info": _run_info(run)})


@router.post(f"{API}/runs/delete")
async def delete_run(request: Request, session: Session, user: User) -> Response:
    tracking.set_run_lifecycle(session, user, _run_id(await body(request)), "deleted")
    return ok()


@router.post(f"{API}/runs/restore")
async def restore_run(request: Request, session: Session, user: User) -> Response:
    tracking.set_run_lifecycle(session, user, _run_id(await body(request)), "active")
    return ok()


@router.get(f"{API}/runs/get")
def get_run(session: Session, user: User, run_id: str = "", run_uuid: str = "") -> Response:
    run = tracking.get_run(session, user, _run_id({"run_id": run_id, "run_uuid": run_uuid}))
    return ok({"run": _run_json(session, run)})


@router.post(f"{API}/runs/log-metric")
async def log_metric(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    req(data, "key")
    # the service checks key, value, step and timestamp (it reads only those fields)
    tracking.log_metrics(session, user, _run_id(data), [data])
    return ok()


@router.post(f"{API}/runs/log-parameter")
async def log_param(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    tracking.log_params(
        session, user, _run_id(data), {str(req(data, "key")): data.get("value", "")}
    )
    return ok()


@router.post(f"{API}/runs/set-tag")
async def set_tag(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    key, value = str(req(data, "key")), str(data.get("value", ""))
    run_id = _run_id(data)
    tracking.set_tags(session, user, run_id, {key: value})
    if key == "mlflow.runName":
        tracking.update_run(session, user, run_id, name=value)
    return ok()


@router.post(f"{API}/runs/delete-tag")
async def delete_tag(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    tracking.delete_tag(session, user, _run_id(data), str(req(data, "key")))
    return ok()


@router.post(f"{API}/runs/log-batch")
async def log_batch(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    metrics = data.get("metrics") or []
    params = data.get("params") or []
    tags = data.get("tags") or []
    for field, items in (("metrics", metrics), ("params", params), ("tags", tags)):
        if not isinstance(items, list):
            raise InvalidInput(f"'{field}' must be a list", {"field": field})
    if (
        len(metrics) > MAX_BATCH_METRICS
        or len(params) > MAX_BATCH_PARAMS
        or len(tags) > MAX_BATCH_TAGS
    ):
        raise InvalidInput(
            f"a batch holds at most {MAX_BATCH_METRICS} metrics, {MAX_BATCH_PARAMS} params and "
            f"{MAX_BATCH_TAGS} tags",
            {"field": "metrics"},
        )
    await run_in_threadpool(
        tracking.log_batch,
        session,
        user,
        _run_id(data),
        metrics=metrics,  # checked once, by the service
        params=kv(params, "params"),
        tags=kv(tags, "tags"),
    )
    return ok()


@router.post(f"{API}/runs/search")
async def search_runs(request: Request, session: Session, user: User) -> Response:
    from mlteam.tracking.search import search_runs as search

    data = await body(request)
    ids = [str(i) for i in data.get("experiment_ids") or []]
    ids = [_experiment(session, user, request, i).id if i == "0" else i for i in ids]
    runs, token = await run_in_threadpool(
        search,
        session,
        user,
        ids,
        str(data.get("filter") or ""),
        list(data.get("order_by") or []),
        int(data.get("max_results") or 1000),
        data.get("page_token") or None,
        str(data.get("run_view_type") or "ACTIVE_ONLY"),
    )
    found: dict[str, Any] = {"runs": _runs_json(session, runs)}
    if token:
        found["next_page_token"] = token
    return ok(found)


@router.post(f"{API}/runs/log-inputs")
async def log_inputs(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    tracking.get_run(session, user, _run_id(data), Perm.tracking_write)
    return ok()  # MLflow dataset inputs: mlteam records its own dataset versions on runs


@router.post(f"{API}/runs/outputs")
async def log_outputs(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    run = tracking.get_run(session, user, _run_id(data), Perm.tracking_write)
    for item in data.get("models") or []:
        model = logged_models.get(session, user, str(item.get("model_id")), Perm.tracking_write)
        if model.source_run_id is None:
            model.source_run_id = run.id
    return ok()


@router.get(f"{API}/metrics/get-history")
def metric_history(
    session: Session,
    user: User,
    run_id: str = "",
    run_uuid: str = "",
    metric_key: str = "",
    max_results: int = 25000,
    page_token: str | None = None,
) -> Response:
    if not metric_key:
        raise InvalidInput(
            "missing value for required parameter 'metric_key'", {"field": "metric_key"}
        )
    points = tracking.metric_history(
        session, user, _run_id({"run_id": run_id, "run_uuid": run_uuid}), metric_key
    )
    start = int(page_token) if page_token and page_token.isdigit() else 0
    page = points[start : start + max_results]
    body: dict[str, Any] = {"metrics": page}
    if start + max_results < len(points):
        body["next_page_token"] = str(start + max_results)
    return ok(body)


# -- logged models ----------------------------------------------------------------------------


@router.post(f"{API}/logged-models")
async def create_logged_model(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    exp = _experiment(session, user, request, str(req(data, "experiment_id")))
    row = logged_models.create(
        session,
        user,
        exp,
        name=str(data.get("name") or ""),
        model_type=str(data.get("model_type") or ""),
        source_run_id=data.get("source_run_id") or None,
        params=kv(data.get("params"), "params"),
        tags=kv(data.get("tags"), "tags"),
    )
    return ok({"model": _model_json(row)})


@router.post(f"{API}/logged-models/search")
async def search_logged_models(request: Request, session: Session, user: User) -> Response:
    data = await body(request)
    ids = [_experiment(session, user, request, str(i)).id for i in data.get("experiment_ids") or []]
    rows = logged_models.search(session, user, ids, int(data.get("max_results") or 100))
    return ok({"models": [_model_json(r) for r in rows]})


@router.get(f"{API}/logged-models/{{model_id}}")
def get_logged_model(model_id: str, session: Session, user: User) -> Response:
    return ok({"model": _model_json(logged_models.get(session, user, model_id))})


@router.patch(f"{API}/logged-models/{{model_id}}")
async def finalize_logged_model(
    model_id: str, request: Request, session: Session, user: User
) -> Response:
    data = await body(request)
    row = logged_models.finalize(session, user, model_id, str(req(data, "status")))
    return ok({"model": _model_json(row)})


@router.delete(f"{API}/logged-models/{{model_id}}")
def delete_logged_model(model_id: str, session: Session, user: User) -> Response:
    logged_models.delete(session, user, model_id)
    return ok()


@router.patch(f"{API}/logged-models/{{model_id}}/tags")
async def set_logged_model_tags(
    model_id: str, request: Request, session: Session, user: User
) -> Response:
    data = await body(request)
    logged_models.set_tags(session, user, model_id, kv(data.get("tags"), "tags"))
    return ok()


@router.delete(f"{API}/logged-models/{{model_id}}/tags/{{key}}")
def delete_logged_model_tag(model_id: str, key: str, session: Session, user: User) -> Response:
    logged_models.delete_tag(session, user, model_id, key)
    return ok()


@router.post(f"{API}/logged-models/{{model_id}}/params")
async def log_logged_model_params(
    model_id: str, request: Request, session: Session, user: User
) -> Response:
    data = await body(request)
    logged_models.log_params(session, user, model_id, kv(data.get("params"), "params"))
    return ok()


# -- the artifact proxy (mlflow-artifacts:/ URIs) -------------------------------------------------


@router.put(f"{ARTIFACTS}/{{path:path}}")
async def upload_artifact(
    path: str, request: Request, session: Session, user: User, platform: Platform
) -> Response:
    from mlteam.data.routes import spool_body

    key = clean_key(path)
    await run_in_threadpool(logged_models.check_artifact_write, session, user, key)
    tmp = await spool_body(request, platform.settings.max_upload_mb)
    try:
        await run_in_threadpool(platform.artifacts.put_file, tmp, key)
    finally:
        import os

        os.unlink(tmp)
    return ok()


@router.get(ARTIFACTS)
def list_artifacts(session: Session, user: User, platform: Platform, path: str = "") -> Response:
    key = clean_key(path)
    logged_models.check_artifact_read(session, user, key)
    files = [
        {
            "path": e["path"],
            "is_dir": e["is_dir"],
            **({} if e["is_dir"] else {"file_size": e["size"]}),
        }
        for e in platform.artifacts.list(key)
    ]
    return ok({"files": files})


@router.get(f"{ARTIFACTS}/{{path:path}}")
def download_artifact(path: str, session: Session, user: User, platform: Platform) -> Response:
    key = clean_key(path)
    logged_models.check_artifact_read(session, user, key)
    fh = platform.artifacts.open(key)

    def chunks():
        with fh:
            yield from iter(lambda: fh.read(1 << 20), b"")

    return StreamingResponse(chunks(), media_type="application/octet-stream")
