"""SDK calls: Datasets and their versions."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from mlteam.client.base import Base, chunks
from mlteam.core.errors import MlteamError, from_payload

if TYPE_CHECKING:
    import pyarrow as pa


class DataAPI(Base):
    def upload(
        self,
        slug: str,
        dataset: str,
        file: str | os.PathLike[str] | BinaryIO,
        format: str | None = None,
        types: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Upload a CSV or Parquet file as a new dataset version (streamed).

        `types` pins CSV column types (`{"id": "BIGINT"}`); other columns are sniffed.
        """
        if isinstance(file, str | os.PathLike):
            path = Path(file)
            with path.open("rb") as fh:
                return self.upload(slug, dataset, fh, format or format_of(path.name), types)
        params = {"format": format} if format else {}
        if types:
            params["types"] = json.dumps(types)
        name = getattr(file, "name", None)
        if isinstance(name, str):
            params["filename"] = Path(name).name
        return self._call(
            "POST",
            f"/projects/{slug}/datasets/{dataset}/versions",
            content=chunks(file),
            params=params,
        )

    def datasets(self, slug: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/projects/{slug}/datasets")

    def dataset_versions(self, slug: str, dataset: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/projects/{slug}/datasets/{dataset}/versions")

    def dataset_version(
        self, slug: str, dataset: str, version: int | str = "latest"
    ) -> dict[str, Any]:
        return self._call("GET", f"/projects/{slug}/datasets/{dataset}/versions/{version}")

    def download(
        self,
        slug: str,
        dataset: str,
        version: int | str,
        dest: str | os.PathLike[str],
        format: str = "parquet",
        split: str | None = None,
        columns: list[str] | None = None,
    ) -> Path:
        """Write a version (or one split of it, or some columns) to `dest` as parquet or csv."""
        with open(dest, "wb") as fh:
            for chunk in self._rows(slug, dataset, version, format, split, columns):
                fh.write(chunk)
        return Path(dest)

    def _rows(
        self,
        slug: str,
        dataset: str,
        version: int | str,
        format: str,
        split: str | None,
        columns: list[str] | None,
    ) -> Iterator[bytes]:
        url = f"/projects/{slug}/datasets/{dataset}/versions/{version}/download"
        params: dict[str, Any] = {"format": format}
        if split:
            params["split"] = split
        if columns:
            params["columns"] = ",".join(columns)
        with self._http.stream("GET", url, params=params) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise from_payload(resp.status_code, resp.json())
            yield from resp.iter_bytes()

    def read_arrow(
        self,
        slug: str,
        dataset: str,
        version: int | str = "latest",
        split: str | None = None,
        columns: list[str] | None = None,
    ) -> pa.Table:
        """A version's rows as a pyarrow Table, streamed as Arrow record batches."""
        import pyarrow.ipc as paipc

        stream = _ChunkReader(self._rows(slug, dataset, version, "arrow", split, columns))
        with paipc.open_stream(stream) as reader:
            return reader.read_all()

    def read_pandas(
        self,
        slug: str,
        dataset: str,
        version: int | str = "latest",
        split: str | None = None,
        columns: list[str] | None = None,
    ) -> Any:
        """A version's rows as a pandas DataFrame."""
        return self.read_arrow(slug, dataset, version, split, columns).to_pandas()

    def read_polars(
        self,
        slug: str,
        dataset: str,
        version: int | str = "latest",
        split: str | None = None,
        columns: list[str] | None = None,
    ) -> Any:
        """A version's rows as a polars DataFrame (needs `pip install polars`)."""
        try:
            import polars
        except ImportError as err:
            raise MlteamError(
                "read_polars needs polars: pip install polars (or use read_arrow/read_pandas)"
            ) from err
        return polars.from_arrow(self.read_arrow(slug, dataset, version, split, columns))

    def profile(self, slug: str, dataset: str, version: int | str = "latest") -> dict[str, Any]:
        """Per-column profile of a version."""
        return self._call("GET", f"/projects/{slug}/datasets/{dataset}/versions/{version}/profile")

    def diff(
        self, slug: str, dataset: str, from_version: int | str, to_version: int | str = "latest"
    ) -> dict[str, Any]:
        """Schema changes, row counts and distribution shift between two versions."""
        return self._call(
            "GET",
            f"/projects/{slug}/datasets/{dataset}/diff",
            params={"from": from_version, "to": to_version},
        )

    def split(
        self,
        slug: str,
        dataset: str,
        version: int | str,
        column: str,
        method: str = "hash",
        fractions: dict[str, float] | None = None,
        cutoffs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Fix a deterministic train/validation/test split on a version."""
        body: dict[str, Any] = {"method": method, "column": column}
        if fractions is not None:
            body["fractions"] = fractions
        if cutoffs is not None:
            body["cutoffs"] = cutoffs
        return self._call(
            "POST", f"/projects/{slug}/datasets/{dataset}/versions/{version}/split", json=body
        )

    def query(
        self, slug: str, sql: str, limit: int = 1000, timeout_s: float = 30.0
    ) -> dict[str, Any]:
        """Read-only SQL over the project's datasets (`<dataset>`, `<dataset>_v<n>`)."""
        return self._call(
            "POST",
            f"/projects/{slug}/query",
            json={"sql": sql, "limit": limit, "timeout_s": timeout_s},
        )


class _ChunkReader(io.RawIOBase):
    """A file-like view of an iterator of byte chunks (what pyarrow's stream reader wants)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._buf = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def format_of(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    if lower.endswith(".csv"):
        return "csv"
    return None
