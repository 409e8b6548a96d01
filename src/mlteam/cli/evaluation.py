"""`mlteam gates`, `mlteam invariances`, `mlteam evaluate` and `mlteam evaluations`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from mlteam.cli.common import JsonOpt, client, err, errors, show, table
from mlteam.cli.training import follow
from mlteam.core.errors import InvalidInput

gates_app = typer.Typer(
    help="Gate sets: the rules (metric thresholds, fairness, robustness, baseline, champion) "
    "a model version must pass; QA defines them.",
    no_args_is_help=True,
)
invariances_app = typer.Typer(
    help="Invariance tests: columns whose change must not change the prediction.",
    no_args_is_help=True,
)
evaluations_app = typer.Typer(
    help="Stored evaluations of model versions, with gate results and reports.",
    no_args_is_help=True,
)

Project = typer.Argument(..., help="Project slug.")
GateName = typer.Argument(..., help="Gate set name.")
Number = typer.Argument(..., help="Evaluation number (see `mlteam evaluations list`).")
RuleOpt = typer.Option(
    None,
    "--rule",
    help='One rule as JSON, e.g. \'{"type":"metric","metric":"roc_auc","min":0.9}\'; repeat.',
)
RulesFileOpt = typer.Option(None, "--rules-file", help="A JSON file holding the list of rules.")


def _rules(rule: list[str] | None, rules_file: Path | None) -> list[dict[str, Any]]:
    rules: list[Any] = []
    if rules_file is not None:
        try:
            loaded = json.loads(rules_file.read_text())
        except ValueError as e:
            raise InvalidInput(f"{rules_file}: not JSON ({e})", {"field": "rules_file"}) from e
        rules.extend(loaded if isinstance(loaded, list) else [loaded])
    for i, text in enumerate(rule or []):
        try:
            rules.append(json.loads(text))
        except ValueError as e:
            raise InvalidInput(f"--rule #{i + 1} is not JSON ({e})", {"field": "rule"}) from e
    if not rules:
        raise InvalidInput("give at least one --rule or a --rules-file", {"field": "rule"})
    return rules


def _gate_rows(gs: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "gate": r["name"],
            "type": r["type"],
            "rule": {k: v for k, v in r.items() if k not in ("name", "type")},
        }
        for r in gs["rules"]
    ]


@gates_app.command("create")
def create_gate_set(
    project: str = Project,
    name: str = GateName,
    rule: list[str] | None = RuleOpt,
    rules_file: Path | None = RulesFileOpt,
    description: str = typer.Option("", help="What the gate set is for."),
) -> None:
    """Define a gate set from rules given as JSON (QA)."""
    with errors():
        gs = client().create_gate_set(project, name, _rules(rule, rules_file), description)
        typer.echo(f"created gate set {gs['name']} v{gs['version']} ({len(gs['rules'])} rules)")


@gates_app.command("update")
def update_gate_set(
    project: str = Project,
    name: str = GateName,
    rule: list[str] | None = RuleOpt,
    rules_file: Path | None = RulesFileOpt,
) -> None:
    """Replace a gate set's rules (its next version; older evaluations keep theirs)."""
    with errors():
        gs = client().update_gate_set(project, name, _rules(rule, rules_file))
        typer.echo(f"gate set {gs['name']} is now v{gs['version']}")


@gates_app.command("list")
def list_gate_sets(project: str = Project, as_json: bool = JsonOpt) -> None:
    """Gate sets of a project (current versions); `required` marks the one promotions need."""
    with errors():
        rows = client().gate_sets(project)
        if as_json:
            show(rows, True)
            return
        table(
            [{**g, "rules": len(g["rules"])} for g in rows],
            ["name", "version", "required", "rules", "description", "created_by"],
        )


@gates_app.command("show")
def show_gate_set(
    project: str = Project,
    name: str = GateName,
    version: int | None = typer.Option(None, help="An older version."),
    as_json: bool = JsonOpt,
) -> None:
    """A gate set's rules."""
    with errors():
        gs = client().gate_set(project, name, version)
        if as_json:
            show(gs, True)
            return
        title = f"{gs['name']} v{gs['version']}" + (" (required)" if gs["required"] else "")
        table(_gate_rows(gs), ["gate", "type", "rule"], title=title)


@gates_app.command("history")
def gate_set_history(project: str = Project, name: str = GateName, as_json: bool = JsonOpt) -> None:
    """Every version of a gate set: who changed it, when."""
    with errors():
        rows = client().gate_set_versions(project, name)
        table(rows, ["version", "deleted", "rules", "created_by", "created_at"], as_json)


@gates_app.command("delete")
def delete_gate_set(project: str = Project, name: str = GateName) -> None:
    """Delete a gate set (refused while the project requires it)."""
    with errors():
        client().delete_gate_set(project, name)
        typer.echo(f"deleted gate set {name}")


@gates_app.command("require")
def require_gate_set(
    project: str = Project,
    name: str | None = typer.Argument(None, help="Gate set name; leave out with --none."),
    none: bool = typer.Option(False, "--none", help="Require no gate set any more."),
) -> None:
    """Make promotion requests need a passing evaluation against this gate set."""
    with errors():
        if not name and not none:
            raise InvalidInput("give a gate set name, or --none", {"field": "name"})
        p = client().require_gate_set(project, None if none else name)
        required = p.get("required_gate_set")
        typer.echo(
            f"{project} requires gate set {required}"
            if required
            else f"{project} requires no gate set"
        )


@invariances_app.command("add")
def add_invariance(
    project: str = Project,
    name: str = typer.Argument(..., help="Test name."),
    column: str = typer.Argument(..., help="The column whose change must not change predictions."),
    description: str = typer.Option("", help="Why it must hold."),
) -> None:
    """Declare an invariance test (domain experts, QA)."""
    with errors():
        inv = client().add_invariance(project, name, column, description)
        typer.echo(
            f"invariance test {inv['name']}: changing {inv['column']!r} must not change the prediction"
        )


@invariances_app.command("list")
def list_invariances(project: str = Project, as_json: bool = JsonOpt) -> None:
    """The project's invariance tests."""
    with errors():
        table(
            client().invariances(project), ["name", "column", "description", "created_by"], as_json
        )


@invariances_app.command("delete")
def delete_invariance(
    project: str = Project, name: str = typer.Argument(..., help="Test name.")
) -> None:
    """Remove an invariance test."""
    with errors():
        client().delete_invariance(project, name)
        typer.echo(f"deleted invariance test {name}")


def _print_gates(ev: dict[str, Any]) -> None:
    if ev.get("gate_set") is None:
        typer.echo("no gate set checked")
        return
    table(
        [
            {"gate": g["name"], "result": "pass" if g["passed"] else "FAIL", "detail": g["message"]}
            for g in ev["gates"]
        ],
        ["gate", "result", "detail"],
        title=f"gate set {ev['gate_set']} v{ev['gate_set_version']}",
    )
    typer.echo(("PASSED" if ev["passed"] else "FAILED") + f" gate set {ev['gate_set']}")


def evaluate(
    model: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help="Version number, or an alias naming one."),
    project: str = typer.Option(..., "--project", "-p", help="Project slug."),
    dataset: str | None = typer.Option(
        None, help="Dataset to evaluate on (default: the training data)."
    ),
    dataset_version: str = typer.Option("latest", help="Version of --dataset."),
    gate_set: str | None = typer.Option(
        None, help="Gate set to check (default: the required one)."
    ),
    target: str | None = typer.Option(
        None, help="Target column, if the version does not record it."
    ),
    sensitive: str | None = typer.Option(None, help="Sensitive column for the fairness section."),
    slice_columns: list[str] | None = typer.Option(
        None, "--slice", help="Column to slice by; repeat."
    ),
    bootstrap: int = typer.Option(200, help="Bootstrap resamples for confidence intervals."),
    seed: int = typer.Option(0, help="Random seed (bootstrap, noise, shuffles)."),
    wait: bool = typer.Option(True, help="Wait for the job and show its progress."),
) -> None:
    """Evaluate a model version (metrics, slices, fairness, robustness, leakage, business value)
    and check it against a gate set, as a background job."""
    with errors():
        c = client()
        job = c.evaluate(
            project,
            model,
            version,
            dataset=dataset,
            dataset_version=dataset_version,
            gate_set=gate_set,
            target=target,
            sensitive=sensitive,
            slice_columns=list(slice_columns or []),
            bootstrap=bootstrap,
            seed=seed,
        )
        err.print(f"job {job['id']} queued")
        if not wait:
            typer.echo(job["id"])
            return
        result = follow(c, job["id"])["result"]
        ev = c.evaluation(project, result["evaluation"])
        summary = ev["summary"]
        typer.echo(f"evaluation #{ev['number']} of {model} v{ev['version']} on {ev['dataset']}")
        metrics = summary.get("metrics") or {}
        base = summary.get("baseline") or {}
        table(
            [{"metric": k, "model": v, "baseline": base.get(k)} for k, v in metrics.items()],
            ["metric", "model", "baseline"],
        )
        if summary.get("statement"):
            typer.echo(summary["statement"])
        _print_gates(ev)
        typer.echo(f"report: mlteam evaluations report {project} {ev['number']} --html")


@evaluations_app.command("list")
def list_evaluations(
    project: str = Project,
    model: str | None = typer.Option(None, help="Only this model."),
    version: str | None = typer.Option(None, help="Only this version (with --model)."),
    as_json: bool = JsonOpt,
) -> None:
    """Evaluations of a project, newest first."""
    with errors():
        rows = client().evaluations(project, model, version)
        table(
            rows,
            [
                "number",
                "model",
                "version",
                "dataset",
                "gate_set",
                "passed",
                "failed_gates",
                "created_at",
            ],
            as_json,
        )


@evaluations_app.command("show")
def show_evaluation(project: str = Project, number: int = Number, as_json: bool = JsonOpt) -> None:
    """One evaluation: summary metrics, gate results and notes."""
    with errors():
        ev = client().evaluation(project, number)
        if as_json:
            show(ev, True)
            return
        typer.echo(f"evaluation #{ev['number']}: {ev['model']} v{ev['version']} on {ev['dataset']}")
        metrics = ev["summary"].get("metrics") or {}
        table([{"metric": k, "value": v} for k, v in metrics.items()], ["metric", "value"])
        _print_gates(ev)
        for note in ev["notes"]:
            typer.echo(f"note: {note}")


@evaluations_app.command("report")
def evaluation_report(
    project: str = Project,
    number: int = Number,
    html: bool = typer.Option(False, "--html", help="The HTML page instead of the JSON report."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file."),
) -> None:
    """An evaluation's full report (JSON, or the HTML page with plots)."""
    with errors():
        data = client().evaluation_report(project, number, "html" if html else "json")
        text = data if isinstance(data, str) else json.dumps(data, indent=2)
        if output is None:
            typer.echo(text)
        else:
            output.write_text(text)
            err.print(f"wrote {output}")
