"""The `mlteam` command: one Typer app, a module per capability."""

from __future__ import annotations

import typer

from mlteam.cli import (
    data,
    demo,
    evaluation,
    models,
    pipelines,
    projects,
    server,
    serving,
    training,
    users,
)

app = typer.Typer(
    name="mlteam",
    help="mlteam: a self-hosted ML platform where one product team runs the whole ML loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command("server")
def server_cmd(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    workers: int = typer.Option(
        1,
        min=1,
        envvar="MLTEAM_SERVER_WORKERS",
        help="Server processes sharing the port: new connections go to the one holding the "
        "fewest; each loads the models it serves, keeps its own prediction log buffer and "
        "counts its own metrics. A worker that dies is started again.",
    ),
) -> None:
    """Serve the REST API (migrations are applied at start)."""
    server.serve(host, port, log_level, workers)


app.command("demo")(demo.demo)
app.command("train")(training.train)
app.command("evaluate")(evaluation.evaluate)
app.command("predict")(serving.predict)
app.command("feedback")(serving.feedback)
app.command("report")(serving.report)
app.command("score")(serving.score)
app.add_typer(server.db_app, name="db")
app.add_typer(users.app, name="users")
app.add_typer(users.tokens_app, name="tokens")
app.add_typer(projects.app, name="projects")
app.add_typer(data.app, name="data")
pipelines.register(data.app)
app.add_typer(training.jobs_app, name="jobs")
app.add_typer(training.runs_app, name="runs")
app.add_typer(models.app, name="models")
app.add_typer(models.promotions_app, name="promotions")
app.add_typer(evaluation.gates_app, name="gates")
app.add_typer(evaluation.invariances_app, name="invariances")
app.add_typer(evaluation.evaluations_app, name="evaluations")
app.add_typer(serving.app, name="deployments")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
