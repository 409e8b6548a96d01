"""`mlteam demo`: start the server on the embedded default and drive the whole loop once.

Everything goes through the SDK over HTTP, as any user would: project and business goal,
data, training against a baseline, registry, deployment, predictions, feedback, drift report.
"""

from __future__ import annotations

import socket
import threading
import time

import typer
from rich.panel import Panel

from mlteam.cli.common import err, out, settings, table
from mlteam.cli.training import follow
from mlteam.client import Client
from mlteam.config import Settings
from mlteam.core.errors import Conflict

ADMIN = "admin@mlteam.local"
PROJECT = "demo"
MODEL = "cancer-classifier"
DEPLOYMENT = "demo-cancer"


def _admin_token(s: Settings) -> str:
    from mlteam.core.auth import bootstrap_token, create_user
    from mlteam.core.db import Database

    db = Database(s.database_url)
    try:
        with db.session() as session:
            try:
                _, token = create_user(session, None, ADMIN, name="Demo admin", admin=True)
            except Conflict:
                session.rollback()
                token = bootstrap_token(session, ADMIN, "demo")
        return token
    finally:
        db.dispose()


def _start_server(s: Settings, host: str, port: int):
    import uvicorn

    from mlteam.server.app import create_app

    with socket.socket() as probe:
        if probe.connect_ex((host, port)) == 0:
            err.print(f"[red]error:[/] {host}:{port} is already in use; pass --port")
            raise typer.Exit(1)
    config = uvicorn.Config(create_app(s), host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="mlteam-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            err.print("[red]error:[/] the server did not start")
            raise typer.Exit(1)
        time.sleep(0.1)
    return server, thread


def step(n: int, text: str) -> None:
    out.print(f"\n[bold cyan]{n}/9[/] [bold]{text}[/]")


def run_loop(c: Client, home: Settings) -> dict:
    from sklearn.datasets import load_breast_cancer

    step(1, "stakeholder: project, business goal, value of each decision, a model request")
    try:
        c.create_project(PROJECT, name="Biopsy triage (demo)")
    except Conflict:
        out.print("  project exists: this run is a new iteration of the loop")
    c.update_project(
        PROJECT,
        goal="Flag likely-malignant biopsies so pathologists review them first",
        success_metric="accuracy on reviewed biopsies; value per 1,000 decisions",
        # breast_cancer: 0 = malignant, 1 = benign. A missed malignancy costs most.
        value_matrix={"0": {"0": 500, "1": -2000}, "1": {"0": -100, "1": 0}},
    )
    if not c.requests(PROJECT):
        c.create_request(
            PROJECT,
            "Biopsy triage model",
            problem="Review queue is FIFO today",
            metric="accuracy",
            priority="high",
        )
    out.print(f"  project [bold]{PROJECT}[/], phase {c.project(PROJECT)['phase']}")

    step(2, "data engineer: upload a dataset version (scikit-learn's breast_cancer)")
    frame = load_breast_cancer(as_frame=True).frame
    path = home.home / "demo" / "breast_cancer.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    v = c.upload(PROJECT, "biopsies", path)
    out.print(
        f"  biopsies v{v['n']}: {v['row_count']} rows, {len(v['columns'])} columns, "
        f"sha256 {v['content_hash'][:12]}{'' if v['created'] else ' (same content as before)'}"
    )

    step(3, "data scientist: a non-ML baseline and three candidate models, as a background job")
    job = c.train(PROJECT, "biopsies", "target", register_as=MODEL)
    job = follow(c, job["id"])
    result = job["result"]
    table(
        [{"candidate": r["name"], **r["metrics"]} for r in result["runs"]],
        ["candidate", "accuracy", "balanced_accuracy", "f1_macro", "roc_auc"],
    )
    out.print(f"  {result['verdict']}")

    step(4, "QA: gates, and an evaluation against the baseline and the business value")
    gates = [
        {"type": "metric", "metric": "roc_auc", "min": 0.9},
        {"type": "beats_baseline", "metric": "accuracy", "margin": 0.05},
        {"type": "no_leakage"},
    ]
    try:
        c.create_gate_set(PROJECT, "release", gates, "what may go to production")
    except Conflict:
        c.update_gate_set(PROJECT, "release", gates)
    c.require_gate_set(PROJECT, "release")
    version = result["model_version"]["version"]
    evaluation = follow(c, c.evaluate(PROJECT, MODEL, version, bootstrap=100)["id"])["result"]
    table(
        [
            {"gate": g["name"], "passed": g["passed"], "value": g.get("value")}
            for g in evaluation["gates"]
        ],
        ["gate", "passed", "value"],
    )
    out.print(f"  {evaluation['summary']['statement']}")
    out.print(
        f"  report: /api/v1/projects/{PROJECT}/evaluations/{evaluation['evaluation']}/report.html"
    )

    step(5, "registry: the better model is a version, with its run and data as lineage")
    mv = c.model_version(PROJECT, MODEL, result["model_version"]["version"])
    out.print(
        f"  {MODEL} v{mv['version']} ← run {mv['run_id'][:8]} ← "
        f"{mv['lineage']['dataset_versions'][0]['dataset']} v{mv['lineage']['dataset_versions'][0]['n']}"
    )

    step(6, "devops: deploy it behind a named endpoint")
    d = c.deploy(PROJECT, DEPLOYMENT, MODEL, mv["version"])
    out.print(
        f"  deployment {d['name']} revision {d['revision']}: POST /api/v1/deployments/{d['name']}/predict"
    )

    step(7, "production: 100 predictions, each with an id")
    sample = frame.sample(100, random_state=int(time.time()) % 1000)
    records = sample.drop(columns="target").to_dict(orient="records")
    answer = c.predict(DEPLOYMENT, records)
    first = answer["predictions"][0]
    out.print(f"  e.g. prediction {first['id'][:8]}… → {first['output']}")

    step(8, "feedback: ground truth for those predictions")
    items = [
        {"prediction_id": p["id"], "truth": int(t)}
        for p, t in zip(answer["predictions"], sample["target"], strict=True)
    ]
    out.print(f"  recorded {c.feedback(DEPLOYMENT, items)} labels")

    step(9, "monitoring: drift of live inputs vs training data, accuracy on feedback")
    rep = c.report(DEPLOYMENT)
    latest = rep["versions"][-1]
    out.print(
        f"  {rep['predictions']} predictions logged, {rep['feedback']} with feedback; "
        f"live accuracy {latest['performance'].get('accuracy', float('nan')):.3f}"
    )
    top = sorted(latest["drift"].items(), key=lambda kv: -kv[1]["psi"])[:5]
    table([{"feature": f, **d} for f, d in top], ["feature", "psi", "ks", "p_value", "drifted"])
    out.print(f"  project phase: [bold]{c.project(PROJECT)['phase']}[/]")
    return rep


def demo(
    host: str = typer.Option("127.0.0.1", help="Address to serve on."),
    port: int = typer.Option(8000, help="Port to serve on."),
    serve: bool = typer.Option(True, help="Keep serving after the loop (until Ctrl-C)."),
) -> None:
    """Start the server on the embedded default and run the whole ML loop once."""
    s = settings()
    s.ensure_home()
    out.print(f"mlteam home: {s.home}  database: {s.database_url}")
    server, thread = _start_server(s, host, port)
    url = f"http://{host}:{port}"
    token = _admin_token(s)
    try:
        with Client(url, token, timeout=120) as c:
            run_loop(c, s)
        out.print(
            Panel.fit(
                f"server  {url}   (API docs: {url}/docs)\nadmin   {ADMIN}\ntoken   {token}",
                title="mlteam is running",
            )
        )
        out.print("Use it from another shell:", soft_wrap=True)
        out.print(f"  export MLTEAM_URL={url} MLTEAM_TOKEN={token}", soft_wrap=True)
        out.print(f"  mlteam projects show {PROJECT}", soft_wrap=True)
        if serve:
            out.print("Ctrl-C to stop.")
            while thread.is_alive():
                thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.should_exit = True
        thread.join(15)
