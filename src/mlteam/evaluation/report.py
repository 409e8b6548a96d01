"""The evaluation report as one self-contained HTML page.

No external assets (no CDN, no fonts, no scripts): plots are inline SVG drawn by matplotlib's
object API (``Figure``, never pyplot, so no global backend state and no GUI), with text drawn
as paths — a feature name can never become markup. All other text goes through Jinja2 with
autoescaping on.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import jinja2
from markupsafe import Markup
from matplotlib import rc_context
from matplotlib.figure import Figure

MAX_SLICE_ROWS = 40
MAX_BARS = 25
MAX_CONFUSION_PLOT = 20  # more classes than this: the table only

_RC = {"svg.fonttype": "path", "svg.hashsalt": "mlteam", "font.size": 9}


def _svg(fig: Figure) -> Markup:
    buf = io.StringIO()
    with rc_context(_RC):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    return Markup(text[text.index("<svg") :])  # noqa: S704 - our own matplotlib output, text as paths


def _line_plot(
    x: Sequence[float],
    y: Sequence[float],
    xlabel: str,
    ylabel: str,
    title: str,
    diagonal: bool = False,
) -> Markup:
    with rc_context(_RC):
        fig = Figure(figsize=(3.6, 3.2))
        ax = fig.add_subplot()
        if diagonal:
            ax.plot([0, 1], [0, 1], linestyle="--", color="#999999", linewidth=1)
        ax.plot(
            x, y, color="#1f5fa8", linewidth=1.6, marker="o" if len(x) <= 12 else None, markersize=3
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        return _svg(fig)


def _bars(
    names: Sequence[str],
    values: Sequence[float],
    xlabel: str,
    title: str,
    color: str | None = None,
    zoom: bool = False,
) -> Markup:
    """Horizontal bars, first name on top; without ``color``, positive bars (a drop) are red.
    ``zoom`` starts the axis near the smallest value, so 0.95 against 0.99 shows."""
    with rc_context(_RC):
        fig = Figure(figsize=(5.5, 0.28 * len(names) + 0.9))
        ax = fig.add_subplot()
        pos = list(range(len(names)))[::-1]
        ax.barh(pos, values, color=color or ["#b03a2e" if v > 0 else "#7f8c8d" for v in values])
        ax.set_yticks(pos, [n[:40] for n in names])
        ax.axvline(0, color="#333333", linewidth=0.8)
        lo, hi = min(values, default=0.0), max(values, default=0.0)
        if zoom and lo > 0 and hi > lo:
            ax.set_xlim(max(0.0, lo - (hi - lo)), hi + (hi - lo) * 0.05)
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        return _svg(fig)


def _confusion_plot(labels: Sequence[Any], matrix: Sequence[Sequence[int]]) -> Markup:
    k = len(labels)
    with rc_context(_RC):
        fig = Figure(figsize=(1.2 + 0.45 * k, 1.0 + 0.45 * k))
        ax = fig.add_subplot()
        ax.imshow(matrix, cmap="Blues")
        names = [str(v)[:15] for v in labels]
        ax.set_xticks(range(k), names, rotation=45, ha="right")
        ax.set_yticks(range(k), names)
        top = max((max(r) for r in matrix), default=0) or 1
        for i, row in enumerate(matrix):
            for j, v in enumerate(row):
                ax.text(
                    j,
                    i,
                    str(v),
                    ha="center",
                    va="center",
                    color="white" if v > top / 2 else "black",
                )
        ax.set_xlabel("predicted")
        ax.set_ylabel("truth")
        ax.set_title("Confusion matrix")
        return _svg(fig)


def fmt(x: Any, digits: int = 4) -> str:
    """A number for people: None as an en dash, large numbers with separators."""
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "–"
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        return f"{x:.{digits}g}" if abs(x) < 1 else f"{x:,.{max(digits - 2, 1)}f}"
    return str(x)


def _metric_cell(m: dict[str, Any] | None) -> str:
    if not m:
        return "–"
    if m.get("ci_low") is None:
        return fmt(m.get("value"))
    return f"{fmt(m.get('value'))} [{fmt(m['ci_low'])}, {fmt(m['ci_high'])}]"


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.statement{font-size:1.1rem;padding:1rem;border-left:6px solid #1f5fa8;background:#eef4fb}
.ship-baseline,.ship-champion{border-left-color:#b9770e;background:#fdf5e6}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th{background:#f5f5f5}td.l,th.l{text-align:left}.bad{color:#b03a2e;font-weight:600}.ok{color:#1e8449}
.plots{display:flex;flex-wrap:wrap;gap:1rem}.plots svg{max-width:100%;height:auto}.muted{color:#666}
</style></head><body>
<h1>{{ title }}</h1>
<p class="statement ship-{{ bv.ship }}"><strong>Ship: {{ bv.ship }}.</strong> {{ bv.statement }}</p>
<p class="muted">{{ r.task }} · target <code>{{ r.target }}</code> · {{ fmt(r.rows) }} test rows · primary metric {{ r.primary_metric }}</p>

<h2>Metrics (95% bootstrap interval)</h2>
<table><tr><th class="l">metric</th><th>model</th>{% if r.baseline %}<th>baseline</th>{% endif %}{% if r.champion %}<th>champion{% if r.champion.version is not none %} v{{ r.champion.version }}{% endif %}</th>{% endif %}</tr>
{% for name, m in r.metrics.items() %}<tr><td class="l">{{ name }}{% if name == r.primary_metric %} (primary){% endif %}</td><td>{{ cell(m) }}</td>{% if r.baseline %}<td>{{ cell(r.baseline.metrics.get(name)) }}</td>{% endif %}{% if r.champion %}<td>{{ cell(r.champion.metrics.get(name)) }}</td>{% endif %}</tr>
{% endfor %}</table>

<h2>Business value</h2>
<p class="muted">Unit: {{ bv.unit }}</p>
<table><tr><th class="l"></th><th>per 1,000 decisions</th></tr>
{% for who, v in bv.per_1000.items() if v is not none %}<tr><td class="l">{{ who }}</td><td>{{ fmt(v) }}</td></tr>{% endfor %}</table>
{% for label, c in [("model vs baseline", bv.vs_baseline), ("model vs champion", bv.vs_champion)] if c %}
<p>{{ label }}: {{ fmt(c.difference_per_1000) }} per 1,000 (95% CI {{ fmt(c.ci_low) }} to {{ fmt(c.ci_high) }}), paired test p = {{ fmt(c.p_value, 3) }} — <span class="{{ 'ok' if c.significant else 'bad' }}">{{ 'significant' if c.significant else 'not significant' }}</span></p>
{% endfor %}

{% if r.confusion_matrix %}<h2>Confusion matrix</h2>
<div class="plots">{% if confusion_svg %}{{ confusion_svg }}{% endif %}
<table><tr><th class="l">truth \\ predicted</th>{% for l in r.confusion_matrix.labels %}<th>{{ l }}</th>{% endfor %}</tr>
{% for row in r.confusion_matrix.matrix %}<tr><th class="l">{{ r.confusion_matrix.labels[loop.index0] }}</th>{% for v in row %}<td>{{ fmt(v) }}</td>{% endfor %}</tr>{% endfor %}</table></div>{% endif %}

{% if curve_svgs %}<h2>ROC, precision-recall and calibration</h2><div class="plots">{% for s in curve_svgs %}{{ s }}{% endfor %}</div>{% endif %}

<h2>Feature importance (drop in {{ rob.metric }} when the feature is shuffled)</h2>
{% if importance_svg %}<div class="plots">{{ importance_svg }}</div>{% else %}<p class="muted">No features.</p>{% endif %}

<h2>Slices (worst first)</h2>
{% if slices %}<table><tr><th class="l">column</th><th class="l">slice</th><th>rows</th>{% for n in slice_metrics %}<th>{{ n }}</th>{% endfor %}</tr>
{% for s in slices %}<tr><td class="l">{{ s.column }}</td><td class="l">{{ s.slice }}</td><td>{{ fmt(s.rows) }}</td>{% for n in slice_metrics %}<td>{{ fmt(s.metrics.get(n)) }}</td>{% endfor %}</tr>
{% endfor %}</table>{% if slices_svg %}<div class="plots">{{ slices_svg }}</div>{% endif %}{% if more_slices %}<p class="muted">{{ more_slices }} more slices in the JSON report.</p>{% endif %}
{% else %}<p class="muted">No slice columns chosen.</p>{% endif %}

<h2>Fairness</h2>
{% if fair %}<p>Sensitive column <code>{{ fair.column }}</code>{% if fair.positive is not none %}, selection of <code>{{ fair.positive }}</code>{% endif %}:
demographic parity difference <strong>{{ fmt(fair.demographic_parity_difference) }}</strong>{% if fair.equalized_odds_difference is not none %}, equalized odds difference <strong>{{ fmt(fair.equalized_odds_difference) }}</strong>{% endif %}.</p>
<table><tr><th class="l">group</th><th>rows</th><th>selection rate</th>{% for n in fair_metrics %}<th>{{ n }}</th>{% endfor %}</tr>
{% for g in fair.groups %}<tr><td class="l">{{ g.group }}</td><td>{{ fmt(g.rows) }}</td><td>{{ fmt(g.selection_rate) }}</td>{% for n in fair_metrics %}<td>{{ fmt(g.metrics.get(n)) }}</td>{% endfor %}</tr>{% endfor %}</table>
{% if fairness_svg %}<div class="plots">{{ fairness_svg }}</div>{% endif %}
{% else %}<p class="muted">No sensitive column chosen.</p>{% endif %}

<h2>Robustness ({{ rob.metric }}; base {{ fmt(rob.base) }}; drop = how much worse)</h2>
<table><tr><th class="l">perturbation</th><th>{{ rob.metric }}</th><th>drop</th></tr>
<tr><td class="l">Gaussian noise (0.1 std) on numeric features</td><td>{{ fmt(rob.noise.value) }}</td><td>{{ fmt(rob.noise.drop) }}</td></tr>
<tr><td class="l">10% of cells missing</td><td>{{ fmt(rob.missing.value) }}</td><td>{{ fmt(rob.missing.drop) }}{% if rob.missing.error %} <span class="bad">{{ rob.missing.error }}</span>{% endif %}</td></tr>
{% for f, s in shuffled %}<tr><td class="l">shuffled: {{ f }}</td><td>{{ fmt(s.value) }}</td><td>{{ fmt(s.drop) }}</td></tr>{% endfor %}
<tr><th class="l">largest drop</th><th></th><th>{{ fmt(rob.max_drop) }}</th></tr></table>
{% if rob.invariances %}<h3>Invariances</h3><table><tr><th class="l">name</th><th class="l">column</th><th>predictions changed</th><th>result</th></tr>
{% for i in rob.invariances %}<tr><td class="l">{{ i.name }}</td><td class="l">{{ i.column }}</td><td>{{ fmt(i.changed_fraction) }}</td><td class="{{ 'ok' if i.passed else 'bad' }}">{{ 'passed' if i.passed else 'FAILED' }}</td></tr>{% endfor %}</table>{% endif %}

<h2>Leakage</h2>
<p>{% if leak.train_checked is defined and not leak.train_checked %}Training rows not given: shared rows not checked.{% else %}Test rows also in the training set: <strong class="{{ 'bad' if leak.shared_rows else 'ok' }}">{{ fmt(leak.shared_rows) }}</strong> ({{ fmt(leak.shared_fraction) }}).{% endif %}
Suspect features (alone predict the target almost perfectly): {% if leak.suspects %}<strong class="bad">{{ leak.suspects | join(", ") }}</strong>{% else %}<span class="ok">none</span>{% endif %}.</p>
<table><tr><th class="l">feature</th><th>single-feature score</th></tr>
{% for s in leak.single_feature[:10] %}<tr><td class="l">{{ s.feature }}</td><td>{{ fmt(s.score) }}</td></tr>{% endfor %}</table>
</body></html>
"""

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)
_PAGE = _ENV.from_string(_TEMPLATE)


def render_html(report: dict, title: str) -> str:
    """The report as a self-contained HTML page (inline SVG plots, no external assets)."""
    curves = report.get("curves") or {}
    curve_svgs = []
    if curves.get("roc"):
        curve_svgs.append(
            _line_plot(
                curves["roc"]["fpr"],
                curves["roc"]["tpr"],
                "false positive rate",
                "true positive rate",
                "ROC",
                diagonal=True,
            )
        )
    if curves.get("pr"):
        curve_svgs.append(
            _line_plot(
                curves["pr"]["recall"],
                curves["pr"]["precision"],
                "recall",
                "precision",
                "Precision-recall",
            )
        )
    if curves.get("calibration"):
        c = curves["calibration"]
        curve_svgs.append(
            _line_plot(
                c["mean_predicted"],
                c["fraction_positive"],
                "mean predicted probability",
                "fraction positive",
                "Calibration",
                diagonal=True,
            )
        )
    cm = report.get("confusion_matrix")
    confusion_svg = (
        _confusion_plot(cm["labels"], cm["matrix"])
        if cm and 0 < len(cm["labels"]) <= MAX_CONFUSION_PLOT
        else None
    )
    imp = (report.get("feature_importance") or [])[:MAX_BARS]
    rob = report.get("robustness") or {}
    importance_svg = (
        _bars(
            [i["feature"] for i in imp],
            [i["importance"] or 0.0 for i in imp],
            f"drop in {rob.get('metric', '')}",
            "Permutation importance",
        )
        if imp
        else None
    )
    fair = report.get("fairness")
    fairness_svg = None
    if fair and fair.get("groups"):
        groups = fair["groups"][:MAX_BARS]
        fairness_svg = _bars(
            [g["group"] for g in groups],
            [g["selection_rate"] or 0.0 for g in groups],
            "selection rate",
            f"Selection rate by {fair['column']}"[:60],
            color="#1f5fa8",
        )
    slices = report.get("slices") or []
    primary = report.get("primary_metric", "")
    ranked = [s for s in slices if (s.get("metrics") or {}).get(primary) is not None][:MAX_BARS]
    slices_svg = (
        _bars(
            [f"{s['column']} = {s['slice']}" for s in ranked],
            [s["metrics"][primary] for s in ranked],
            primary,
            "Slices, worst first",
            color="#1f5fa8",
            zoom=True,
        )
        if ranked
        else None
    )
    slice_metrics = list(slices[0]["metrics"]) if slices else []
    fair_metrics = list(fair["groups"][0]["metrics"]) if fair and fair.get("groups") else []
    shuffled = sorted(
        (rob.get("shuffled") or {}).items(),
        key=lambda kv: -(kv[1].get("drop") or 0.0),
    )
    return _PAGE.render(
        title=title,
        r=report,
        bv=report.get("business_value") or {},
        rob=rob,
        leak=report.get("leakage") or {},
        fair=fair,
        fair_metrics=fair_metrics,
        slices=slices[:MAX_SLICE_ROWS],
        more_slices=max(0, len(slices) - MAX_SLICE_ROWS),
        slice_metrics=slice_metrics,
        shuffled=shuffled,
        curve_svgs=curve_svgs,
        confusion_svg=confusion_svg,
        importance_svg=importance_svg,
        fairness_svg=fairness_svg,
        slices_svg=slices_svg,
        fmt=fmt,
        cell=_metric_cell,
    )
