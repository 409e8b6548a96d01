"""Data: DuckDB ingest and its faults, profiles, diffs, splits, streamed reads, read-only SQL."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlteam import Client
from mlteam.core.errors import Conflict, InvalidInput, MlteamError, UserCodeError
from tests.conftest import uid


def _csv(rows: int = 200, seed: int = 0, shift: float = 0.0) -> bytes:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": np.arange(rows),
            "x": np.round(rng.normal(shift, 1, rows), 4),
            "color": rng.choice(["red", "green", "blue"], rows),
            "day": pd.date_range("2024-01-01", periods=rows, freq="D").strftime("%Y-%m-%d"),
        }
    )
    frame.loc[::10, "x"] = np.nan
    return frame.to_csv(index=False).encode()


@pytest.fixture
def ds(admin: Client, project: str) -> tuple[Client, str]:
    admin.upload(project, "d", io.BytesIO(_csv()), format="csv")
    return admin, project


# -- ingest and its faults ------------------------------------------------------------------


def test_csv_ingest_sniffs_types_and_pins_them(admin: Client, project: str) -> None:
    v = admin.upload(project, "d", io.BytesIO(_csv()), format="csv")
    types = {c["name"]: c["type"] for c in v["columns"]}
    assert types == {"id": "int64", "x": "double", "color": "string", "day": "date32[day]"}
    v2 = admin.upload(
        project, "d", io.BytesIO(_csv()), format="csv", types={"id": "VARCHAR", "day": "varchar"}
    )
    assert v2["n"] == 2 and {c["name"]: c["type"] for c in v2["columns"]}["day"] == "string"
    # the same file again is the same version (the Parquet DuckDB writes is deterministic)
    assert admin.upload(project, "d", io.BytesIO(_csv()), format="csv")["n"] == 1


def test_text_after_the_sniffed_rows_is_read_as_text(admin: Client, project: str) -> None:
    body = b"a,b\n" + b"".join(b"%d,%d\n" % (i, i) for i in range(30_000)) + b"n/a,1\n"
    v = admin.upload(project, "late", io.BytesIO(body), format="csv")
    assert v["row_count"] == 30_001
    assert {c["name"]: c["type"] for c in v["columns"]}["a"] == "string"


@pytest.mark.parametrize(
    ("body", "types", "says", "details"),
    [
        pytest.param(
            b"a,b\n1,x\n2,y\nz,w\n",
            {"a": "INTEGER"},
            ("line 4", "'a'", "'z'", "INTEGER"),
            {"line": 4, "column": "a"},
            id="against-pinned-type",
        ),
        pytest.param(
            b"a,b,c\n" + b"1,2,3\n" * 50_000 + b"1,2\n",
            None,
            ("line 50002", "expected 3 fields, got 2"),
            {"line": 50002},
            id="ragged-late",
        ),
        pytest.param(
            b"a,b\n1,x\n", {"nope": "INTEGER"}, ("nope",), {"field": "types"}, id="unknown-column"
        ),
        pytest.param(
            b"a,b\n1,x\n", {"a": "INT; DROP"}, ("unknown type",), {"field": "types"}, id="bad-type"
        ),
        pytest.param(
            b"a,b\n1,ok\n2,caf\xe9\n", None, ("UTF-8", "'b'", "line 3"), {"line": 3}, id="latin1"
        ),
    ],
)
def test_malformed_csv_names_line_and_column_and_publishes_nothing(
    admin: Client, project: str, body, types, says, details
) -> None:
    with pytest.raises(InvalidInput) as exc:
        admin.upload(project, "bad", io.BytesIO(body), format="csv", types=types)
    for text in says:
        assert text in exc.value.message, (text, exc.value.message)
    assert details.items() <= exc.value.details.items()
    assert all(d["name"] != "bad" for d in admin.datasets(project))


# -- profile, diff ----------------------------------------------------------------------------


def test_profile_per_column(ds) -> None:
    c, slug = ds
    prof = c.profile(slug, "d", 1)
    assert prof["row_count"] == 200
    cols = {col["name"]: col for col in prof["columns"]}
    x = cols["x"]
    assert x["nulls"] == 20 and x["type"] == "DOUBLE"
    for key in ("min", "max", "mean", "std"):
        assert isinstance(x[key], float)
    assert set(x["quantiles"]) == {"q25", "q50", "q75"}
    assert sum(x["histogram"]["counts"]) == 180
    assert len(x["histogram"]["edges"]) == len(x["histogram"]["counts"]) + 1
    color = cols["color"]
    assert color["distinct"] == 3 and not color["distinct_approx"]
    assert sum(t["count"] for t in color["top_values"]) == 200
    assert cols["day"]["min"] == "2024-01-01"


def _expected_histogram(x: np.ndarray) -> list[int]:
    """The profile's rule: 20 equal-width bins over [min, max], the maximum in the last."""
    lo, hi = x.min(), x.max()
    idx = np.minimum(19, np.floor((x - lo) / ((hi - lo) / 20))).astype(int)
    return np.bincount(idx, minlength=20).tolist()


@pytest.mark.parametrize("budget", ["512MB", "16MB"])
def test_profile_figures_are_exact(tmp_path: Path, monkeypatch, budget: str) -> None:
    """Mean, std, quartiles (`quantile_cont`) and histograms against numpy, on data built to
    take every path: a bin too full to read (an outlier squeezes 250k values into the first of
    1,000 bins), bins of one repeated value, a column of few values, of one value, all nulls,
    an infinity, strings; and the same figures from a relation that is not a Parquet file.
    Within the ingest's memory budget, number columns are profiled in memory; under a small
    one, streamed by DuckDB: the figures are the same."""
    from mlteam.data import profile
    from mlteam.data.ingest import connect

    monkeypatch.setenv("MLTEAM_INGEST_MEMORY_LIMIT", budget)

    rng = np.random.default_rng(7)
    n = 250_000
    squeezed = rng.random(n)
    squeezed[0] = 1e12
    squeezed[rng.random(n) < 0.01] = np.nan
    zeros = np.where(rng.random(n) < 0.6, 0.0, rng.normal(10, 1, n))
    frame = pd.DataFrame(
        {
            "squeezed": squeezed,
            "zeros": zeros,
            "few": rng.integers(0, 100, n),
            "b": rng.integers(0, 150_000, n),  # many values; named like a SQL alias (was a bug)
            "same": np.full(n, 2.5),
            "empty": np.full(n, np.nan),
            "inf": np.where(np.arange(n) == 5, np.inf, rng.normal(0, 1, n)),
            "word": rng.choice(["a", "bb", "ccc"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    path = tmp_path / "p.parquet"
    frame.to_parquet(path)
    assert (profile.in_memory_max(1) > n) == (budget == "512MB")
    prof = profile.profile_parquet(str(path))
    con = connect()
    con.register("frame_view", frame)
    generic = profile.profile_relation(con, "frame_view")
    con.close()
    for p in (prof, generic):
        assert p["row_count"] == n
        cols = {c["name"]: c for c in p["columns"]}
        for name in ("squeezed", "zeros", "few", "b"):
            x = frame[name].dropna().to_numpy(dtype=float)
            c = cols[name]
            assert c["nulls"] == n - len(x) and c["min"] == x.min() and c["max"] == x.max()
            assert c["mean"] == pytest.approx(x.mean(), rel=1e-9)
            assert c["std"] == pytest.approx(x.std(ddof=1), rel=1e-9)
            want = np.quantile(x, [0.25, 0.5, 0.75])  # linear: what quantile_cont computes
            assert [c["quantiles"][k] for k in ("q25", "q50", "q75")] == pytest.approx(want)
            assert c["quantiles_exact"], name
            assert c["histogram"]["counts"] == _expected_histogram(x), name
        few = cols["few"]
        assert few["distinct"] == 100 and not few["distinct_approx"]
        top = frame["few"].value_counts()
        assert few["top_values"][0] == {"value": int(top.index[0]), "count": int(top.iloc[0])}
        assert cols["b"]["distinct"] == frame["b"].nunique()  # exact: from its top-k GROUP BY
        assert cols["b"]["top_values"][0]["count"] == frame["b"].value_counts().iloc[0]
        same = cols["same"]
        assert (same["mean"], same["std"], same["distinct"]) == (2.5, 0.0, 1)
        assert same["quantiles"] == {"q25": 2.5, "q50": 2.5, "q75": 2.5}
        assert same["histogram"]["counts"] == [n]
        empty = cols["empty"]
        assert empty["nulls"] == n and empty["mean"] is None and "histogram" not in empty
        inf = cols["inf"]  # no finite bounds: no histogram; mean is infinite, so not JSON
        assert inf["max"] is None and inf["mean"] is None and "histogram" not in inf
        finite = frame["inf"][np.isfinite(frame["inf"])]
        assert inf["quantiles"]["q50"] == pytest.approx(np.quantile(finite, 0.5), abs=0.05)
        word = cols["word"]
        assert word["distinct"] == 3 and word["min"] == "a" and word["max"] == "ccc"
        assert [t["value"] for t in word["top_values"]] == ["a", "bb", "ccc"]
        assert cols["squeezed"]["distinct_approx"] and cols["squeezed"]["top_values"] is None


def test_files_profiled_at_once_get_each_their_own_profile(tmp_path: Path) -> None:
    """A server profiles the versions of concurrent uploads at the same time, in one DuckDB:
    each file's profile is the one it gets alone."""
    from concurrent.futures import ThreadPoolExecutor

    from mlteam.data import profile

    rng = np.random.default_rng(11)
    paths = []
    for i in range(4):
        n = 20_000 + 5_000 * i
        frame = pd.DataFrame(
            {
                "x": rng.normal(i, 1 + i, n),
                "k": rng.integers(0, 50 * (i + 1), n),
                "s": rng.choice([f"v{j}" for j in range(3 + i)], n),
            }
        )
        paths.append(str(tmp_path / f"f{i}.parquet"))
        frame.to_parquet(paths[-1])
    alone = [profile.profile_parquet(p) for p in paths]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(profile.profile_parquet, paths * 3))
    assert together == alone * 3
    assert [p["row_count"] for p in alone] == [20_000, 25_000, 30_000, 35_000]


def test_a_float_column_with_nan_is_profiled_over_its_numbers(tmp_path: Path) -> None:
    """NaN is counted apart (`nans`); min, max, mean, std, quartiles and the histogram are
    those of the numbers, as pandas' describe gives them (DuckDB orders NaN above every
    number, so a plain max would be NaN and the mean NaN, which JSON cannot hold)."""
    from mlteam.data import ingest, profile

    x = np.random.default_rng(3).normal(5, 2, 5000).round(6)
    is_nan = np.arange(5000) % 50 == 0
    lines = [
        f"{'nan' if bad else repr(float(v))},{'nan' if bad else 2.5}"
        for v, bad in zip(x, is_nan, strict=True)
    ]
    (tmp_path / "f.csv").write_text("x,same\n" + "\n".join(lines) + "\n")
    out = tmp_path / "f.parquet"
    ingest.csv_to_parquet(str(tmp_path / "f.csv"), str(out), {"x": "DOUBLE", "same": "DOUBLE"})
    cols = {c["name"]: c for c in profile.profile_parquet(str(out))["columns"]}
    c, numbers = cols["x"], x[~is_nan]
    assert (c["nulls"], c["nans"]) == (0, 100)
    assert (c["min"], c["max"]) == (numbers.min(), numbers.max())
    assert c["mean"] == pytest.approx(numbers.mean(), rel=1e-9)
    assert c["std"] == pytest.approx(numbers.std(ddof=1), rel=1e-9)
    want = np.quantile(numbers, [0.25, 0.5, 0.75])
    assert [c["quantiles"][k] for k in ("q25", "q50", "q75")] == pytest.approx(want)
    assert c["histogram"]["counts"] == _expected_histogram(numbers)
    same = cols["same"]
    assert (same["nans"], same["mean"], same["max"]) == (100, 2.5, 2.5)
    assert same["histogram"]["counts"] == [4900]


def test_diff_schema_rows_and_shift(ds) -> None:
    c, slug = ds
    frame = pd.read_csv(io.BytesIO(_csv(300, seed=1, shift=3.0))).drop(columns=["color"])
    frame["extra"] = 1
    c.upload(slug, "d", io.BytesIO(frame.to_csv(index=False).encode()), format="csv")
    d = c.diff(slug, "d", 1, 2)
    assert d["rows"] == {"from": 200, "to": 300, "change": 100}
    assert [x["name"] for x in d["schema"]["added"]] == ["extra"]
    assert [x["name"] for x in d["schema"]["removed"]] == ["color"]
    cols = {x["name"]: x for x in d["columns"]}
    assert cols["x"]["drifted"] and cols["x"]["psi"] > 1
    assert not cols["id"].get("drifted") or cols["id"]["type"]
    assert c.diff(slug, "d", 1, 1)["identical"]
    with pytest.raises(MlteamError):
        c.diff(slug, "d", 1, 9)


# -- splits -----------------------------------------------------------------------------------


def _bucket(key: object) -> int:
    return int(hashlib.md5(str(key).encode()).hexdigest()[:8], 16) % 10_000


def test_hash_split_is_stable_recorded_and_readable(ds) -> None:
    c, slug = ds
    v = c.split(slug, "d", 1, "id", fractions={"train": 0.6, "validation": 0.2, "test": 0.2})
    counts = v["split"]["counts"]
    assert sum(counts.values()) == 200 and counts["train"] > 80
    parts = {p: c.read_pandas(slug, "d", 1, split=p) for p in ("train", "validation", "test")}
    assert {p: len(f) for p, f in parts.items()} == counts
    # the same rule on any machine: md5 of the key's text, first 8 hex digits, mod 10,000
    assert all(_bucket(i) < 6000 for i in parts["train"]["id"])
    assert all(6000 <= _bucket(i) < 8000 for i in parts["validation"]["id"])
    # the same key lands in the same part in a later version
    c.upload(slug, "d", io.BytesIO(_csv(400, seed=5)), format="csv")
    c.split(slug, "d", 2, "id", fractions={"train": 0.6, "validation": 0.2, "test": 0.2})
    later = c.read_pandas(slug, "d", 2, split="test")
    assert set(parts["test"]["id"]) <= set(later["id"])
    # fixed once set: the same again is fine, another is a conflict
    c.split(slug, "d", 1, "id", fractions={"train": 0.6, "validation": 0.2, "test": 0.2})
    with pytest.raises(Conflict):
        c.split(slug, "d", 1, "id")
    assert c.dataset_version(slug, "d", 1)["split"]["method"] == "hash"


def test_time_split_and_bad_split_requests(ds) -> None:
    c, slug = ds
    v = c.split(
        slug,
        "d",
        1,
        "day",
        method="time",
        cutoffs={"validation": "2024-05-01", "test": "2024-06-01"},
    )
    assert v["split"]["counts"] == {"train": 121, "validation": 31, "test": 48}
    test = c.read_arrow(slug, "d", 1, split="test", columns=["day"])
    assert test.column_names == ["day"] and test.num_rows == 48
    for kwargs, field in [
        ({"column": "nope"}, "column"),
        ({"column": "x"}, "column"),  # has empty values
        ({"column": "id", "fractions": {"train": 0.5}}, "fractions"),
        ({"column": "id", "fractions": {"dev": 1.0}}, "fractions"),
        ({"column": "day", "method": "time", "cutoffs": {"test": "soon"}}, "cutoffs.test"),
    ]:
        with pytest.raises(InvalidInput) as exc:
            c.split(slug, "d", 1, **kwargs)
        assert exc.value.details["field"] == field, exc.value
    with pytest.raises(InvalidInput):
        c.read_arrow(slug, "d", 1, columns=["nope"])


# -- access -----------------------------------------------------------------------------------


def test_read_arrow_pandas_and_downloads(ds, tmp_path: Path) -> None:
    c, slug = ds
    table = c.read_arrow(slug, "d", 1)
    assert table.num_rows == 200 and table.column_names == ["id", "x", "color", "day"]
    frame = c.read_pandas(slug, "d", "latest", columns=["id", "color"])
    assert list(frame.columns) == ["id", "color"] and len(frame) == 200
    try:
        import polars  # noqa: F401

        assert c.read_polars(slug, "d", 1).height == 200
    except ImportError:
        with pytest.raises(MlteamError, match="pip install polars"):
            c.read_polars(slug, "d", 1)
    out = c.download(slug, "d", 1, tmp_path / "d.csv", format="csv")
    back = pd.read_csv(out)
    assert len(back) == 200 and list(back.columns) == ["id", "x", "color", "day"]
    part = c.download(slug, "d", 1, tmp_path / "p.parquet", columns=["x"])
    assert pq.read_table(part).column_names == ["x"]


def test_sql_over_versions_read_only_limited(ds) -> None:
    c, slug = ds
    c.upload(slug, "d", io.BytesIO(_csv(50, seed=3)), format="csv")
    r = c.query(slug, 'SELECT count(*) AS n FROM d UNION ALL SELECT count(*) FROM "d_v1"')
    assert [row[0] for row in r["rows"]] == [50, 200]
    r = c.query(slug, "SELECT id, x FROM d_v1 ORDER BY id", limit=7)
    assert r["row_count"] == 7 and r["truncated"] and r["rows"][0][0] == 0
    assert r["rows"][0][1] is None  # NaN-free JSON: the null x of row 0
    for sql in (
        "SELECT * FROM read_csv('/etc/passwd')",
        "COPY d TO '/tmp/leak.csv'",
        "SET enable_external_access=true",
        "INSTALL httpfs",
    ):
        with pytest.raises(UserCodeError) as exc:
            c.query(slug, sql)
        assert exc.value.details["field"] == "sql"
    with pytest.raises(UserCodeError, match="time limit"):
        c.query(slug, "SELECT count(*) FROM range(1000000000000) a", timeout_s=0.5)
    with pytest.raises(UserCodeError, match="your SQL failed"):
        c.query(slug, "SELECT nope FROM d")
    with pytest.raises(InvalidInput):
        c.query(slug, "SELECT 1", limit=0)


def test_data_calls_check_roles(ds, new_user, client_for) -> None:
    c, slug = ds
    email, token = new_user()
    c.add_member(slug, email, "viewer")
    viewer = client_for(token)
    assert viewer.query(slug, "SELECT count(*) FROM d")["rows"] == [[200]]
    assert viewer.profile(slug, "d", 1)["row_count"] == 200
    with pytest.raises(MlteamError) as exc:
        viewer.split(slug, "d", 1, "id")
    assert exc.value.code == "forbidden"


# -- memory: a big upload to a real server -------------------------------------------------


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_big_upload_streams_in_bounded_server_memory(server_factory, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    block = pd.DataFrame(rng.normal(size=(20_000, 12)), columns=[f"f{i}" for i in range(12)])
    block["cat"] = rng.choice(["a", "b", "c"], len(block))
    head, body = block.to_csv(index=False).split("\n", 1)
    path = tmp_path / "big.csv"
    with path.open("w") as fh:
        fh.write(head + "\n")
        while fh.tell() < 350_000_000:
            fh.write(body)
    size = path.stat().st_size
    # A tight ingest budget (the default, 512MB, is sized for speed on a server): what the
    # upload adds to the server must follow the setting, not the file.
    srv = server_factory()
    srv.env["MLTEAM_INGEST_MEMORY_LIMIT"] = "128MB"
    srv.start()
    token = srv.cli("users", "create", f"{uid('root')}@example.com", "--admin").stdout.split()[-1]
    c = Client(srv.url, token, timeout=120)
    slug = uid("mem")
    c.create_project(slug)
    # The server process holds ~300 MB of imported libraries before any upload; the bound is
    # on what the upload adds to that.
    base = (
        int(
            next(
                line.split()[1]
                for line in Path(f"/proc/{srv.proc.pid}/status").read_text().splitlines()
                if line.startswith("VmRSS:")
            )
        )
        * 1024
    )
    peak = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _peak_rss(srv.proc.pid))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        v = c.upload(slug, "big", path)
    finally:
        done.set()
        watcher.join()
    peak[0] = max(peak[0], _peak_rss(srv.proc.pid))
    assert v["row_count"] > 1_000_000
    grew = peak[0] - base
    assert grew < 0.6 * size, (
        f"server RSS grew by {grew / 1e6:.0f} MB (from {base / 1e6:.0f} MB) "
        f"for a {size / 1e6:.0f} MB upload"
    )


# -- CLI --------------------------------------------------------------------------------------


def test_cli_profile_diff_split_query(ds, monkeypatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mlteam.cli import data as cli_data
    from mlteam.cli.main import app

    c, slug = ds
    monkeypatch.setattr(cli_data, "client", lambda: c)
    runner = CliRunner()

    def cli(*args: str, code: int = 0) -> str:
        res = runner.invoke(app, ["data", *args])
        assert res.exit_code == code, res.output
        return res.output

    f = tmp_path / "v2.csv"
    f.write_bytes(_csv(300, seed=2, shift=2.0))
    assert "d v2" in cli("upload", slug, "d", str(f), "--type", "id=VARCHAR")
    assert "line 4" in cli(
        "upload", slug, "bad", str(_write(tmp_path, b"a\n1\n2\nx\n")), "--type", "a=INTEGER", code=1
    )
    assert '"row_count": 300' in cli("profile", slug, "d", "2", "--json")
    assert "color" in cli("profile", slug, "d", "1")
    out = cli("diff", slug, "d", "1", "2", "--json")
    assert '"type_changed"' in out and '"id"' in out
    assert "train=" in cli(
        "split", slug, "d", "1", "--column", "id", "--fractions", "0.5,0.25,0.25"
    )
    assert "test=" in cli(
        "split", slug, "d", "2", "--column", "day", "--method", "time", "--test-from", "2024-06-01"
    )
    assert "[[200]]" in cli("query", slug, "SELECT count(*) AS n FROM d_v1", "--json").replace(
        '{"n": 200}', "[[200]]"
    )
    out = tmp_path / "train.csv"
    cli("download", slug, "d", "1", "--out", str(out), "--format", "csv", "--split", "train")
    assert 60 < len(pd.read_csv(out)) < 140
    assert "only this project's dataset" in cli(
        "query", slug, "SELECT * FROM read_csv('/etc/passwd')", code=1
    )


def _write(tmp_path: Path, body: bytes) -> Path:
    path = tmp_path / f"{uid('f')}.csv"
    path.write_bytes(body)
    return path
