"""Projects: who sees which, business settings, the model-request backlog, members."""

from __future__ import annotations

import pytest

from mlteam import Conflict, Forbidden, InvalidInput
from tests.conftest import uid


def test_list_shows_my_projects_and_all_for_an_admin(admin, new_user, client_for) -> None:
    email, token = new_user()
    me = client_for(token)
    mine = uid("mine")
    me.create_project(mine)
    other = uid("other")
    admin.create_project(other)
    assert [p["slug"] for p in me.projects()] == [mine]
    assert me.projects()[0]["my_roles"] == ["owner"]
    everything = {p["slug"] for p in admin.projects()}
    assert {mine, other} <= everything


def test_business_settings_and_value_matrix(admin, project) -> None:
    got = admin.update_project(
        project,
        goal="cut fraud losses",
        success_metric="€ saved per 1,000 transactions",
        value_matrix={"fraud": {"fraud": 50, "ok": -500}, "ok": {"fraud": -5, "ok": 0}},
        required_signoffs=["qa", "compliance"],
    )
    assert got["value_matrix"]["fraud"]["ok"] == -500
    assert got["required_signoffs"] == ["qa", "compliance"]
    with pytest.raises(InvalidInput) as err:
        admin.update_project(project, value_matrix={"fraud": {"fraud": "a lot"}})
    assert err.value.details["field"] == "value_matrix.fraud.fraud"
    with pytest.raises(InvalidInput):
        admin.update_project(project, required_signoffs=["janitor"])
    assert admin.project(project)["value_matrix"]["fraud"]["ok"] == -500  # nothing half-applied


def test_stakeholder_sets_business_but_not_settings(admin, project, new_user, client_for) -> None:
    email, token = new_user()
    admin.add_member(project, email, "stakeholder")
    boss = client_for(token)
    boss.update_project(project, goal="grow retention")
    with pytest.raises(Forbidden):
        boss.update_project(project, required_signoffs=["qa"])
    assert admin.project(project)["goal"] == "grow retention"


def test_model_requests_backlog(admin, project, new_user, client_for) -> None:
    email, token = new_user()
    admin.add_member(project, email, "data_scientist")
    ds = client_for(token)
    ds.create_request(project, "Churn model", problem="we lose 5%/month", priority="low")
    ds.create_request(project, "Fraud model", priority="critical")
    ds.create_request(project, "Upsell model", priority="high")
    assert [r["title"] for r in ds.requests(project)] == [
        "Fraud model",
        "Upsell model",
        "Churn model",
    ]
    with pytest.raises(Forbidden):  # data scientists file requests; stakeholders triage them
        ds.triage_request(project, 1, state="accepted")
    admin.triage_request(project, 1, priority="high", state="accepted", rationale="Q3 goal")
    assert [r["number"] for r in admin.requests(project, state="accepted")] == [1]
    event = admin.audit(project, action="request.triage")[0]
    assert event["rationale"] == "Q3 goal" and event["detail"]["after"]["state"] == "accepted"


def test_members_and_the_last_owner(admin, project, new_user) -> None:
    email, _ = new_user()
    admin.add_member(project, email, "viewer")
    admin.add_member(project, email, "qa")
    roles = {m["email"]: m["roles"] for m in admin.members(project)}
    assert roles[email] == ["qa", "viewer"]
    admin.remove_member(project, email, "viewer")
    assert {m["email"]: m["roles"] for m in admin.members(project)}[email] == ["qa"]
    owner = admin.me()["email"]
    with pytest.raises(Conflict):
        admin.remove_member(project, owner, "owner")


def test_slug_taken_is_409(admin, project) -> None:
    with pytest.raises(Conflict):
        admin.create_project(project)
