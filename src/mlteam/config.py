"""Settings, read once from the environment and passed in.

Every variable is documented here and in the README (a test keeps the two in step).
Nothing reads the environment at import time: callers build `Settings()` and hand it on,
so a test can run several platforms side by side.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path("~/.mlteam").expanduser()


class Settings(BaseSettings):
    """The platform's configuration. Each field maps to `MLTEAM_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="MLTEAM_", extra="ignore")

    home: Path = Field(
        default_factory=_default_home,
        description="Folder for the embedded database, artifacts and logs (MLTEAM_HOME).",
    )
    db_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata store; default SQLite in MLTEAM_HOME. "
        "Use postgresql+psycopg://user@host/db for teams.",
    )
    artifacts: str | None = Field(
        default=None,
        description="fsspec URI of the artifact root (local folder, s3://bucket/prefix, ...); "
        "default MLTEAM_HOME/artifacts.",
    )
    url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where the CLI finds the server.",
    )
    token: str | None = Field(default=None, description="API token the CLI sends.")
    workers: int = Field(default=2, ge=1, description="Jobs run at once by the local executor.")
    max_upload_mb: int = Field(default=2048, ge=1, description="Largest accepted upload, in MB.")
    job_heartbeat_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds without a heartbeat after which a running job is marked failed.",
    )
    prediction_flush_seconds: float = Field(
        default=1.0,
        gt=0,
        description="Longest time a logged prediction waits in memory before it is written.",
    )
    prediction_log: bool = Field(
        default=True,
        description="Keep every prediction in the prediction log. Turn off (false) only to "
        "measure what logging costs: unlogged predictions get no feedback or monitoring.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet key that encrypts source credentials at rest; default: one "
        "generated once into MLTEAM_HOME/secret.key.",
    )
    source_roots: str | None = Field(
        default=None,
        description="Local folders a path source may read from, separated by ':'; default "
        "MLTEAM_HOME/sources.",
    )
    ingest_memory_limit: str = Field(
        default="512MB",
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="Memory DuckDB may use to turn one upload into Parquet (and profile it); "
        "an upload of any size streams within it. Lower saves memory, at the price of speed "
        "(128MB writes on one core). A version's profile reads number columns into memory "
        "within half of it, else streams them through DuckDB.",
    )
    ingest_threads: int = Field(
        default=0, ge=0, description="DuckDB threads per ingest; 0: the CPUs, up to 8."
    )
    pipeline_memory_limit: str = Field(
        default="1GB",
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="Memory DuckDB may use for one pipeline's SQL steps and checks (joins, "
        "sorts, aggregates); a step that needs more fails with a message naming this setting.",
    )
    scheduler_interval: float = Field(
        default=15.0,
        gt=0,
        description="Seconds between the scheduler's looks for due pipeline runs.",
    )
    ray_address: str | None = Field(
        default=None,
        description="Ray cluster address (e.g. 10.0.0.5:6379) training jobs use for "
        "executor='ray' when the request names none.",
    )

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.home / 'mlteam.db'}"

    @property
    def artifact_root(self) -> str:
        return self.artifacts or str(self.home / "artifacts")

    @property
    def source_root_paths(self) -> list[Path]:
        if self.source_roots:
            return [Path(p).expanduser() for p in self.source_roots.split(":") if p]
        return [self.home / "sources"]

    def ensure_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
