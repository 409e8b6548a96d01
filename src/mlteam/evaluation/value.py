"""Business value: what each decision is worth, per 1,000 decisions, and which model to ship.

Per row, the value is the value matrix's cell (truth, prediction), or −cost × |error| for a
regression cost; with no value matrix, a correct decision is worth 1 (classification) and a
regression decision −|error|, and the unit says so. Model, baseline and champion are judged on
the same rows, so the comparison is paired: per-row differences, a paired bootstrap interval
(the suite's resamples) and a paired t-test.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import stats

from mlteam.core.errors import InvalidInput
from mlteam.evaluation.metrics import PRIMARY, Predictions, label_key

ALPHA = 0.05
COST_KEY = "cost_per_unit_error"


def parse_value_matrix(
    task: str, labels: list[Any], value_matrix: dict | None
) -> tuple[np.ndarray | float | None, str]:
    """(a K×K value array, or a cost per unit of error, or None; the unit). Labels are matched
    as str(label); a key that is no class, or a matrix naming none of the classes, is refused."""
    field = {"field": "value_matrix"}
    if value_matrix is None or value_matrix == {}:
        if task == "classification":
            return (
                None,
                f"correct decisions (no value matrix set: accuracy per decision stands in for {PRIMARY[task]})",
            )
        return (
            None,
            f"negative absolute error (no value matrix set: -|error| per decision stands in for {PRIMARY[task]})",
        )
    if not isinstance(value_matrix, dict):
        raise InvalidInput("value_matrix must be an object", field)
    if COST_KEY in value_matrix:
        extra = set(value_matrix) - {COST_KEY}
        if extra:
            raise InvalidInput(
                f"value_matrix: {COST_KEY} goes alone, not with {sorted(extra)}", field
            )
        cost = value_matrix[COST_KEY]
        if isinstance(cost, bool) or not isinstance(cost, int | float) or not math.isfinite(cost):
            raise InvalidInput(f"value_matrix: {COST_KEY} must be a number", field)
        if task == "classification":
            return float(cost), "value (-cost_per_unit_error per wrong decision)"
        return float(cost), "value (-cost_per_unit_error x |error|)"
    if task == "regression":
        raise InvalidInput(
            f'value_matrix: a regression model needs {{"{COST_KEY}": x}}, not a matrix of labels',
            field,
        )
    names = [str(v) for v in labels]
    # "1" and "1.0" both name the label 1.0 (or 1)
    index = {n: i for i, v in enumerate(labels) for n in (str(v), label_key(v))}
    unknown = sorted(
        {t for t in value_matrix if t not in index}
        | {
            p
            for row in value_matrix.values()
            if isinstance(row, dict)
            for p in row
            if p not in index
        }
    )
    if unknown:
        raise InvalidInput(
            f"value_matrix labels {unknown} are not classes of the model (classes: {names})",
            {**field, "unknown": unknown, "classes": names},
        )
    V = np.zeros((len(names), len(names)))
    for truth, row in value_matrix.items():
        if not isinstance(row, dict):
            raise InvalidInput(f"value_matrix[{truth!r}] must map predictions to values", field)
        for pred, v in row.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise InvalidInput(f"value_matrix[{truth!r}][{pred!r}] must be a number", field)
            V[index[truth], index[pred]] = float(v)
    return V, "value (from the project's value matrix)"


def row_values(p: Predictions, spec: np.ndarray | float | None) -> np.ndarray:
    """What each decision on the test rows is worth."""
    if p.task == "regression":
        err = np.abs(p.pred - p.y)
        return -(float(spec) if spec is not None else 1.0) * err
    correct = (p.pred == p.y) & (p.y >= 0)
    if spec is None:
        return correct.astype(np.float64)
    if isinstance(spec, float):
        return np.where(correct, 0.0, -spec)
    ok = (p.y >= 0) & (p.pred >= 0)
    out = np.zeros(len(p.y))
    out[ok] = spec[p.y[ok], p.pred[ok]]
    return out


def paired(diff: np.ndarray, boot: np.ndarray) -> dict[str, Any]:
    """Per-row differences (model − other): mean per 1,000, bootstrap CI, paired t-test."""
    mean = float(diff.mean()) * 1000.0
    if np.allclose(diff, diff[0]):
        # no spread: either no difference at all, or the same difference on every row
        p_value = 1.0 if diff[0] == 0 else 0.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p_value = float(stats.ttest_1samp(diff, 0.0).pvalue)
        if not math.isfinite(p_value):
            p_value = 1.0
    b = boot[~np.isnan(boot)]
    # no resamples (bootstrap=0): no interval rather than a made-up one
    lo, hi = (
        (float(np.percentile(b, 2.5)), float(np.percentile(b, 97.5))) if b.size else (None, None)
    )
    return {
        "difference_per_1000": mean,
        "ci_low": lo,
        "ci_high": hi,
        "p_value": p_value,
        "significant": bool(p_value < ALPHA),
    }


def _fmt(x: float) -> str:
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:,.1f}"
    return f"{x:.3g}"


def _cmp(c: dict[str, Any], what: str) -> str:
    d = c["difference_per_1000"]
    word = "more" if d >= 0 else "less"
    ci = f"95% CI {_fmt(c['ci_low'])} to {_fmt(c['ci_high'])}, " if c["ci_low"] is not None else ""
    return f"{_fmt(abs(d))} per 1,000 decisions {word} than {what} ({ci}p={c['p_value']:.3g})"


def decide(
    unit: str,
    per_1000: dict[str, float | None],
    vs_baseline: dict[str, Any] | None,
    vs_champion: dict[str, Any] | None,
    champion_vs_baseline: dict[str, Any] | None,
    champion_version: int | None,
) -> dict[str, Any]:
    """Ship the model only when it is significantly better than each comparator it has; else
    keep the champion (when there is one and the baseline does not beat it), else the baseline."""
    champ = (
        f"the champion (version {champion_version})"
        if champion_version is not None
        else "the champion"
    )

    def better(c: dict[str, Any] | None) -> bool:
        return c is None or (c["significant"] and c["difference_per_1000"] > 0)

    beats_base, beats_champ = better(vs_baseline), better(vs_champion)
    champ_below_base = (
        champion_vs_baseline is not None
        and champion_vs_baseline["significant"]
        and champion_vs_baseline["difference_per_1000"] < 0
    )
    if beats_base and (beats_champ or champ_below_base):
        ship = "model"
        parts = [_cmp(c, w) for c, w in ((vs_baseline, "the baseline"), (vs_champion, champ)) if c]
        statement = (
            "Ship the model: it is worth " + " and ".join(parts) + "."
            if parts
            else f"Ship the model: it is worth {_fmt(per_1000['model'] or 0.0)} per 1,000 decisions (nothing to compare it with)."
        )
        if not beats_champ:
            statement += (
                f" {champ[0].upper() + champ[1:]} is significantly worse than the baseline."
            )
    elif vs_champion is not None and not champ_below_base:
        ship = "champion"
        if not beats_champ:
            why = f"the model is not significantly better than it: {_cmp(vs_champion, champ)}"
        else:
            why = f"the model is not significantly better than the baseline: {_cmp(vs_baseline, 'the baseline')}"
        statement = f"Keep {champ}: {why}."
    else:
        ship = "baseline"
        statement = (
            "Ship the baseline: it is the better product. The model is not significantly better "
            f"than the baseline: {_cmp(vs_baseline, 'the baseline')}; a simple rule is cheaper to run and to explain."
            if vs_baseline is not None
            else "Ship the baseline."
        )
    return {"ship": ship, "statement": statement + f" Unit: {unit}."}
