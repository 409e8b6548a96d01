"""DuckDB over stored dataset versions, read in place through the artifact store.

A version's Parquet file is registered as an Arrow dataset (local folder or any fsspec store),
so DuckDB scans it lazily, pushing column choices and filters down, never loading it whole.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import duckdb
import pyarrow.dataset as pads

from mlteam.core.artifacts import ArtifactStore
from mlteam.data.ingest import connect
from mlteam.data.models import DatasetVersion


def arrow_dataset(store: ArtifactStore, version: DatasetVersion) -> pads.Dataset:
    return pads.dataset(store.path(version.key), format="parquet", filesystem=store.fs)


@contextlib.contextmanager
def connect_version(
    store: ArtifactStore, version: DatasetVersion, name: str = "v"
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection on which the version is the view `name`."""
    con = connect()
    try:
        con.register(name, arrow_dataset(store, version))
        yield con
    finally:
        con.close()
