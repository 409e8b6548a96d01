"""Fixtures: one platform per test session on SQLite, or on PostgreSQL when
MLTEAM_TEST_DB_URL is set (then an unreachable server fails the run; it never skips).

Most tests drive the ASGI app in-process through the SDK (`httpx.ASGITransport`); the
end-to-end tests start `mlteam server` as a real process and talk to it over a socket.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from mlteam import Client
from mlteam.config import Settings
from mlteam.core.auth import create_user
from mlteam.server.app import create_app
from mlteam.server.platform import Platform

PG_URL = os.environ.get("MLTEAM_TEST_DB_URL")


def uid(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Databases:
    """Hands out empty databases: SQLite files, or fresh PostgreSQL databases."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.created: list[str] = []
        if PG_URL:
            import psycopg

            url = make_url(PG_URL)
            try:
                self.admin = psycopg.connect(
                    host=url.host or "127.0.0.1",
                    port=url.port or 5432,
                    user=url.username,
                    password=url.password,
                    dbname=url.database,
                    autocommit=True,
                    connect_timeout=5,
                )
            except psycopg.OperationalError as err:
                pytest.fail(f"MLTEAM_TEST_DB_URL is set but PostgreSQL does not answer: {err}")

    def new(self) -> str:
        name = f"mlteam_{uuid.uuid4().hex[:12]}"
        if not PG_URL:
            return f"sqlite:///{self.tmp / (name + '.db')}"
        self.admin.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    def close(self) -> None:
        if PG_URL:
            for name in self.created:
                self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.admin.close()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    dbs = Databases(tmp_path_factory.mktemp("dbs"))
    yield dbs
    dbs.close()


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, databases: Databases) -> Settings:
    home = tmp_path_factory.mktemp("home")
    return Settings(home=home, db_url=databases.new(), job_heartbeat_timeout=20)


@pytest.fixture(scope="session")
def platform(settings: Settings) -> Iterator[Platform]:
    p = Platform(settings)
    p.start()
    yield p
    p.stop()


@pytest.fixture(scope="session")
def app(settings: Settings, platform: Platform):
    return create_app(settings, platform)


@pytest.fixture(scope="session")
def client_for(app) -> Iterator[Callable[[str | None], Client]]:
    clients: list[Client] = []

    def make(token: str | None) -> Client:
        c = Client("http://testserver", token, transport=httpx.ASGITransport(app))
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture(scope="session")
def new_user(platform: Platform) -> Callable[..., tuple[str, str]]:
    """Create a user directly (host bootstrap); returns (email, token)."""

    def make(admin: bool = False, prefix: str = "user") -> tuple[str, str]:
        email = f"{uid(prefix)}@example.com"
        with platform.db.session() as s:
            _, token = create_user(s, None, email, admin=admin)
        return email, token

    return make


@pytest.fixture(scope="session")
def admin(new_user, client_for) -> Client:
    _, token = new_user(admin=True, prefix="admin")
    return client_for(token)


@pytest.fixture
def project(admin: Client) -> str:
    slug = uid("p")
    admin.create_project(slug, goal="catch fraud", success_metric="recall at 1% FPR")
    return slug


@pytest.fixture(scope="session")
def cancer_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_breast_cancer

    path = tmp_path_factory.mktemp("data") / "cancer.csv"
    load_breast_cancer(as_frame=True).frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def loop(admin: Client, cancer_csv: Path) -> dict:
    """A project that went round the loop once: data, model, deployment (shared, read-only)."""
    slug = uid("loop")
    admin.create_project(slug)
    version = admin.upload(slug, "cancer", cancer_csv)
    job = admin.wait(admin.train(slug, "cancer", "target", register_as="clf")["id"], timeout=300)
    deployment = uid("dep")
    admin.deploy(slug, deployment, "clf", 1)
    return {
        "slug": slug,
        "dataset": "cancer",
        "version": version,
        "job": job,
        "model": "clf",
        "deployment": deployment,
    }


# -- real server processes ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`mlteam server` in its own process, on its own database and home."""

    def __init__(self, home: Path, db_url: str) -> None:
        self.home, self.db_url = home, db_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = None
        self.env = {
            **os.environ,
            "MLTEAM_HOME": str(home),
            "MLTEAM_DB_URL": db_url,
            "MLTEAM_JOB_HEARTBEAT_TIMEOUT": "20",
        }

    def start(self) -> ServerProcess:
        if self._log is None:
            self._log = open(self.home / "server.log", "ab")  # noqa: SIM115
        log = self._log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlteam.cli.main",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited: {(self.home / 'server.log').read_text()[-3000:]}"
                )
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not become healthy in 60 s")

    def cli(
        self, *args: str, token: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "MLTEAM_URL": self.url}
        if token:
            env["MLTEAM_TOKEN"] = token
        res = subprocess.run(
            [sys.executable, "-m", "mlteam.cli.main", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"mlteam {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
            )
        return res

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


@pytest.fixture
def server_factory(tmp_path_factory: pytest.TempPathFactory, databases: Databases):
    servers: list[ServerProcess] = []

    def make(home: Path | None = None, db_url: str | None = None) -> ServerProcess:
        srv = ServerProcess(home or tmp_path_factory.mktemp("srv"), db_url or databases.new())
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture(scope="session")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, databases: Databases
) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("live"), databases.new()).start()
    yield srv
    srv.stop()


class S3Endpoint:
    """A local S3 endpoint over HTTP (moto's server, bucket `lake`): s3fs, botocore and the
    platform speak the S3 protocol to it; only the store behind it is not AWS."""

    def __init__(self, url: str, key: str, secret: str, client: object) -> None:
        self.url, self.key, self.secret, self.client = url, key, secret, client


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    server_mod = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    key, secret = f"AKIA{uuid.uuid4().hex[:16].upper()}", uuid.uuid4().hex
    url = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="lake")
    yield S3Endpoint(url, key, secret, client)
    server.stop()
