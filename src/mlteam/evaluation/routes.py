"""HTTP routes of evaluation: gate sets, invariance tests, evaluations and their reports."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Response

from mlteam.core.schemas import JobOut
from mlteam.evaluation import gates, service
from mlteam.evaluation.schemas import (
    EvaluateIn,
    EvaluationOut,
    GateSetIn,
    GateSetOut,
    GateSetUpdate,
    InvarianceIn,
    InvarianceOut,
)
from mlteam.projects import service as projects
from mlteam.server.deps import CurrentUser, PlatformDep, SessionDep

router = APIRouter(prefix="/projects/{slug}", tags=["evaluation"])
VERSION = "/models/{name}/versions/{version}"


def _required(session: SessionDep, user: CurrentUser, slug: str) -> str | None:
    return projects.resolve(session, user, slug).required_gate_set


# -- gate sets ----------------------------------------------------------------------------------


@router.get("/gate-sets", response_model=list[GateSetOut])
def list_gate_sets(slug: str, session: SessionDep, user: CurrentUser) -> object:
    """The current version of each gate set of the project."""
    sets = gates.list_gate_sets(session, user, slug)
    req = _required(session, user, slug)
    return [gates.describe_gate_set(session, g, req) for g in sets]


@router.post("/gate-sets", response_model=GateSetOut, status_code=201)
def create_gate_set(slug: str, body: GateSetIn, session: SessionDep, user: CurrentUser) -> object:
    """Define a gate set (QA)."""
    gs = gates.create_gate_set(session, user, slug, body.name, body.rules, body.description)
    return gates.describe_gate_set(session, gs, _required(session, user, slug))


@router.get("/gate-sets/{gate_set}", response_model=GateSetOut)
def get_gate_set(
    slug: str, gate_set: str, session: SessionDep, user: CurrentUser, version: int | None = None
) -> object:
    """A gate set: its current version, or `?version=n`."""
    gs = gates.get_gate_set(session, user, slug, gate_set, version)
    return gates.describe_gate_set(session, gs, _required(session, user, slug))


@router.put("/gate-sets/{gate_set}", response_model=GateSetOut)
def update_gate_set(
    slug: str, gate_set: str, body: GateSetUpdate, session: SessionDep, user: CurrentUser
) -> object:
    """Replace a gate set's rules (a new version)."""
    gs = gates.update_gate_set(session, user, slug, gate_set, body.rules, body.description)
    return gates.describe_gate_set(session, gs, _required(session, user, slug))


@router.delete("/gate-sets/{gate_set}", status_code=204)
def delete_gate_set(slug: str, gate_set: str, session: SessionDep, user: CurrentUser) -> None:
    """Delete a gate set (refused while the project requires it)."""
    gates.delete_gate_set(session, user, slug, gate_set)


@router.get("/gate-sets/{gate_set}/versions", response_model=list[GateSetOut])
def gate_set_history(slug: str, gate_set: str, session: SessionDep, user: CurrentUser) -> object:
    """Every version of a gate set, oldest first."""
    req = _required(session, user, slug)
    return [
        gates.describe_gate_set(session, g, req)
        for g in gates.gate_set_history(session, user, slug, gate_set)
    ]


# -- invariance tests ---------------------------------------------------------------------------


@router.get("/invariances", response_model=list[InvarianceOut])
def list_invariances(slug: str, session: SessionDep, user: CurrentUser) -> object:
    return [
        gates.describe_invariance(session, i) for i in gates.list_invariances(session, user, slug)
    ]


@router.post("/invariances", response_model=InvarianceOut, status_code=201)
def add_invariance(slug: str, body: InvarianceIn, session: SessionDep, user: CurrentUser) -> object:
    """Declare that changing a column must not change the prediction (domain experts, QA)."""
    inv = gates.add_invariance(session, user, slug, body.name, body.column, body.description)
    return gates.describe_invariance(session, inv)


@router.delete("/invariances/{name}", status_code=204)
def delete_invariance(slug: str, name: str, session: SessionDep, user: CurrentUser) -> None:
    gates.delete_invariance(session, user, slug, name)


# -- evaluations --------------------------------------------------------------------------------


@router.post(VERSION + "/evaluations", response_model=JobOut, status_code=202)
def evaluate(
    slug: str,
    name: str,
    version: str,
    body: EvaluateIn,
    session: SessionDep,
    user: CurrentUser,
    platform: PlatformDep,
    background: BackgroundTasks,
) -> object:
    """Queue an evaluation of a model version; poll `/jobs/{id}`, its result names the
    evaluation."""
    job = service.start_evaluation(session, user, slug, name, version, **body.model_dump())
    background.add_task(platform.executor.wake)  # after the commit, so the executor sees it
    return job


@router.get(VERSION + "/evaluations", response_model=list[EvaluationOut])
def version_evaluations(
    slug: str, name: str, version: str, session: SessionDep, user: CurrentUser
) -> object:
    """Evaluations of one model version, newest first."""
    evs = service.list_evaluations(session, user, slug, name, version)
    return [service.describe(session, e, slug) for e in evs]


@router.get("/evaluations", response_model=list[EvaluationOut])
def list_evaluations(
    slug: str, session: SessionDep, user: CurrentUser, model: str | None = None
) -> object:
    """Evaluations of the project (or of one model), newest first."""
    evs = service.list_evaluations(session, user, slug, model)
    return [service.describe(session, e, slug) for e in evs]


@router.get("/evaluations/{number}", response_model=EvaluationOut)
def get_evaluation(slug: str, number: int, session: SessionDep, user: CurrentUser) -> object:
    return service.describe(session, service.get_evaluation(session, user, slug, number), slug)


@router.get(
    "/evaluations/{number}/report.json", responses={200: {"content": {"application/json": {}}}}
)
def report_json(
    slug: str, number: int, session: SessionDep, user: CurrentUser, platform: PlatformDep
) -> Response:
    """The full report (suite output plus the gate results)."""
    data = service.report_bytes(session, user, platform.artifacts, slug, number, "json")
    return Response(data, media_type="application/json")


@router.get("/evaluations/{number}/report.html", responses={200: {"content": {"text/html": {}}}})
def report_html(
    slug: str, number: int, session: SessionDep, user: CurrentUser, platform: PlatformDep
) -> Response:
    """The report as a self-contained HTML page with plots."""
    data = service.report_bytes(session, user, platform.artifacts, slug, number, "html")
    return Response(data, media_type="text/html; charset=utf-8")
