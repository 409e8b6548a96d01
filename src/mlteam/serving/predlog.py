"""The prediction log: append-only Parquet segments, written off the request path.

Requests append rows to an in-memory buffer; a background thread writes the buffer as one
Parquet segment per deployment every `flush_seconds`, sooner once FLUSH_ROWS rows wait, and on
stop. A SIGKILL loses at most the rows of the last interval. Segments are written atomically
(temp name, rename), so a reader never sees half a segment.

What a reader gets (`read`, `SCHEMA`) has every row's inputs as a JSON object. A segment stores
the inputs of every all-numbers request more cheaply (`STORED`): each row's values as float64
bytes in one binary column written uncompressed, the column names once per row in a
dictionary-encoded column; `read` rebuilds the JSON. Writing JSON cost the writer ~8 ms of CPU
for a 1,000-row request (float formatting, compressing the repeated keys), more than answering
it, and ~15 µs a single row (a fifth of what the request itself then cost); the bytes cost
~0.4 ms per 1,000 rows of 30 columns and next to nothing a row (values as a zstd-compressed
Parquet list of doubles: ~1.5 ms). Doubles' low bits hardly compress: ~6% more disk. Segments
written before hold a list of doubles there, or JSON, and read back the same.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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
DICTIONARY_COLUMNS = ["deployment_id", "model_version_id", "mode", "input_names"]
# the segments' schema: SCHEMA with the ids as their 16 bytes, and "inputs" null where the two
# columns below hold them instead
STORED = pa.schema(
    [
        ("prediction_id", pa.binary(16)),
        *list(SCHEMA)[1:],
        ("input_names", pa.string()),  # JSON list of the column names
        ("input_values", pa.binary()),  # the row's values in that order, float64 little-endian
    ]
)


# zstd everywhere but on random ids and the values' bytes (see the module's docstring)
COMPRESSION = {name: "zstd" for name in STORED.names}
COMPRESSION |= {"prediction_id": "none", "input_values": "none"}
# min/max of random ids and of raw value bytes would let no reader skip anything
STATISTICS = [name for name in STORED.names if name not in ("prediction_id", "input_values")]


def _number_json(values: list[Any]) -> list[str] | None:
    """JSON texts of plain numbers and booleans in one `json.dumps` call, or None."""
    if not all(type(v) in (int, float, bool) for v in values):
        return None
    text = json.dumps(values)
    return text[1:-1].split(", ") if values else []


def _inputs_json(names: list[str], matrix: np.ndarray) -> pa.Array:
    """One JSON object per row of a float matrix, `{"name": value, ...}`, built column-wise."""
    parts: list[Any] = []
    for j, name in enumerate(names):
        parts.append(pa.scalar(("{" if j == 0 else ", ") + json.dumps(name) + ": "))
        column = matrix[:, j]
        if np.isfinite(column).all():
            parts.append(pa.array(column).cast(pa.string()))  # shortest round-trip digits
        else:  # NaN / Infinity as Python's json writes them (Arrow would write nan)
            parts.append(pa.array([json.dumps(v) for v in column.tolist()], pa.string()))
    parts.append(pa.scalar("}"))
    return pc.binary_join_element_wise(*parts, "")


class PredictionIds(Sequence[str]):
    """`n` random 128-bit prediction ids (32 hex digits each, as uuid4().hex) from one read of
    the OS's random source. They are kept as bytes, which the log stores as they are; the text
    is made only when a caller reads the ids (the native and Open Inference answers, not
    MLflow's, which has no place for them): 1,000 ids as text cost a request ~0.1 ms."""

    __slots__ = ("raw", "_text")

    def __init__(self, n: int) -> None:
        self.raw = os.urandom(16 * n)
        self._text: list[str] | None = None

    def _texts(self) -> list[str]:
        if self._text is None:
            digits = self.raw.hex()
            self._text = [digits[i : i + 32] for i in range(0, len(digits), 32)]
        return self._text

    def __len__(self) -> int:
        return len(self.raw) // 16

    def __getitem__(self, i):  # type: ignore[no-untyped-def]  # Sequence's int and slice
        return self._texts()[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self._texts())


def _hex_ids(ids: pa.Array) -> pa.Array:
    """16-byte ids as their 32 hex digits, for the whole column at once."""
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    n = len(ids)
    raw = np.frombuffer(ids.buffers()[1], np.uint8, count=16 * n, offset=16 * ids.offset)
    digits = np.frombuffer(b"0123456789abcdef", np.uint8)
    text = np.empty(32 * n, np.uint8)
    text[0::2], text[1::2] = digits[raw >> 4], digits[raw & 15]
    offsets = np.arange(0, 32 * n + 1, 32, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text)]
    )


@dataclass
class Batch:
    """One request's answers from one version, kept as given until the log writes them.

    The JSON of inputs and outputs is built by the writer thread, not the request.
    """

    ts: datetime
    deployment_id: str
    revision: int
    model_version_id: str
    mode: str
    ids: PredictionIds
    columns: dict[str, Any]  # lists or 1-D arrays; `.matrix` when checked all-numbers
    outputs: list[Any]
    latency_ms: float

    def stored_matrix(self) -> np.ndarray | None:
        """The inputs as a float matrix when they are kept as values, not JSON."""
        matrix = getattr(self.columns, "matrix", None)
        if matrix is not None and self.columns and len(matrix) == len(self.ids):
            return matrix
        return None

    def inputs_json(self) -> list[str]:
        names = list(self.columns)
        matrix = getattr(self.columns, "matrix", None)
        if matrix is not None:
            rows: Any = matrix.tolist()
        else:
            values = [v.tolist() if isinstance(v, np.ndarray) else v for v in self.columns.values()]
            rows = zip(*values, strict=True) if names else [() for _ in self.ids]
        return [json.dumps(dict(zip(names, row, strict=True))) for row in rows]

    def outputs_json(self) -> list[str]:
        fast = _number_json(self.outputs)
        return fast if fast is not None else [json.dumps(out) for out in self.outputs]


class _Columns:
    """The log's columns for one segment, gathered batch by batch with a few list appends
    each; the arrays are built once per segment (`table`). The values a batch shares (time,
    deployment, revision, version, mode, latency, column names) are kept once per batch and
    repeated by Arrow then."""

    def __init__(self) -> None:
        self.ids: list[bytes] = []  # 16 bytes an id, per batch
        self.rows = 0
        self.counts: list[int] = []
        self.ts: list[int] = []  # ms since the epoch, per batch
        self.deployment: list[str] = []
        self.revision: list[int] = []
        self.version: list[str] = []
        self.mode: list[str] = []
        self.latency: list[float] = []
        self.names: list[str | None] = []  # per batch: JSON list of the columns, or None
        self.matrices: list[np.ndarray] = []  # the values of the batches kept as values
        self.texts: list[list[str] | None] = []  # per batch: inputs as JSON, or None
        self.outputs: list[list[Any]] = []  # per batch, as answered

    def _shared(
        self, n: int, ts: datetime, deployment: str, revision: int, version: str, mode: str
    ) -> None:
        self.counts.append(n)
        self.ts.append(int(ts.timestamp() * 1000))
        self.deployment.append(deployment)
        self.revision.append(revision)
        self.version.append(version)
        self.mode.append(mode)

    def add(self, b: Batch) -> None:
        n = len(b.ids)
        self._shared(n, b.ts, b.deployment_id, b.revision, b.model_version_id, b.mode)
        self.latency.append(b.latency_ms / max(1, n))
        self.ids.append(b.ids.raw)
        self.rows += n
        matrix = b.stored_matrix()
        if matrix is None:
            self.texts.append(b.inputs_json())
            self.names.append(None)
        else:
            self.texts.append(None)
            self.names.append(_names_json(tuple(b.columns)))
            self.matrices.append(matrix)
        self.outputs.append(b.outputs)

    def add_row(self, row: dict[str, Any]) -> None:
        self._shared(
            1,
            row["ts"],
            row["deployment_id"],
            row["revision"],
            row["model_version_id"],
            row["mode"],
        )
        self.latency.append(row["latency_ms"])
        self.ids.append(bytes.fromhex(row["prediction_id"]))
        self.rows += 1
        self.texts.append([row["inputs"]])
        self.names.append(None)
        self.outputs.append([json.loads(row["output"])])

    def __len__(self) -> int:
        return self.rows

    def _inputs(self) -> pa.Array:
        if all(t is None for t in self.texts):
            return pa.nulls(self.rows, pa.string())
        rows: list[str | None] = []
        for n, texts in zip(self.counts, self.texts, strict=True):
            rows.extend([None] * n if texts is None else texts)
        return pa.array(rows, pa.string())

    def _values(self) -> pa.Array:
        """The binary column of values: each row's float64 bytes, null where JSON is kept."""
        n = self.rows
        if not self.matrices:
            return pa.nulls(n, pa.binary())
        kept = np.array([t is None for t in self.texts])
        valid = np.repeat(kept, self.counts)
        widths = np.array([m.shape[1] * 8 for m in self.matrices], dtype=np.int64)
        sizes = np.zeros(n, dtype=np.int64)
        sizes[valid] = np.repeat(widths, np.asarray(self.counts)[kept])
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        flat = np.concatenate(
            [np.ascontiguousarray(m, dtype="<f8").reshape(-1) for m in self.matrices]
        )
        bitmap = None if valid.all() else pa.array(valid).buffers()[1]
        return pa.Array.from_buffers(
            pa.large_binary(),
            n,
            [bitmap, pa.py_buffer(offsets), pa.py_buffer(flat)],
            null_count=n - int(valid.sum()),
        ).cast(pa.binary())

    def _outputs(self) -> pa.Array:
        """Each row's answer as JSON text. Runs of batches answered with Python ints (a
        classifier's labels) are turned into text by Arrow in one call; the other runs by
        `json` (NaN, strings, ...)."""
        parts: list[pa.Array] = []
        run: list[Any] = []
        run_ints = True
        for outs in self.outputs:
            ints = set(map(type, outs)) == {int}
            if run and ints != run_ints:
                parts.append(_outputs_text(run, run_ints))
                run = []
            run.extend(outs)
            run_ints = ints
        if run:
            parts.append(_outputs_text(run, run_ints))
        return pa.concat_arrays(parts) if parts else pa.array([], pa.string())

    def table(self) -> pa.Table:
        batch = pa.array(np.repeat(np.arange(len(self.counts)), self.counts))

        def rep(values: list[Any], kind: pa.DataType) -> pa.Array:
            return pa.array(values, kind).take(batch)

        return pa.table(
            [
                pa.Array.from_buffers(
                    pa.binary(16), self.rows, [None, pa.py_buffer(b"".join(self.ids))]
                ),
                rep(self.ts, pa.int64()).cast(SCHEMA.field("ts").type),
                rep(self.deployment, pa.string()),
                rep(self.revision, pa.int32()),
                rep(self.version, pa.string()),
                rep(self.mode, pa.string()),
                self._inputs(),
                self._outputs(),
                rep(self.latency, pa.float64()),
                rep(self.names, pa.string()),
                self._values(),
            ],
            schema=STORED,
        )


def _outputs_text(outputs: list[Any], ints: bool) -> pa.Array:
    if ints:
        try:
            return pa.array(outputs, pa.int64()).cast(pa.string())
        except (OverflowError, pa.ArrowInvalid):  # past int64: json writes any int
            pass
    texts = _number_json(outputs)
    return pa.array(texts if texts is not None else [json.dumps(o) for o in outputs], pa.string())


@functools.lru_cache(maxsize=256)
def _names_json(names: tuple[str, ...]) -> str:
    return json.dumps(list(names))


def _readable(table: pa.Table) -> pa.Table:
    """A segment as readers see it (SCHEMA): inputs stored as values become JSON again."""
    ids = table.column("prediction_id")
    if pa.types.is_fixed_size_binary(ids.type):  # not in segments written before
        table = table.set_column(0, "prediction_id", _hex_ids(ids))
    if "input_values" not in table.column_names:  # a segment written before values were kept
        return table.select(SCHEMA.names).cast(SCHEMA)
    inputs = table.column("inputs").to_pylist()
    names = table.column("input_names").to_pylist()
    groups: dict[str, list[int]] = defaultdict(list)
    for i, (text, cols) in enumerate(zip(inputs, names, strict=True)):
        if text is None and cols is not None:
            groups[cols].append(i)
    values = table.column("input_values")
    for cols, rows in groups.items():
        columns = json.loads(cols)
        picked = values.take(pa.array(rows)).combine_chunks()
        if pa.types.is_binary(picked.type):
            flat = np.frombuffer(b"".join(picked.to_pylist()), dtype="<f8")
        else:  # a segment of before: a list of doubles
            flat = picked.flatten().to_numpy(zero_copy_only=False)
        matrix = flat.reshape(len(rows), len(columns))
        for i, text in zip(rows, _inputs_json(columns, matrix).to_pylist(), strict=True):
            inputs[i] = text
    table = table.set_column(
        table.column_names.index("inputs"), "inputs", pa.array(inputs, pa.string())
    )
    return table.select(SCHEMA.names).cast(SCHEMA)


# Written as soon as this many rows wait, whatever the interval: under 1,000-row requests a
# second's worth was tens of MB of arrays, fresh memory from the OS every second (measured:
# 1.5 ms of system CPU per request at a 1 s interval, 0.4 ms at a quarter of that).
FLUSH_ROWS = 32_768


class PredictionLog:
    def __init__(self, store: ArtifactStore, flush_seconds: float = 1.0) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        self._rows: dict[str, list[dict[str, Any] | Batch]] = defaultdict(list)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._full = threading.Event()  # FLUSH_ROWS rows are waiting: write them now
        self._pending = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="mlteam-predlog", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._full.set()
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
            self._pending += len(batch.ids)
            full = self._pending >= FLUSH_ROWS
        if full:
            self._full.set()

    def _loop(self) -> None:
        while True:
            self._full.wait(self.flush_seconds)
            self._full.clear()
            if self._stop.is_set():
                return
            try:
                self.flush()
            except Exception:  # keep the rows for the next try rather than lose the thread
                time.sleep(self.flush_seconds)

    def flush(self) -> int:
        with self._flush_lock:
            with self._lock:
                pending, self._rows = self._rows, defaultdict(list)
                self._pending = 0
            written = 0
            for deployment_id, items in pending.items():
                columns = _Columns()
                for item in items:
                    if isinstance(item, Batch):
                        columns.add(item)
                    else:
                        columns.add_row(item)
                if not len(columns):
                    continue
                table = columns.table()
                try:
                    self._write(deployment_id, table)
                except Exception:
                    self.append(_readable(table).to_pylist())  # kept for the next flush
                    raise
                written += len(columns)
            return written

    def _write(self, deployment_id: str, table: pa.Table) -> None:
        stamp = f"{int(time.time() * 1000):015d}-{uuid.uuid4().hex[:8]}"
        key = f"predictions/{deployment_id}/seg-{stamp}.parquet"
        # Straight into a file (it appears whole or not at all): a second of 1,000-row
        # requests is tens of MB, which an in-memory copy first would double.
        with self.store.local_writer(key) as path:
            pq.write_table(
                table,
                path,
                compression=COMPRESSION,
                # dictionary encoding only where values repeat (it cost more than it saved)
                use_dictionary=DICTIONARY_COLUMNS,
                write_statistics=STATISTICS,
            )

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
                tables.append(_readable(pq.read_table(fh)))
        return pa.concat_tables(tables) if tables else SCHEMA.empty_table()
