"""The prediction log: append-only Parquet segments, written off the request path.

Requests append rows to an in-memory buffer; a background thread writes the buffer as one
Parquet segment per deployment at most every `flush_seconds` (and on stop). A SIGKILL loses at
most the rows of the last interval. Segments are written atomically (temp name, rename), so a
reader never sees half a segment.
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mlteam.core.artifacts import ArtifactStore

SCHEMA = pa.schema(
    [
        ("prediction_id", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("deployment_id", pa.string()),
        ("revision", pa.int32()),
        ("model_version_id", pa.string()),
        ("mode", pa.string()),
        ("inputs", pa.string()),
        ("output", pa.string()),
        ("latency_ms", pa.float64()),
    ]
)


@dataclass
class Batch:
    """One request's answers from one version, kept as given until the log writes them.

    The per-row JSON of inputs and outputs is built by the writer thread, not the request.
    """

    ts: datetime
    deployment_id: str
    revision: int
    model_version_id: str
    mode: str
    ids: list[str]
    columns: dict[str, list[Any]]
    outputs: list[Any]
    latency_ms: float

    def rows(self) -> list[dict[str, Any]]:
        names = list(self.columns)
        values = list(zip(*self.columns.values(), strict=True)) if names else []
        per_row = self.latency_ms / max(1, len(self.ids))
        return [
            {
                "prediction_id": pid,
                "ts": self.ts,
                "deployment_id": self.deployment_id,
                "revision": self.revision,
                "model_version_id": self.model_version_id,
                "mode": self.mode,
                "inputs": json.dumps(dict(zip(names, row, strict=True))),
                "output": json.dumps(out),
                "latency_ms": per_row,
            }
            for pid, row, out in zip(self.ids, values, self.outputs, strict=True)
        ]


class PredictionLog:
    def __init__(self, store: ArtifactStore, flush_seconds: float = 1.0) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        self._rows: dict[str, list[dict[str, Any] | Batch]] = defaultdict(list)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="mlteam-predlog", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()

    def append(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            for row in rows:
                self._rows[row["deployment_id"]].append(row)

    def append_batch(self, batch: Batch) -> None:
        """Keep one request's answers (cheap: the rows are built when written)."""
        with self._lock:
            self._rows[batch.deployment_id].append(batch)

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
            except Exception:  # keep the rows for the next try rather than lose the thread
                time.sleep(self.flush_seconds)

    def flush(self) -> int:
        with self._flush_lock:
            with self._lock:
                pending, self._rows = self._rows, defaultdict(list)
            written = 0
            for deployment_id, items in pending.items():
                rows: list[dict[str, Any]] = []
                for item in items:
                    rows.extend(item.rows() if isinstance(item, Batch) else [item])
                if not rows:
                    continue
                try:
                    self._write(deployment_id, rows)
                except Exception:
                    self.append(rows)
                    raise
                written += len(rows)
            return written

    def _write(self, deployment_id: str, rows: list[dict[str, Any]]) -> None:
        table = pa.Table.from_pylist(rows, schema=SCHEMA)
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        stamp = f"{int(time.time() * 1000):015d}-{uuid.uuid4().hex[:8]}"
        key = f"predictions/{deployment_id}/seg-{stamp}.parquet"
        self.store.put_bytes(buf.getvalue(), key)

    def read(self, deployment_id: str) -> pa.Table:
        """Every logged row of a deployment (flushing this process's buffer first)."""
        self.flush()
        segments = [
            e["path"]
            for e in self.store.list(f"predictions/{deployment_id}")
            if e["path"].endswith(".parquet")
        ]
        tables = []
        for seg in segments:
            with self.store.open(f"predictions/{deployment_id}/{seg}") as fh:
                tables.append(pq.read_table(fh, schema=SCHEMA))
        return pa.concat_tables(tables) if tables else SCHEMA.empty_table()
