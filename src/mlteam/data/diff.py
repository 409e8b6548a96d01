"""What changed between two versions of a dataset: schema, row count, distributions.

Schema changes (columns added, removed, or of another type), row counts, and per common column
the shift of its distribution: PSI and a two-sample test (KS for numbers, chi-square for
categories) from `monitoring.drift`, over samples of up to SAMPLE rows of each version
(DuckDB reservoir samples with a fixed seed, so the same two versions give the same diff),
beside the change of the profile's null fraction and mean.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from mlteam.core.artifacts import ArtifactStore
from mlteam.core.models import User
from mlteam.data import service
from mlteam.data.models import DatasetVersion
from mlteam.data.profile import jsonable, q
from mlteam.data.scan import connect_version
from mlteam.monitoring import drift

SAMPLE = 50_000


def _sample(store: ArtifactStore, version: DatasetVersion, columns: list[str]) -> Any:
    with connect_version(store, version) as con:
        cols = ", ".join(q(c) for c in columns)
        return con.execute(
            f"SELECT {cols} FROM v USING SAMPLE reservoir({SAMPLE} ROWS) REPEATABLE (42)"
        ).df()


def _by_name(profile: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in (profile or {}).get("columns", [])}


def diff_versions(
    session: Session,
    actor: User,
    store: ArtifactStore,
    slug: str,
    dataset: str,
    a: int | str,
    b: int | str,
) -> dict[str, Any]:
    """Compare version `a` (from) with version `b` (to) of a dataset."""
    va = service.get_version(session, actor, slug, dataset, a)
    vb = service.get_version(session, actor, slug, dataset, b)
    ta = {c["name"]: c["type"] for c in va.schema}
    tb = {c["name"]: c["type"] for c in vb.schema}
    common = [c for c in ta if c in tb]
    changed = [{"name": c, "from": ta[c], "to": tb[c]} for c in common if ta[c] != tb[c]]
    same_type = [c for c in common if ta[c] == tb[c]]
    shift: dict[str, Any] = {}
    if same_type and va.content_hash != vb.content_hash:
        shift = drift.feature_drift(
            _sample(store, va, same_type), _sample(store, vb, same_type), same_type
        )
    pa_, pb = _by_name(va.profile), _by_name(vb.profile)
    columns = []
    for c in same_type:
        entry: dict[str, Any] = {"name": c, "type": ta[c]}
        if c in pa_ and c in pb:
            entry["null_fraction"] = {
                "from": pa_[c].get("null_fraction"),
                "to": pb[c].get("null_fraction"),
            }
            if pa_[c].get("mean") is not None and pb[c].get("mean") is not None:
                entry["mean"] = {"from": pa_[c]["mean"], "to": pb[c]["mean"]}
        if va.content_hash == vb.content_hash:
            entry.update(psi=0.0, drifted=False)
        elif c in shift:
            entry.update(shift[c])
        columns.append(entry)
    return jsonable(
        {
            "dataset": dataset,
            "from": va.n,
            "to": vb.n,
            "identical": va.content_hash == vb.content_hash,
            "rows": {
                "from": va.row_count,
                "to": vb.row_count,
                "change": vb.row_count - va.row_count,
            },
            "schema": {
                "added": [{"name": c, "type": tb[c]} for c in tb if c not in ta],
                "removed": [{"name": c, "type": ta[c]} for c in ta if c not in tb],
                "type_changed": changed,
            },
            "columns": columns,
            "sample_rows": SAMPLE,
        }
    )
