"""SDK calls: Datasets and their versions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

from mlteam.client.base import Base, chunks
from mlteam.core.errors import from_payload


class DataAPI(Base):
    def upload(
        self,
        slug: str,
        dataset: str,
        file: str | os.PathLike[str] | BinaryIO,
        format: str | None = None,
    ) -> dict[str, Any]:
        """Upload a CSV or Parquet file as a new dataset version (streamed)."""
        if isinstance(file, str | os.PathLike):
            path = Path(file)
            with path.open("rb") as fh:
                return self.upload(slug, dataset, fh, format or format_of(path.name))
        params = {"format": format} if format else {}
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
    ) -> Path:
        url = f"/projects/{slug}/datasets/{dataset}/versions/{version}/download"
        with self._http.stream("GET", url, params={"format": format}) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise from_payload(resp.status_code, resp.json())
            with open(dest, "wb") as fh:
                for chunk in resp.iter_bytes():
                    fh.write(chunk)
        return Path(dest)


def format_of(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    if lower.endswith(".csv"):
        return "csv"
    return None
