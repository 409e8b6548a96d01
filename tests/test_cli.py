"""The CLI against a real server: each command a thin call, errors one clear line."""

from __future__ import annotations

import json

import pytest

from tests.conftest import uid


@pytest.fixture(scope="module")
def token(live_server) -> str:
    out = live_server.cli("users", "create", f"{uid('cli')}@example.com", "--admin").stdout
    return out.strip().splitlines()[-1]


def test_users_create_prints_token_alone_on_last_line(live_server, token) -> None:
    # Through the API this time (MLTEAM_TOKEN set): still the token alone on the last line.
    res = live_server.cli("users", "create", f"{uid('ana')}@example.com", token=token)
    last = res.stdout.strip().splitlines()[-1]
    assert last.startswith("mlt_") and len(last) > 40
    listed = json.loads(live_server.cli("users", "list", "--json", token=token).stdout)
    assert any(u["email"].startswith("ana-") for u in listed)


def test_tokens_create_list_revoke(live_server, token) -> None:
    new = (
        live_server.cli("tokens", "create", "--name", "ci", token=token)
        .stdout.strip()
        .splitlines()[-1]
    )
    listed = json.loads(live_server.cli("tokens", "list", "--json", token=new).stdout)
    ci = next(t for t in listed if t["name"] == "ci")
    live_server.cli("tokens", "revoke", ci["id"], token=token)
    res = live_server.cli("projects", "list", token=new, check=False)
    assert res.returncode == 1 and "revoked" in res.stderr


def test_loop_with_the_cli(live_server, token, cancer_csv, tmp_path) -> None:
    slug = uid("cli")
    cli = live_server.cli
    cli("projects", "create", slug, "--goal", "triage", "--metric", "accuracy", token=token)
    cli(
        "projects",
        "set",
        slug,
        "--value-matrix",
        '{"0": {"0": 1, "1": -5}, "1": {"0": -1, "1": 0}}',
        token=token,
    )
    cli("projects", "requests", "create", slug, "Triage model", "--priority", "high", token=token)
    cli("projects", "requests", "triage", slug, "1", "--state", "accepted", token=token)
    up = cli("data", "upload", slug, "cancer", str(cancer_csv), token=token).stdout
    assert "cancer v1 (new version) rows=569" in up
    again = cli("data", "upload", slug, "cancer", str(cancer_csv), token=token).stdout
    assert "unchanged" in again
    trained = cli(
        "train", slug, "cancer", "--target", "target", "--register-as", "clf", token=token
    ).stdout
    assert "beats the baseline" in trained and "registered clf v1" in trained
    versions = json.loads(cli("models", "versions", slug, "clf", "--json", token=token).stdout)
    assert versions[0]["version"] == 1
    dep = uid("cli")
    cli("deployments", "create", slug, dep, "--model", "clf", "--version", "1", token=token)
    import pandas as pd

    rows = pd.read_csv(cancer_csv).drop(columns="target").head(3).to_dict(orient="records")
    pred = json.loads(cli("predict", dep, json.dumps(rows), token=token).stdout)
    assert len(pred["predictions"]) == 3
    fb = [{"prediction_id": p["id"], "truth": 1} for p in pred["predictions"]]
    assert "recorded 3" in cli("feedback", dep, json.dumps(fb), token=token).stdout
    report = json.loads(cli("report", dep, "--json", token=token).stdout)
    assert report["feedback"] == 3 and "mean radius" in report["versions"][0]["drift"]
    out = tmp_path / "v1.csv"
    cli("data", "download", slug, "cancer", "1", "--out", str(out), "--format", "csv", token=token)
    assert len(pd.read_csv(out)) == 569
    audit = json.loads(
        cli("projects", "audit", slug, "--json", "--limit", "200", token=token).stdout
    )
    assert {"project.create", "request.triage", "deployment.revise"} <= {e["action"] for e in audit}
    phase = json.loads(cli("projects", "show", slug, token=token).stdout)["phase"]
    assert phase == "iteration"


def test_errors_are_one_clear_line(live_server, token) -> None:
    res = live_server.cli("projects", "show", "no-such-project", token=token, check=False)
    assert res.returncode == 1
    assert "error: project no-such-project not found" in res.stderr
    assert "Traceback" not in res.stderr
    res = live_server.cli("projects", "list", check=False)
    assert res.returncode == 2 and "MLTEAM_TOKEN" in res.stderr


def test_demo_runs_the_loop(server_factory, tmp_path) -> None:
    import subprocess
    import sys

    from tests.conftest import free_port

    srv = server_factory()  # only for its home, database and environment
    port = free_port()
    res = subprocess.run(
        [sys.executable, "-m", "mlteam.cli.main", "demo", "--port", str(port), "--no-serve"],
        env=srv.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    for text in (
        "9/9",
        "beats the baseline",
        "min_roc_auc",  # the QA gates, evaluated
        "/evaluations/1/report.html",
        "recorded 100 labels",
        "phase: iteration",
        f"http://127.0.0.1:{port}",
        "token   mlt_",
    ):
        assert text in res.stdout, text
