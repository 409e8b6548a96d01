"""Sources, pipelines and data checks, on SQLite and PostgreSQL alike.

Most tests drive the app in-process through the SDK; the CLI and the SIGKILL of a running
pipeline's worker use a real server process.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from mlteam import Client
from mlteam.core.errors import Conflict, Forbidden, InvalidInput, MlteamError, NotFound
from mlteam.data import scheduler
from mlteam.data.pipeline_models import Pipeline, Source
from tests.conftest import PG_URL, uid

PG = PG_URL or "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _csv(path: Path, text_: str) -> Path:
    path.write_text(text_)
    return path


@pytest.fixture
def raw(admin: Client, project: str, tmp_path: Path) -> str:
    """A dataset `raw` (v1) in the project."""
    admin.upload(
        project,
        "raw",
        _csv(
            tmp_path / "raw.csv",
            "id,amount,cat,email,ts\n"
            "1,10,a,x@a.com,2026-01-01T00:00:00\n"
            "2,20,b,y@b.com,2026-01-02T00:00:00\n"
            "3,-5,c,bad-address,2026-01-03T00:00:00\n",
        ),
    )
    return project


def _failed(c: Client, job: dict) -> dict:
    with pytest.raises(MlteamError, match="failed"):
        c.wait(job["id"], timeout=60, poll=0.1)
    return c.job(job["id"])


def test_pipeline_runs_steps_with_params_and_publishes_with_lineage(admin: Client, raw: str):
    admin.create_source(raw, "raw-src", "dataset", {"dataset": "raw", "version": "latest"})
    definition = {
        "name": "clean",
        "inputs": {"r": "source:raw-src", "again": "dataset:raw@1"},
        "steps": [
            {"name": "positive", "sql": "SELECT * FROM r WHERE amount > $min_amount"},
            {
                "name": "joined",
                "sql": "SELECT p.id, p.amount * $factor AS amount2, a.cat FROM positive p "
                "JOIN again a USING (id) WHERE a.cat <> $skip ORDER BY p.id",
            },
        ],
        "params": {"min_amount": 0, "factor": 2, "skip": "zzz"},
        "output": "clean-data",
        "checks": [{"type": "not_null", "columns": ["id"]}, {"type": "unique", "columns": ["id"]}],
    }
    p = admin.create_pipeline(raw, definition)
    assert p["output"] == "clean-data" and p["inputs"]["r"] == {"kind": "source", "name": "raw-src"}
    assert p["steps"][0]["timeout_seconds"] == 3600
    job = admin.wait(admin.run_pipeline(raw, "clean")["id"], timeout=60, poll=0.1)
    report = job["result"]
    assert report["status"] == "published" and report["rows"] == 2
    assert all(c["passed"] for c in report["checks"])
    raw_v1 = admin.dataset_version(raw, "raw", 1)
    v = admin.dataset_version(raw, "clean-data")
    assert v["row_count"] == 2 and [c["name"] for c in v["columns"]] == ["id", "amount2", "cat"]
    assert v["source"] == {
        "kind": "pipeline",
        "pipeline": "clean",
        "run": job["id"],
        "params": {"min_amount": 0, "factor": 2, "skip": "zzz"},
    }
    assert v["parents"] == [raw_v1["id"], raw_v1["id"]]
    # Run parameters override the defaults, as prepared parameters (a quote is just data).
    queued2 = admin.run_pipeline(raw, "clean", {"min_amount": -100, "skip": "b' OR '1'='1"})
    queued3 = admin.run_pipeline(raw, "clean")  # the same output again: the same version
    job2, job3 = (
        admin.wait(queued2["id"], timeout=60, poll=0.1),
        admin.wait(queued3["id"], timeout=60, poll=0.1),
    )
    assert job2["result"]["rows"] == 3 and job2["result"]["version"]["n"] == 2
    assert job3["result"]["version"] == {**job["result"]["version"], "created": False}
    runs = admin.pipeline_runs(raw, "clean")
    assert [r["job"]["id"] for r in runs] == [job3["id"], job2["id"], job["id"]]
    assert "step joined: 2 rows" in admin.job_log(job["id"])
    with pytest.raises(InvalidInput, match="unknown parameters"):
        admin.run_pipeline(raw, "clean", {"nope": 1})
    with pytest.raises(Conflict):
        admin.create_pipeline(raw, definition)
    definition["steps"][1]["sql"] = "SELECT id FROM positive"
    assert admin.create_pipeline(raw, definition, replace=True)["steps"][1]["sql"].endswith(
        "positive"
    )


def test_checks_report_which_failed_by_how_many_with_examples(admin: Client, raw: str):
    checks = [
        {"type": "not_null", "columns": ["id", "amount"]},
        {"type": "unique", "columns": ["cat"]},
        {"type": "unique", "columns": ["id", "cat"], "name": "id+cat"},
        {"type": "range", "column": "amount", "min": 0, "max": 100},
        {"type": "allowed_values", "column": "cat", "values": ["a", "b", "c"]},
        {"type": "regex", "column": "email", "pattern": r"[^@]+@[^@]+\.[a-z]+"},
        {"type": "row_count", "min": 1, "max": 10},
        {"type": "freshness", "column": "ts", "max_age_hours": 24 * 365 * 100},
        {"type": "sql", "predicate": "length(cat) = 1", "name": "short cat"},
    ]
    spec = {
        "name": "checked",
        "inputs": {"r": "raw"},
        "steps": [{"name": "s", "sql": "SELECT * FROM r WHERE amount > $min"}],
        "params": {"min": 0},
        "checks": checks,
    }
    admin.create_pipeline(raw, spec)
    ok = admin.wait(admin.run_pipeline(raw, "checked")["id"], timeout=60, poll=0.1)["result"]
    assert ok["status"] == "published" and all(c["passed"] for c in ok["checks"]), ok
    # what the output's profile proves needs no query; the rest is queried (cat's values
    # are all distinct here, so its profile lists no top values to hold against the list)
    by = {c["name"]: c["by"] for c in ok["checks"]}
    assert [name for name, b in by.items() if b == "query"] == [
        "allowed_values(cat)",
        "regex(email)",
        "freshness(ts)",
        "short cat",
    ]

    # Let the bad row in and tighten the rest: each check says what failed.
    checks[1] = {"type": "unique", "columns": ["cat"]}
    checks[6] = {"type": "row_count", "min": 5}
    checks[7] = {"type": "freshness", "column": "ts", "max_age_hours": 1}
    checks[8] = {"type": "sql", "predicate": "cat IN ('a', 'b')", "name": "short cat"}
    checks.append({"type": "allowed_values", "column": "cat", "values": ["a"], "name": "only a"})
    admin.create_pipeline(raw, {**spec, "checks": checks}, replace=True)
    dup = {
        "name": "dups",
        "inputs": {"r": "raw"},
        "steps": [{"sql": "SELECT 1 AS k, 'x' AS j FROM r UNION ALL SELECT 2, 'y'"}],
        "checks": [{"type": "unique", "columns": ["k", "j"]}, {"type": "not_null", "column": "k"}],
    }
    admin.create_pipeline(raw, dup)
    queued = admin.run_pipeline(raw, "checked", {"min": -10}), admin.run_pipeline(raw, "dups")
    job = _failed(admin, queued[0])
    report = {c["name"]: c for c in job["result"]["checks"]}
    assert job["result"]["status"] == "checks_failed" and job["result"]["version"] is None
    assert report["not_null(id,amount)"]["passed"]
    assert report["range(amount)"]["failing_rows"] == 1
    assert report["range(amount)"]["examples"][0]["amount"] == -5
    assert report["regex(email)"]["failing_rows"] == 1
    assert report["regex(email)"]["examples"][0]["email"] == "bad-address"
    assert not report["row_count"]["passed"] and "3 rows" in report["row_count"]["message"]
    assert not report["freshness(ts)"]["passed"]
    assert report["short cat"]["failing_rows"] == 1
    assert report["only a"]["failing_rows"] == 2
    assert report["unique(cat)"]["passed"] and report["id+cat"]["passed"]
    assert "range(amount)" in job["error"] and "nothing published" in job["error"]
    assert len(admin.dataset_versions(raw, "checked")) == 1  # the failing run published nothing

    job = _failed(admin, queued[1])
    unique = job["result"]["checks"][0]
    assert unique["failing_rows"] == 3 and unique["examples"] == [{"k": 1, "j": "x", "n": 3}]
    with pytest.raises(NotFound):
        admin.dataset_version(raw, "dups")


def test_a_check_proven_by_the_profile_has_the_verdict_of_its_query(tmp_path: Path):
    """The profile answers a check only where it proves it: never a verdict the query would
    not give (NULLs grouped by unique, NaN beyond any range, values past the top ten, integers
    past a double's precision)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlteam.data.checks import check_definitions, run_checks
    from mlteam.data.profile import profile_parquet
    from mlteam.data.sandbox import Sandbox

    n = 1000
    table = pa.table(
        {
            "two_nulls": [None, None, *range(n - 2)],  # distinct but for its two NULLs
            "one_null": [None, *range(n - 1)],
            "f": [float("nan"), *(i / 100 for i in range(n - 1))],  # a NaN past any bound
            "s": [f"v{i % 12}" for i in range(n)],  # 12 values: two past the top ten
            "big": [2**60 + i for i in range(n)],
            "k": [i % 7 for i in range(n)],
        }
    )
    path = tmp_path / "out.parquet"
    pq.write_table(table, path, compression="zstd")  # as a pipeline writes its output
    checks = check_definitions(
        [
            {"type": "unique", "columns": ["two_nulls"]},
            {"type": "unique", "columns": ["one_null"]},
            {"type": "unique", "columns": ["k", "one_null"], "name": "pair"},
            {"type": "unique", "columns": ["k"]},
            {"type": "not_null", "columns": ["k", "s"]},
            {"type": "not_null", "columns": ["one_null"]},
            {"type": "range", "column": "f", "min": 0, "max": 100},
            {"type": "range", "column": "k", "min": 0, "max": 6},
            {"type": "range", "column": "k", "min": 1, "name": "k from 1"},
            {"type": "range", "column": "big", "max": 2**60 + n - 2},
            {"type": "allowed_values", "column": "s", "values": [f"v{i}" for i in range(12)]},
            {"type": "allowed_values", "column": "k", "values": list(range(7))},
            {"type": "allowed_values", "column": "k", "values": ["0", "1"], "name": "k as text"},
            {"type": "row_count", "min": n, "max": n},
        ]
    )

    def box() -> Sandbox:
        return Sandbox({"output": pq.read_table(path)})

    queried = run_checks(checks, box)
    proved = run_checks(checks, box, profile_parquet(str(path)))
    verdict = {r["name"]: (r["passed"], r["failing_rows"]) for r in queried}
    assert {r["name"]: (r["passed"], r["failing_rows"]) for r in proved} == verdict
    assert all(r["by"] == "query" for r in queried)
    assert {r["name"] for r in proved if r["by"] == "profile"} == {
        "unique(one_null)",
        "pair",
        "not_null(k,s)",
        "range(k)",
        "allowed_values(k)",
        "row_count",
    }
    assert verdict["unique(two_nulls)"] == (False, 2)
    assert verdict["range(f)"] == (False, 1)
    assert verdict["range(big)"] == (False, 1)
    assert verdict["allowed_values(s)"] == (True, 0)


def test_nan_in_a_written_version_is_found_by_sql_and_counted_by_the_profile(
    admin: Client, raw: str, tmp_path: Path
):
    # Arrow's Parquet writer leaves NaN out of a float column's min/max, and DuckDB, reading
    # the file, took those for the whole truth: `WHERE isnan(x)` found nothing, max came back
    # without the NaN. The versions mlteam writes with Arrow (pipeline outputs, Parquet
    # uploads, batch scores) keep no float statistics, so DuckDB reads the values.
    admin.create_pipeline(
        raw,
        {
            "name": "with-nan",
            "inputs": {"r": "raw"},
            "steps": [
                {
                    "sql": "SELECT id, CASE WHEN id = 2 THEN 'nan'::DOUBLE ELSE amount END "
                    "AS x FROM r"
                }
            ],  # fmt: skip
        },
    )
    admin.wait(admin.run_pipeline(raw, "with-nan")["id"], timeout=60, poll=0.1)
    path = tmp_path / "nan.parquet"
    pq.write_table(pa.table({"x": [1.0, float("nan"), 3.0, float("nan")]}), path)
    admin.upload(raw, "uploaded", path, format="parquet")
    for dataset, nans, numbers in (("with-nan", 1, [10.0, -5.0]), ("uploaded", 2, [1.0, 3.0])):
        found = admin.query(raw, f'SELECT count(*) FROM "{dataset}" WHERE isnan(x)')
        assert found["rows"] == [[nans]], dataset
        (x,) = [c for c in admin.profile(raw, dataset)["columns"]
                if c["name"] == "x"]  # fmt: skip
        assert x["nans"] == nans and (x["min"], x["max"]) == (min(numbers), max(numbers))
        assert x["mean"] == sum(numbers) / len(numbers)


def test_user_sql_cannot_reach_files_or_change_settings(admin: Client, raw: str):
    admin.create_pipeline(
        raw,
        {
            "name": "sneaky",
            "inputs": {"r": "raw"},
            "steps": [
                {"name": "ok", "sql": "SELECT * FROM r"},
                {"name": "steal", "sql": "SELECT * FROM read_csv('/etc/passwd')"},
            ],
        },
    )
    admin.create_pipeline(
        raw,
        {
            "name": "endless",
            "inputs": {"r": "raw"},
            "steps": [{"name": "spin", "timeout_seconds": 0.5, "sql": "SELECT sum(a.range * "
                       "b.range) AS s FROM range(200000000) a, range(100000) b"}],
        },
    )  # fmt: skip
    endless = admin.run_pipeline(raw, "endless")
    job = _failed(admin, admin.run_pipeline(raw, "sneaky"))
    assert job["error"].startswith("your SQL step steal failed")
    assert (
        _failed(admin, endless)["error"] == "your SQL step spin took too long: stopped after 0.5 s"
    )
    assert "disabled by configuration" in job["error"]
    assert "root:" not in admin.job_log(job["id"])
    with pytest.raises(NotFound):
        admin.dataset_version(raw, "sneaky")
    for sql in (
        "SET enable_external_access=true",
        "COPY r TO '/tmp/x.csv'",
        "ATTACH '/tmp/x.db'",
        "SELECT 1; SELECT 2",
        "INSTALL httpfs",
    ):
        with pytest.raises(InvalidInput, match="steps\\[0\\].sql"):
            admin.create_pipeline(
                raw, {"name": "bad", "inputs": {"r": "raw"}, "steps": [{"sql": sql}]}
            )


@pytest.mark.parametrize(
    ("change", "error", "field"),
    [
        ({"inputs": {}}, InvalidInput, "inputs"),
        ({"inputs": {"bad alias": "raw"}}, InvalidInput, "inputs.bad alias"),
        ({"inputs": {"r": "source:nope"}}, NotFound, None),
        ({"inputs": {"r": "dataset:raw@x"}}, InvalidInput, "inputs.r"),
        ({"steps": []}, InvalidInput, "steps"),
        ({"steps": [{"sql": "SELECT $undeclared"}]}, InvalidInput, "steps[0].sql"),
        ({"steps": [{"name": "r", "sql": "SELECT 1"}]}, InvalidInput, "steps[0].name"),
        ({"schedule": "61 * * * *"}, InvalidInput, "schedule"),
        ({"params": {"p": [1, 2]}}, InvalidInput, "params.p"),
        ({"checks": [{"type": "nope"}]}, InvalidInput, "checks[0].type"),
        ({"checks": [{"type": "range", "column": "a"}]}, InvalidInput, "checks[0].min"),
        ({"checks": [{"type": "regex", "column": "a", "pattern": "("}]}, InvalidInput, None),
        ({"checks": [{"type": "sql", "predicate": "1); DROP TABLE x; --"}]}, InvalidInput, None),
        ({"output": "../etc"}, InvalidInput, "output"),
        (
            {"inputs": {"r": "clean"}, "trigger_on_new_version": True, "output": "clean"},
            InvalidInput,
            "output",
        ),
    ],  # fmt: skip
)
def test_definition_faults_are_4xx_naming_the_field(admin, project, change, error, field):
    spec = {"name": "p", "inputs": {"r": "raw"}, "steps": [{"sql": "SELECT * FROM r"}], **change}
    with pytest.raises(error) as caught:
        admin.create_pipeline(project, spec)
    if field:
        assert caught.value.details["field"] == field


def test_roles_decide_who_may_define_and_run(admin, raw, new_user, client_for):
    admin.create_pipeline(
        raw, {"name": "p", "inputs": {"r": "raw"}, "steps": [{"sql": "SELECT * FROM r"}]}
    )
    viewer_email, viewer_token = new_user()
    eng_email, eng_token = new_user()
    admin.add_member(raw, viewer_email, "viewer")
    admin.add_member(raw, eng_email, "data_engineer")
    viewer, eng, stranger = (
        client_for(viewer_token),
        client_for(eng_token),
        client_for(new_user()[1]),
    )
    assert viewer.pipeline(raw, "p")["name"] == "p"
    with pytest.raises(Forbidden):
        viewer.run_pipeline(raw, "p")
    with pytest.raises(Forbidden):
        viewer.create_source(raw, "s", "dataset", {"dataset": "raw"})
    with pytest.raises(NotFound):
        stranger.pipelines(raw)
    job = eng.wait(eng.run_pipeline(raw, "p")["id"], timeout=60, poll=0.1)
    assert job["result"]["status"] == "published"


def test_uri_sources_read_files_under_the_source_roots_only(admin, project, settings, tmp_path):
    root = settings.source_root_paths[0]
    root.mkdir(parents=True, exist_ok=True)
    folder = root / uid("f")
    folder.mkdir()
    pq.write_table(pa.table({"x": [1, 2, 3]}), folder / "a.parquet")
    _csv(folder / "b.csv", "x,y\n4,u\n5,v\n")
    (folder / "c.jsonl").write_text('{"x": 6}\n{"x": 7}\n')
    admin.create_source(project, "a", "uri", {"uri": str(folder / "a.parquet")})
    admin.create_source(project, "b", "uri", {"uri": f"file://{folder / 'b.csv'}"})
    admin.create_source(project, "c", "uri", {"uri": str(folder / "c.jsonl")})
    admin.create_pipeline(
        project,
        {
            "name": "files",
            "inputs": {"a": "source:a", "b": "source:b", "c": "source:c"},
            "steps": [
                {"sql": "SELECT x FROM a UNION ALL SELECT x FROM b UNION ALL SELECT x FROM c"}
            ],
            "checks": [{"type": "row_count", "min": 7, "max": 7}],
        },
    )
    job = admin.wait(admin.run_pipeline(project, "files")["id"], timeout=60, poll=0.1)
    assert job["result"]["rows"] == 7 and job["result"]["parents"] == []
    outside = tmp_path / "elsewhere.csv"
    _csv(outside, "x\n1\n")
    for uri in (str(outside), "/etc/passwd", f"{root}/../../etc/passwd", "http://x/y.csv"):
        with pytest.raises(InvalidInput) as caught:
            admin.create_source(project, "out", "uri", {"uri": uri, "format": "csv"})
        assert caught.value.details["field"] == "config.uri"
    link = folder / "link.csv"
    link.symlink_to(outside)
    with pytest.raises(InvalidInput, match="source roots"):
        admin.create_source(project, "ln", "uri", {"uri": str(link)})
    # A file that went away: the run fails naming the source, nothing is published.
    (folder / "a.parquet").unlink()
    job = _failed(admin, admin.run_pipeline(project, "files"))
    assert "source a" in job["error"] or "a.parquet" in job["error"]


def _pg_reachable() -> bool:
    try:
        engine = create_engine(PG)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


def test_a_sql_source_cannot_read_the_platforms_own_database(admin, project, settings):
    own = make_url(settings.database_url)
    spellings = [settings.database_url]
    if own.get_backend_name() == "sqlite":  # the same file by another path
        spellings.append(f"sqlite:///{Path(own.database).parent}/./{Path(own.database).name}")
    else:  # the same server named another way, with the default port
        spellings.append(own.set(host="localhost", port=None).render_as_string(False))
    for url in spellings:
        with pytest.raises(InvalidInput, match="own database") as err:
            admin.create_source(project, "mine", "sql", {"url": url, "table": "users"})
        assert err.value.details["field"] == "config.url"
    assert "mine" not in {s["name"] for s in admin.sources(project)}


def test_sql_source_password_never_leaves_the_vault(admin, project, platform, settings):
    if not _pg_reachable():
        pytest.skip("no PostgreSQL at 127.0.0.1:5432 to read from")
    password = f"Pw-{uid('secret')}"
    schema = f"mlteam_src_{uid('s').replace('-', '_')}"
    engine = create_engine(PG)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        conn.execute(text(f'CREATE TABLE "{schema}".orders (id int, amount float, region text)'))
        conn.execute(
            text(
                f"""INSERT INTO "{schema}".orders VALUES (1, 9.5, 'eu'), (2, 3, 'us'), (3, 7, 'eu')"""
            )
        )
    try:
        url = make_url(PG).set(password=password).render_as_string(hide_password=False)
        responses = [
            admin.create_source(
                project, "orders", "sql", {"url": url, "table": f"{schema}.orders"}
            ),
            admin.create_source(
                project,
                "eu",
                "sql",
                {"url": url, "query": f"SELECT * FROM \"{schema}\".orders WHERE region = 'eu'"},
            ),
        ]
        assert responses[0]["has_credentials"] and password not in responses[0]["config"]["url"]
        responses += [admin.sources(project), admin.source(project, "orders")]
        responses.append(
            admin.create_pipeline(
                project,
                {
                    "name": "orders",
                    "inputs": {"o": "source:orders", "e": "source:eu"},
                    "steps": [
                        {
                            "sql": "SELECT o.region, sum(o.amount) AS total, count(e.id) AS eu "
                            "FROM o LEFT JOIN e USING (id) GROUP BY ALL ORDER BY 1"
                        }
                    ],  # fmt: skip
                },
            )
        )
        # A failing read says why, without the password (the table is gone).
        admin.create_source(project, "gone", "sql", {"url": url, "table": f"{schema}.nope"})
        admin.create_pipeline(
            project,
            {"name": "gone", "inputs": {"g": "source:gone"}, "steps": [{"sql": "SELECT * FROM g"}]},
        )
        queued = admin.run_pipeline(project, "orders"), admin.run_pipeline(project, "gone")
        job = admin.wait(queued[0]["id"], timeout=60, poll=0.1)
        responses += [job, admin.job_log(job["id"]), admin.pipeline_runs(project, "orders")]
        assert job["result"]["rows"] == 2
        bad = _failed(admin, queued[1])
        assert "reading source gone failed" in bad["error"]
        responses += [bad, admin.job_log(bad["id"]), admin.jobs(project)]
        responses.append(admin.audit(project, limit=1000))
        # A URL that does not parse is refused without being repeated.
        with pytest.raises(InvalidInput) as caught:
            admin.create_source(project, "x", "sql", {"url": f"nonsense://:{password}@@"})
        responses.append(caught.value.to_dict())
        dump = json.dumps(responses, default=str)
        assert password not in dump
        assert "Pw-" not in dump
        # At rest: sealed, not plain.
        with platform.db.session() as s:
            stored = s.scalars(select(Source).where(Source.name == "orders")).all()
            assert stored and all(src.secret and password not in src.secret for src in stored)
            assert all(password not in json.dumps(src.config) for src in stored)
        server_log = settings.home / "server.log"
        assert not server_log.exists() or password not in server_log.read_text()
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def test_scheduler_queues_each_due_run_once(admin, raw, platform):
    admin.create_pipeline(
        raw,
        {
            "name": "nightly",
            "inputs": {"r": "raw"},
            "steps": [{"sql": "SELECT count(*) AS n FROM r"}],
            "schedule": "0 3 1 1 *",  # once a year: the background scheduler will not fire it
        },
    )
    due = datetime.fromisoformat(admin.pipeline(raw, "nightly")["next_run_at"])
    assert (due.month, due.day, due.hour) == (1, 1, 3)
    assert scheduler.tick(platform.db, due - timedelta(seconds=1)) == []
    # Two servers looking at once: one of them queues the run.
    results: list[list[str]] = []
    ticks = [
        threading.Thread(target=lambda: results.append(scheduler.tick(platform.db, due)))
        for _ in range(3)
    ]
    for t in ticks:
        t.start()
    for t in ticks:
        t.join()
    runs = admin.pipeline_runs(raw, "nightly")
    assert len(runs) == 1 and runs[0]["trigger"] == "schedule"
    assert sorted(len(r) for r in results)[-1] == 1 and sum(len(r) for r in results) == 1
    assert scheduler.tick(platform.db, due) == []
    nxt = datetime.fromisoformat(admin.pipeline(raw, "nightly")["next_run_at"])
    assert nxt.year == due.year + 1
    job = admin.wait(runs[0]["job"]["id"], timeout=60, poll=0.1)
    assert job["result"]["status"] == "published"


def test_new_input_version_triggers_a_run(admin, raw, platform, tmp_path):
    admin.create_pipeline(
        raw,
        {
            "name": "follow",
            "inputs": {"r": "raw"},
            "steps": [{"sql": "SELECT id, amount FROM r"}],
            "trigger_on_new_version": True,
        },
    )
    scheduler.tick(platform.db)
    assert admin.pipeline_runs(raw, "follow") == []
    v2 = admin.upload(raw, "raw", _csv(tmp_path / "raw2.csv", "id,amount\n7,70\n8,80\n"))
    deadline = time.monotonic() + 30
    while not (runs := admin.pipeline_runs(raw, "follow")) and time.monotonic() < deadline:
        scheduler.tick(platform.db)  # the background scheduler may get there first
    scheduler.tick(platform.db)
    runs = admin.pipeline_runs(raw, "follow")
    assert [r["trigger"] for r in runs] == ["new_version"]
    job = admin.wait(runs[0]["job"]["id"], timeout=60, poll=0.1)
    assert job["result"]["parents"] == [v2["id"]] and job["result"]["rows"] == 2
    with platform.db.session() as s:
        assert s.scalar(select(Pipeline.seen_inputs).where(Pipeline.name == "follow"))


def test_cli_sources_and_pipelines(live_server, tmp_path, s3_endpoint):
    from typer.testing import CliRunner

    from mlteam.cli.main import app

    token = live_server.cli("users", "create", f"{uid('pcli')}@example.com", "--admin")
    env = {"MLTEAM_URL": live_server.url, "MLTEAM_TOKEN": token.stdout.strip().splitlines()[-1]}
    runner = CliRunner()

    def cli(*args: str, code: int = 0, **extra: str):
        res = runner.invoke(app, list(args), env={**env, **extra})
        assert res.exit_code == code, (args, res.output)
        return res

    slug = uid("pcli")
    cli("projects", "create", slug)
    cli("data", "upload", slug, "raw", str(_csv(tmp_path / "r.csv", "id,v\n1,2\n2,3\n")))
    cli("data", "sources", "create", slug, "r", "--kind", "dataset", "--dataset", "raw")
    password = f"Pw-{uid('cli')}"
    if _pg_reachable():  # a password given through the environment, never echoed
        url = make_url(PG).set(password=password).render_as_string(hide_password=False)
        out = cli(
            "data", "sources", "create", slug, "db", "--kind", "sql", "--table", "pg_class",
            MLTEAM_SOURCE_URL=url,
        ).output  # fmt: skip
        out += cli("data", "sources", "show", slug, "db").output
        assert password not in out and '"has_credentials": true' in out
    s3_endpoint.client.put_object(Bucket="lake", Key=f"{slug}/x.csv", Body=b"id,v\n9,9\n")
    out = cli(
        "data", "sources", "create", slug, "lake", "--kind", "uri", "--uri",
        f"s3://lake/{slug}/x.csv", "--endpoint-url", s3_endpoint.url,
        MLTEAM_SOURCE_S3_KEY=s3_endpoint.key, MLTEAM_SOURCE_S3_SECRET=s3_endpoint.secret,
    ).output  # fmt: skip
    out += cli("data", "sources", "show", slug, "lake").output
    assert s3_endpoint.secret not in out and s3_endpoint.url in out
    listed = json.loads(cli("data", "sources", "list", slug, "--json").output)
    assert {"r", "lake"} <= {s["name"] for s in listed}
    spec = tmp_path / "p.yaml"
    spec.write_text(
        "name: doubled\n"
        "inputs: {r: 'source:r', lake: 'source:lake'}\n"
        "params: {k: 2}\n"
        "steps:\n  - name: d\n    sql: SELECT id, v * $k AS v FROM (FROM r UNION ALL FROM lake)\n"
        "checks:\n  - {type: range, column: v, min: 0}\n"
    )
    cli("data", "pipelines", "create", slug, str(spec))
    res = cli("data", "pipelines", "run", slug, "doubled", "-p", "k=3")
    assert "doubled v1 published" in res.output and "ok   range(v)" in res.output
    res = cli("data", "pipelines", "run", slug, "doubled", "-p", "k=-1", code=1)
    assert "FAIL range(v): 3 rows" in res.output, res.output
    runs = json.loads(cli("data", "pipelines", "runs", slug, "doubled", "--json").output)
    assert [r["state"] for r in runs] == ["failed", "succeeded"]
    shown = json.loads(cli("data", "pipelines", "show", slug, "doubled").output)
    assert shown["params"] == {"k": 2}
    assert "doubled" in cli("data", "pipelines", "list", slug).output
    cli("data", "pipelines", "delete", slug, "doubled")
    assert "doubled" not in cli("data", "pipelines", "list", slug).output
    assert json.loads(cli("data", "versions", slug, "doubled", "--json").output)[0]["n"] == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    assert (
        "not valid JSON/YAML" in cli("data", "pipelines", "create", slug, str(bad), code=1).output
    )
    assert password not in (live_server.home / "server.log").read_text()


@pytest.mark.slow
def test_pipeline_killed_mid_run_publishes_nothing_and_fails(live_server, tmp_path):
    token = live_server.cli("users", "create", f"{uid('pkill')}@example.com", "--admin")
    c = Client(live_server.url, token.stdout.strip().splitlines()[-1], timeout=30)
    slug = uid("pkill")
    c.create_project(slug)
    c.upload(slug, "raw", _csv(tmp_path / "r.csv", "id\n1\n2\n"))
    c.create_pipeline(
        slug,
        {
            "name": "slow",
            "inputs": {"r": "raw"},
            "steps": [
                {"name": "first", "sql": "SELECT * FROM r"},
                # Minutes of work: the kill lands while it runs.
                {
                    "name": "grind",
                    "sql": "SELECT sum(a.range * b.range) AS s "
                    "FROM range(200000000) a, range(100000) b",
                },
            ],  # fmt: skip
            "output": "slow-out",
        },
    )
    job = c.run_pipeline(slug, "slow")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = c.job(job["id"])
        if state["message"] == "running step grind":
            break
        time.sleep(0.1)
    assert state["message"] == "running step grind", state
    subprocess.run(["pkill", "-9", "-f", f"mlteam.core.worker {job['id']}"], check=True)
    with pytest.raises(MlteamError, match="failed"):
        c.wait(job["id"], timeout=60, poll=0.1)
    after = c.job(job["id"])
    # The executor saw its process exit (or, on a loaded machine, its heartbeat stop first).
    assert after["state"] == "failed" and ("exited" in after["error"] or "died" in after["error"])
    with pytest.raises(NotFound):
        c.dataset_versions(slug, "slow-out")
    assert c.pipeline_runs(slug, "slow")[0]["job"]["state"] == "failed"


def test_s3_keys_are_sealed_and_sources_in_use_stay(admin, project):
    key, secret = f"AKIA{uid('k')}", f"sk-{uid('s3')}"
    created = admin.create_source(
        project,
        "lake",
        "uri",
        {
            "uri": "s3://bucket/events.parquet",
            "options": {"key": key, "secret": secret, "endpoint_url": "http://minio:9000"},
        },
    )
    shown = [created, admin.source(project, "lake"), admin.sources(project)]
    shown.append(admin.audit(project, limit=1000))
    dump = json.dumps(shown, default=str)
    assert key not in dump and secret not in dump
    assert created["config"]["options"] == {"endpoint_url": "http://minio:9000"}
    assert created["has_credentials"] and created["config"]["format"] == "parquet"
    admin.create_pipeline(
        project, {"name": "p", "inputs": {"l": "source:lake"}, "steps": [{"sql": "SELECT 1"}]}
    )
    with pytest.raises(Conflict, match="read by pipelines"):
        admin.delete_source(project, "lake")
    admin.delete_pipeline(project, "p")
    admin.delete_source(project, "lake")
    assert admin.sources(project) == []


def test_s3_source_is_read_by_a_pipeline(admin, project, s3_endpoint):
    url, key, secret = s3_endpoint.url, s3_endpoint.key, s3_endpoint.secret
    s3 = s3_endpoint.client
    import io

    buf = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2, 3], "amount": [10.0, 20.0, 30.0]}), buf)
    s3.put_object(Bucket="lake", Key=f"{project}/events.parquet", Body=buf.getvalue())
    s3.put_object(Bucket="lake", Key=f"{project}/more.csv", Body=b"id,amount\n4,40.5\n")
    for name, file in (("events", "events.parquet"), ("more", "more.csv")):
        admin.create_source(
            project,
            name,
            "uri",
            {"uri": f"s3://lake/{project}/{file}", "options": {"endpoint_url": url}},
            credentials={"key": key, "secret": secret},
        )
    admin.create_pipeline(
        project,
        {
            "name": "from-s3",
            "inputs": {"e": "source:events", "m": "source:more"},
            "steps": [{"sql": "SELECT id, amount FROM e UNION ALL SELECT id, amount FROM m"}],
            "checks": [{"type": "unique", "columns": ["id"]}],
        },
    )
    job = admin.wait(admin.run_pipeline(project, "from-s3")["id"], timeout=120, poll=0.1)
    assert job["result"]["rows"] == 4
    table = admin.read_arrow(project, "from-s3")
    assert sorted(table.column("amount").to_pylist()) == [10.0, 20.0, 30.0, 40.5]

    # A missing object: the run fails naming the source, and the keys appear nowhere.
    admin.create_source(
        project,
        "gone",
        "uri",
        {"uri": f"s3://lake/{project}/gone.parquet", "options": {"endpoint_url": url}},
        credentials={"key": key, "secret": secret},
    )
    admin.create_pipeline(
        project,
        {"name": "gone", "inputs": {"g": "source:gone"}, "steps": [{"sql": "SELECT * FROM g"}]},
    )
    failed = _failed(admin, admin.run_pipeline(project, "gone"))
    assert "source gone" in failed["error"], failed["error"]
    assert secret not in json.dumps(failed) and key not in json.dumps(failed)


def test_a_step_past_the_memory_limit_fails_naming_the_setting(admin, raw, platform):
    project = raw
    admin.create_source(project, "raw-src", "dataset", {"dataset": "raw"})
    before = platform.settings.pipeline_memory_limit
    platform.settings.pipeline_memory_limit = "16MB"  # handed to the job's worker process
    try:
        admin.create_pipeline(
            project,
            {
                "name": "hog",
                "inputs": {"r": "source:raw-src"},
                "steps": [{"sql": "SELECT list(x) AS xs FROM r, range(10000000) t(x)"}],
            },
        )
        failed = _failed(admin, admin.run_pipeline(project, "hog"))
    finally:
        platform.settings.pipeline_memory_limit = before
    assert "16MB" in failed["error"] and "MLTEAM_PIPELINE_MEMORY_LIMIT" in failed["error"]
    with pytest.raises(NotFound):
        admin.dataset_versions(project, "hog")


def test_secret_box_key_from_setting_or_generated_once(tmp_path):
    from cryptography.fernet import Fernet

    from mlteam.config import Settings
    from mlteam.data.secrets import SecretBox, scrub

    generated = Settings(home=tmp_path / "h")
    sealed = SecretBox(generated).seal({"password": "hunter22"})
    assert "hunter22" not in sealed
    assert (tmp_path / "h" / "secret.key").stat().st_mode & 0o077 == 0
    assert SecretBox(generated).open(sealed, "s") == {"password": "hunter22"}  # same key again
    other = Settings(home=tmp_path / "h", secret_key=Fernet.generate_key().decode())
    with pytest.raises(InvalidInput, match="MLTEAM_SECRET_KEY changed"):
        SecretBox(other).open(sealed, "source s")
    with pytest.raises(InvalidInput, match="not a valid Fernet key"):
        SecretBox(Settings(home=tmp_path, secret_key="short"))
    assert scrub("auth failed for hunter22 (hunter22)", {"password": "hunter22"}) == (
        "auth failed for *** (***)"
    )
