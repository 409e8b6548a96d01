"""Registry and governance: tags, descriptions, aliases and derived stages, model cards, and
promotion requests with sign-offs (DESIGN.md: "No one approves a request they made").

One module-scoped project trains once (model `m` v1) and registers more versions of the same
run; it requires the sign-offs of a regulated project (qa and compliance).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlteam import Client, Conflict, Forbidden, InvalidInput, NotFound
from tests.conftest import uid

ROLES = ("data_scientist", "qa", "compliance", "devops", "data_engineer", "viewer")


@dataclass
class World:
    slug: str
    run_id: str
    admin: Client
    admin_email: str
    users: dict[str, tuple[str, Client]]  # name → (email, client)

    def c(self, name: str) -> Client:
        return self.users[name][1]

    def email(self, name: str) -> str:
        return self.users[name][0]

    def new_version(self) -> int:
        return self.admin.register(self.slug, "m", self.run_id)["version"]


@pytest.fixture(scope="module")
def w(admin: Client, new_user, client_for, cancer_csv: Path) -> World:
    slug = uid("reg")
    admin.create_project(slug, required_signoffs=["qa", "compliance"])
    admin.upload(slug, "cancer", cancer_csv)
    job = admin.wait(admin.train(slug, "cancer", "target", register_as="m")["id"], timeout=300)
    users: dict[str, tuple[str, Client]] = {}
    for role in (*ROLES, "domain_expert", "stakeholder"):
        email, token = new_user(prefix=role)
        admin.add_member(slug, email, role)
        users[role] = (email, client_for(token))
    # a data scientist who is also qa, one who holds qa and compliance, a second scientist
    for name, roles in (
        ("ds_qa", ("data_scientist", "qa")),
        ("qa_compliance", ("qa", "compliance")),
        ("ds2", ("data_scientist",)),
    ):
        email, token = new_user(prefix=name.replace("_", "-"))
        for role in roles:
            admin.add_member(slug, email, role)
        users[name] = (email, client_for(token))
    email, token = new_user(prefix="outsider")
    users["outsider"] = (email, client_for(token))
    return World(slug, job["result"]["best_run_id"], admin, admin.me()["email"], users)


def events(w: World, action: str) -> list[dict[str, Any]]:
    return w.admin.audit(w.slug, action=action, limit=1000)


# -- tags and descriptions ---------------------------------------------------------------------


def test_model_and_version_tags_and_descriptions(w: World) -> None:
    ds = w.c("data_scientist")
    m = ds.set_model_tag(w.slug, "m", "team", "fraud")
    assert m["tags"] == {"team": "fraud"}
    ds.set_model_tag(w.slug, "m", "team", "risk")
    ds.set_model_tag(w.slug, "m", "mlflow.domain/sub", "tabular")
    assert w.c("viewer").model(w.slug, "m")["tags"] == {
        "mlflow.domain/sub": "tabular",
        "team": "risk",
    }
    ds.delete_model_tag(w.slug, "m", "mlflow.domain/sub")
    assert ds.model(w.slug, "m")["tags"] == {"team": "risk"}
    with pytest.raises(NotFound):
        ds.delete_model_tag(w.slug, "m", "mlflow.domain/sub")

    v = ds.set_version_tag(w.slug, "m", 1, "validated by", "qa team")
    assert v["tags"] == {"validated by": "qa team"}
    ds.delete_version_tag(w.slug, "m", 1, "validated by")
    assert ds.model_version(w.slug, "m", 1)["tags"] == {}

    assert ds.update_model(w.slug, "m", "Biopsy triage")["description"] == "Biopsy triage"
    assert ds.update_model_version(w.slug, "m", 1, "first cut")["description"] == "first cut"
    assert ds.models(w.slug)[0]["description"] == "Biopsy triage"

    with pytest.raises(InvalidInput) as bad:
        ds.set_model_tag(w.slug, "m", "a/../b", "x")
    assert "tag key" in bad.value.message
    for role in ("viewer", "qa", "devops", "compliance"):
        with pytest.raises(Forbidden):
            w.c(role).set_model_tag(w.slug, "m", "team", role)
        with pytest.raises(Forbidden):
            w.c(role).update_model_version(w.slug, "m", 1, role)
    with pytest.raises(NotFound):
        w.c("outsider").set_model_tag(w.slug, "m", "team", "x")
    assert ds.model(w.slug, "m")["tags"] == {"team": "risk"}

    tag_events = events(w, "model.tag.")
    assert {e["action"] for e in tag_events} == {"model.tag.set", "model.tag.delete"}
    assert all(e["actor_email"] == w.email("data_scientist") for e in tag_events)
    assert events(w, "model.version.update")[0]["target"] == "model:m/1"


# -- aliases and stages ------------------------------------------------------------------------


def test_aliases_move_and_stages_follow(w: World) -> None:
    ds = w.c("data_scientist")
    a, b = w.new_version(), w.new_version()
    assert ds.model_version(w.slug, "m", a)["stage"] == "None"

    assert ds.set_alias(w.slug, "m", "staging", a)["stage"] == "Staging"
    assert ds.set_alias(w.slug, "m", "challenger", a)["aliases"] == ["challenger", "staging"]
    assert ds.model(w.slug, "m")["aliases"]["challenger"] == a

    # a transition moves the alias; archive_existing archives the version that held it
    moved = ds.transition_stage(w.slug, "m", b, "staging", archive_existing=True)
    assert moved["stage"] == "Staging" and "staging" in moved["aliases"]
    left = ds.model_version(w.slug, "m", a)
    assert left["aliases"] == ["challenger"] and left["stage"] == "Archived"

    assert ds.transition_stage(w.slug, "m", b, "None")["stage"] == "None"
    assert "staging" not in ds.model(w.slug, "m")["aliases"]
    assert ds.transition_stage(w.slug, "m", b, "Archived")["stage"] == "Archived"

    ds.delete_alias(w.slug, "m", "challenger")
    assert ds.model_version(w.slug, "m", a)["aliases"] == []
    with pytest.raises(NotFound):
        ds.delete_alias(w.slug, "m", "challenger")
    with pytest.raises(InvalidInput):
        ds.transition_stage(w.slug, "m", b, "Shipped")

    stage_events = [e for e in events(w, "model.version.stage") if e["target"] == f"model:m/{b}"]
    assert [e["detail"]["to"] for e in stage_events] == ["Archived", "None", "Staging"]
    assert stage_events[-1]["detail"]["archived_existing"] == a


@pytest.mark.parametrize("alias", ["production", "champion", "PRODUCTION"])
def test_protected_alias_cannot_be_set_directly(w: World, alias: str) -> None:
    v = w.new_version()
    for who in ("data_scientist", None):  # None: the admin, who acts as owner
        c = w.c(who) if who else w.admin
        with pytest.raises(Forbidden) as denied:
            c.set_alias(w.slug, "m", alias, v)
        assert "promotion request" in denied.value.message
    assert w.admin.model_version(w.slug, "m", v)["aliases"] == []


def test_transition_to_production_goes_through_promotion(w: World) -> None:
    with pytest.raises(Forbidden) as denied:
        w.admin.transition_stage(w.slug, "m", 1, "Production")
    assert "promotion" in denied.value.message
    assert w.admin.model_version(w.slug, "m", 1)["stage"] != "Production"


# -- model cards -------------------------------------------------------------------------------


def test_model_card_generated_facts(w: World) -> None:
    card = w.c("compliance").model_card(w.slug, "m", 1)
    g = card["generated"]
    assert card["revision"] == 0 and card["human"]["intended_use"] == ""
    assert (g["model"], g["version"], g["owner"]) == ("m", 1, w.admin_email)
    assert g["run"]["id"] == w.run_id and g["run"]["status"] == "FINISHED"
    assert g["run"]["params"]["candidate"] == "logistic_regression"
    assert g["run"]["metrics"]["accuracy"] > 0.9
    [data] = g["training_data"]
    assert (data["dataset"], data["version"], data["rows"]) == ("cancer", 1, 569)
    assert {"name": "target", "type": "int64"} in data["columns"]
    assert len(g["signature"]["inputs"]) == 30
    assert g["signature"]["outputs"][0]["name"] == "target"
    assert "stage" in g and "aliases" in g and g["evaluation"] is None


def test_model_card_edits_make_revisions(w: World) -> None:
    ds, expert = w.c("data_scientist"), w.c("domain_expert")
    v = w.new_version()
    first = ds.edit_model_card(
        w.slug, "m", v, intended_use="Triage of biopsy reports", limitations="Adults only"
    )
    assert first["revision"] == 1 and first["edited_by"] == w.email("data_scientist")
    # a domain expert writes what they know; untouched fields carry over
    second = expert.edit_model_card(w.slug, "m", v, caveats="Not for paediatric use")
    assert second["revision"] == 2
    assert second["human"]["limitations"] == "Adults only"
    assert second["human"]["caveats"] == "Not for paediatric use"
    # an edit that changes nothing makes no revision
    assert expert.edit_model_card(w.slug, "m", v, caveats="Not for paediatric use")["revision"] == 2

    latest = w.c("viewer").model_card(w.slug, "m", v)
    assert latest["revision"] == 2 and latest["generated"]["version"] == v
    old = w.c("viewer").model_card(w.slug, "m", v, revision=1)
    assert old["human"]["caveats"] == "" and old["human"]["intended_use"].startswith("Triage")
    revisions = ds.model_card_revisions(w.slug, "m", v)
    assert [r["revision"] for r in revisions] == [1, 2]
    assert revisions[1]["edited_by"] == w.email("domain_expert")
    with pytest.raises(NotFound):
        ds.model_card(w.slug, "m", v, revision=9)

    md = w.c("compliance").model_card(w.slug, "m", v, format="markdown")
    assert md.startswith(f"# Model card: m v{v}")
    for text in (
        "## Intended use",
        "Triage of biopsy reports",
        "## Training data",
        "| cancer | 1 | 569 | 31 |",
        "## Caveats and recommendations",
        "Not for paediatric use",
        "## Evaluation",
        "Revision 2",
    ):
        assert text in md

    for role in ("viewer", "compliance", "qa", "devops", "data_engineer"):
        with pytest.raises(Forbidden):
            w.c(role).edit_model_card(w.slug, "m", v, notes=role)
    with pytest.raises(NotFound):
        w.c("outsider").model_card(w.slug, "m", v)
    with pytest.raises(InvalidInput):
        ds.edit_model_card(w.slug, "m", v, colour="red")
    edits = [e for e in events(w, "model.card.edit") if e["target"] == f"model:m/{v}"]
    assert [e["detail"]["revision"] for e in edits] == [2, 1]


# -- promotion requests ------------------------------------------------------------------------


def test_promotion_happy_path_needs_every_required_role(w: World) -> None:
    ds, qa, compliance = w.c("data_scientist"), w.c("qa"), w.c("compliance")
    v = w.new_version()
    req = ds.request_promotion(w.slug, "m", v, "beats the baseline by 30 points")
    n = req["number"]
    assert req["state"] == "open" and req["target"] == "production"
    assert req["required"] == ["qa", "compliance"] and req["pending"] == ["qa", "compliance"]
    assert req["requester"] == w.email("data_scientist")
    assert n in [r["number"] for r in w.c("viewer").promotions(w.slug, state="open")]

    after_qa = qa.approve_promotion(w.slug, n, "qa", "test suite green")
    assert after_qa["state"] == "open" and after_qa["pending"] == ["compliance"]
    assert ds.model_version(w.slug, "m", v)["stage"] != "Production"
    assert ds.model(w.slug, "m")["aliases"].get("production") != v

    done = compliance.approve_promotion(w.slug, n, "compliance", "card reviewed")
    assert done["state"] == "approved" and done["pending"] == [] and done["decided_at"]
    assert [(s["role"], s["decision"]) for s in done["signoffs"]] == [
        ("qa", "approve"),
        ("compliance", "approve"),
    ]
    mv = ds.model_version(w.slug, "m", v)
    assert "production" in mv["aliases"] and mv["stage"] == "Production"
    assert ds.model_version(w.slug, "m", "production")["version"] == v
    assert n in [r["number"] for r in ds.promotions(w.slug, state="approved")]
    with pytest.raises(Conflict):
        qa.approve_promotion(w.slug, n, "qa", "again")

    # the audit log tells the story, each step with its rationale
    trail = {
        (e["action"], e["rationale"])
        for e in events(w, "promotion.")
        if e["target"].startswith(f"promotion:{n} ")
    }
    assert {
        ("promotion.request", "beats the baseline by 30 points"),
        ("promotion.signoff", "test suite green"),
        ("promotion.signoff", "card reviewed"),
        ("promotion.approve", "card reviewed"),
    } <= trail
    moved = [e for e in events(w, "model.alias.set") if e["detail"].get("promotion") == n]
    assert moved and moved[0]["rationale"] == "beats the baseline by 30 points"

    # the next promotion to production archives the version that held it
    v2 = w.new_version()
    n2 = ds.request_promotion(w.slug, "m", v2, "retrained on fresh data")["number"]
    w.c("qa_compliance").approve_promotion(w.slug, n2, "qa", "ok")
    compliance.approve_promotion(w.slug, n2, "compliance", "ok")
    assert ds.model_version(w.slug, "m", v2)["stage"] == "Production"
    old = ds.model_version(w.slug, "m", v)
    assert old["stage"] == "Archived" and "production" not in old["aliases"]


def test_only_an_owner_takes_a_protected_alias_off(w: World) -> None:
    ds = w.c("data_scientist")
    v = w.new_version()
    n = ds.request_promotion(w.slug, "m", v, "ship it")["number"]
    w.c("qa").approve_promotion(w.slug, n, "qa", "ok")
    w.c("compliance").approve_promotion(w.slug, n, "compliance", "ok")
    assert ds.model_version(w.slug, "m", v)["stage"] == "Production"
    with pytest.raises(Forbidden) as denied:
        ds.delete_alias(w.slug, "m", "production")
    assert "only an owner" in denied.value.message
    with pytest.raises(Forbidden):
        ds.transition_stage(w.slug, "m", v, "Archived")
    assert ds.model_version(w.slug, "m", v)["stage"] == "Production"
    # an owner retires it: the alias comes off and the version reads Archived
    retired = w.admin.transition_stage(w.slug, "m", v, "Archived")
    assert retired["stage"] == "Archived" and retired["aliases"] == []
    assert "production" not in ds.model(w.slug, "m")["aliases"]


def test_rejection_ends_the_request(w: World) -> None:
    ds = w.c("data_scientist")
    v = w.new_version()
    n = ds.request_promotion(w.slug, "m", v, "try it")["number"]
    rejected = w.c("compliance").reject_promotion(w.slug, n, "compliance", "no model card")
    assert rejected["state"] == "rejected" and rejected["pending"] == []
    with pytest.raises(Conflict):
        w.c("qa").approve_promotion(w.slug, n, "qa", "looks fine to me")
    assert ds.model_version(w.slug, "m", v)["aliases"] == []
    reject = [e for e in events(w, "promotion.reject") if e["target"].startswith(f"promotion:{n} ")]
    assert reject[0]["rationale"] == "no model card"
    # a decided request no longer blocks a new one
    assert ds.request_promotion(w.slug, "m", v, "card written now")["state"] == "open"


def test_withdrawal_ends_the_request(w: World) -> None:
    ds = w.c("data_scientist")
    v = w.new_version()
    n = ds.request_promotion(w.slug, "m", v, "try it", target="champion")["number"]
    with pytest.raises(Forbidden) as denied:
        w.c("ds2").withdraw_promotion(w.slug, n, "not yours")
    assert "requester" in denied.value.message
    out = ds.withdraw_promotion(w.slug, n, "found a leak in the features")
    assert out["state"] == "withdrawn"
    with pytest.raises(Conflict):
        w.c("qa").approve_promotion(w.slug, n, "qa", "fine")
    with pytest.raises(Conflict):
        ds.withdraw_promotion(w.slug, n)
    [ev] = [e for e in events(w, "promotion.withdraw") if e["target"].startswith(f"promotion:{n} ")]
    assert ev["rationale"] == "found a leak in the features"
    # an owner may withdraw someone else's request
    n2 = ds.request_promotion(w.slug, "m", v, "again", target="champion")["number"]
    assert w.admin.withdraw_promotion(w.slug, n2)["state"] == "withdrawn"


def test_requester_never_signs_their_own_request(w: World) -> None:
    ds_qa = w.c("ds_qa")
    v = w.new_version()
    n = ds_qa.request_promotion(w.slug, "m", v, "mine")["number"]
    with pytest.raises(Forbidden) as denied:
        ds_qa.approve_promotion(w.slug, n, "qa", "I checked it myself")
    assert "no one signs off a request they made" in denied.value.message
    with pytest.raises(Forbidden):
        ds_qa.reject_promotion(w.slug, n, "qa", "changed my mind")
    # nor does an admin who made one, even as the owner they act as
    n2 = w.admin.request_promotion(w.slug, "m", v, "admin's own", target="champion")["number"]
    with pytest.raises(Forbidden) as denied:
        w.admin.approve_promotion(w.slug, n2, "qa", "fine")
    assert "you requested" in denied.value.message
    assert w.admin.promotion(w.slug, n)["signoffs"] == []
    assert w.admin.promotion(w.slug, n2)["signoffs"] == []


@pytest.mark.parametrize("role", ["devops", "data_engineer", "viewer", "domain_expert"])
def test_roles_without_signoff_cannot_sign(w: World, role: str) -> None:
    v = w.new_version()
    n = w.c("data_scientist").request_promotion(w.slug, "m", v, "please")["number"]
    with pytest.raises(Forbidden):
        w.c(role).approve_promotion(w.slug, n, "qa", "sure")
    assert w.admin.promotion(w.slug, n)["signoffs"] == []


def test_signer_must_hold_the_role_once_per_person(w: World) -> None:
    v = w.new_version()
    n = w.c("data_scientist").request_promotion(w.slug, "m", v, "please")["number"]
    # admins act as owners: they do not hold qa unless given it
    with pytest.raises(Forbidden) as denied:
        w.admin.approve_promotion(w.slug, n, "qa", "I'm the admin")
    assert "cannot sign off as qa" in denied.value.message
    with pytest.raises(Forbidden):
        w.c("qa").approve_promotion(w.slug, n, "compliance", "close enough")
    # stakeholder holds the permission, but their role is not required here
    with pytest.raises(InvalidInput) as bad:
        w.c("stakeholder").approve_promotion(w.slug, n, "stakeholder", "good for business")
    assert "required" in bad.value.message
    # one person, two roles: one sign-off
    both = w.c("qa_compliance")
    both.approve_promotion(w.slug, n, "qa", "tests pass")
    with pytest.raises(Forbidden) as twice:
        both.approve_promotion(w.slug, n, "compliance", "and I approve again")
    assert "different person" in twice.value.message
    with pytest.raises(Conflict):
        w.c("qa").approve_promotion(w.slug, n, "qa", "me too")
    assert w.admin.promotion(w.slug, n)["state"] == "open"


def test_non_member_gets_404(w: World) -> None:
    out = w.c("outsider")
    n = w.c("data_scientist").request_promotion(w.slug, "m", 1, "for the outsider test")["number"]
    for call in (
        lambda: out.promotions(w.slug),
        lambda: out.promotion(w.slug, n),
        lambda: out.approve_promotion(w.slug, n, "qa", "hi"),
        lambda: out.withdraw_promotion(w.slug, n),
        lambda: out.request_promotion(w.slug, "m", 1, "mine now"),
    ):
        with pytest.raises(NotFound):
            call()


def test_duplicate_open_request_is_409_and_bad_requests_400(w: World) -> None:
    ds = w.c("data_scientist")
    v = w.new_version()
    n = ds.request_promotion(w.slug, "m", v, "first")["number"]
    with pytest.raises(Conflict) as dup:
        w.c("ds2").request_promotion(w.slug, "m", v, "second")
    assert f"#{n}" in dup.value.message
    # another alias for the same version is another request
    assert ds.request_promotion(w.slug, "m", v, "as champion", target="champion")["number"] > n
    for rationale in ("", "   "):
        with pytest.raises(InvalidInput) as bad:
            ds.request_promotion(w.slug, "m", v, rationale, target="challenger")
        assert "rationale" in bad.value.message
    with pytest.raises(InvalidInput):
        w.c("qa").approve_promotion(w.slug, n, "qa", " ")
    with pytest.raises(InvalidInput):
        ds.request_promotion(w.slug, "m", v, "why", target="1st")
    with pytest.raises(NotFound):
        ds.request_promotion(w.slug, "m", 999, "ghost")
    with pytest.raises(NotFound):
        ds.promotion(w.slug, 9999)
    with pytest.raises(InvalidInput):
        ds.promotions(w.slug, state="pending")
    for role in ("qa", "viewer", "devops", "compliance"):
        with pytest.raises(Forbidden):
            w.c(role).request_promotion(w.slug, "m", v, "I want it", target="challenger")


def test_required_signoffs_are_the_projects_setting_when_requested(w: World) -> None:
    ds = w.c("data_scientist")
    v = w.new_version()
    strict = ds.request_promotion(w.slug, "m", v, "under the regulated rules")["number"]
    w.admin.update_project(w.slug, required_signoffs=["qa"])  # the default setting
    try:
        lenient = ds.request_promotion(w.slug, "m", v, "qa alone", target="champion")
        assert lenient["required"] == ["qa"]
        done = w.c("qa").approve_promotion(w.slug, lenient["number"], "qa", "tests pass")
        assert done["state"] == "approved"
        assert "champion" in ds.model_version(w.slug, "m", v)["aliases"]
        # a request keeps the rules it was made under
        still = w.c("qa").approve_promotion(w.slug, strict, "qa", "tests pass")
        assert still["state"] == "open" and still["pending"] == ["compliance"]
    finally:
        w.admin.update_project(w.slug, required_signoffs=["qa", "compliance"])


def test_concurrent_last_signoffs_still_move_the_alias(w: World, platform) -> None:
    """Two signers at once: the second waits for the first (PostgreSQL row lock) and then sees
    its sign-off, so the request does not stay open with every role approved. SQLite has one
    writer: there the second is told to retry (503), and the retry completes it."""
    from mlteam.core.auth import get_user_by_email
    from mlteam.core.errors import Unavailable
    from mlteam.registry import promotions

    v = w.new_version()
    n = w.c("data_scientist").request_promotion(w.slug, "m", v, "race")["number"]
    outcome: dict[str, Any] = {}

    def second() -> None:
        try:
            with platform.db.session() as s:
                signer = get_user_by_email(s, w.email("compliance"))
                promotions.sign(s, signer, w.slug, n, "compliance", "approve", "at once")
            outcome["signed"] = True
        except Unavailable as err:
            outcome["retry"] = err

    with platform.db.session() as s:
        promotions.sign(s, get_user_by_email(s, w.email("qa")), w.slug, n, "qa", "approve", "ok")
        t = threading.Thread(target=second)
        t.start()
        t.join(timeout=1.0)  # the first transaction is still open
    t.join(timeout=30)
    assert not t.is_alive()
    if "retry" in outcome:
        w.c("compliance").approve_promotion(w.slug, n, "compliance", "retried")
    assert w.admin.promotion(w.slug, n)["state"] == "approved"
    assert w.admin.model_version(w.slug, "m", v)["stage"] == "Production"


# -- CLI (in-process: the commands' client is the test's) ---------------------------------------


def test_cli_models_and_promotions(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from mlteam.cli import models as cli_models
    from mlteam.cli.main import app

    runner = CliRunner()

    def run(who: str, *args: str, code: int = 0) -> str:
        monkeypatch.setattr(cli_models, "client", lambda: w.c(who))
        res = runner.invoke(app, list(args))
        assert res.exit_code == code, res.output
        return res.output

    v = str(w.new_version())
    run("data_scientist", "models", "tag", w.slug, "m", "owner-team", "risk", "--version", v)
    run("data_scientist", "models", "describe", w.slug, "m", "cli described", "--version", v)
    run("data_scientist", "models", "stage", w.slug, "m", v, "Staging")
    shown = w.admin.model_version(w.slug, "m", v)
    assert shown["tags"] == {"owner-team": "risk"} and shown["stage"] == "Staging"
    assert shown["description"] == "cli described"
    run("data_scientist", "models", "tag", w.slug, "m", "owner-team", "--version", v, "--delete")
    assert w.admin.model_version(w.slug, "m", v)["tags"] == {}
    out = run("domain_expert", "models", "card-edit", w.slug, "m", v, "--limitations", "adults")
    assert "card revision 1" in out
    assert "adults" in run("viewer", "models", "card", w.slug, "m", v, "--markdown")
    denied = run("data_scientist", "models", "alias", w.slug, "m", "production", v, code=1)
    assert "promotion" in denied

    def number(out: str) -> str:  # "promotion #3: m v2 → production [open], ..."
        return out.split("#")[1].split(":")[0]

    ds = "data_scientist"
    out = run(ds, "promotions", "request", w.slug, "m", v, "--rationale", "ready")
    n = number(out)
    assert "waiting for qa, compliance" in out
    listed = json.loads(run("viewer", "promotions", "list", w.slug, "--state", "open", "--json"))
    assert int(n) in [r["number"] for r in listed]
    run("qa", "promotions", "approve", w.slug, n, "--as", "qa", "--rationale", "tests pass")
    sign = ("promotions", "approve", w.slug, n, "--as", "compliance", "--rationale", "card ok")
    assert "[approved]" in run("compliance", *sign)
    assert w.admin.model_version(w.slug, "m", v)["stage"] == "Production"
    assert json.loads(run("viewer", "promotions", "show", w.slug, n))["state"] == "approved"

    champion = ("promotions", "request", w.slug, "m", v, "--to", "champion", "--rationale", "c")
    m = number(run(ds, *champion))
    assert "[rejected]" in run(
        "qa", "promotions", "reject", w.slug, m, "--as", "qa", "--rationale", "no"
    )
    m = number(run(ds, *champion))
    assert "[withdrawn]" in run(ds, "promotions", "withdraw", w.slug, m)
    failed = run("qa", "promotions", "approve", w.slug, m, "--as", "qa", "--rationale", "x", code=1)
    assert "withdrawn" in failed
