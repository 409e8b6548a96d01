"""The running platform: settings, stores and background machinery, built once and passed in."""

from __future__ import annotations

import threading

from mlteam.config import Settings
from mlteam.core.artifacts import ArtifactStore
from mlteam.core.db import Database
from mlteam.core.executor import LocalExecutor
from mlteam.core.migrate import upgrade
from mlteam.data.scheduler import Scheduler
from mlteam.serving.engine import ServingEngine
from mlteam.serving.predlog import PredictionLog
from mlteam.serving.runtime import ModelCache


class Platform:
    """Everything a request or a job needs, without import-time globals."""

    def __init__(self, settings: Settings, *, migrate: bool = True) -> None:
        settings.ensure_home()
        self.settings = settings
        if migrate:
            upgrade(settings.database_url)
        self.db = Database(settings.database_url, own_checkpoints=True)
        self.artifacts = ArtifactStore(settings.artifact_root)
        self.executor = LocalExecutor(settings, self.db)
        self.scheduler = Scheduler(self.db, settings.scheduler_interval, self.executor.wake)
        self.models = ModelCache(self.artifacts)
        self.predictions = PredictionLog(self.artifacts, settings.prediction_flush_seconds)
        self.serving = ServingEngine(
            self.models, self.predictions, log_predictions=settings.prediction_log
        )
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            if self.db.checkpointer is not None:
                self.db.checkpointer.start()
            self.executor.start()
            self.predictions.start()
            self.scheduler.start()
            self._started = True

    def stop(self) -> None:
        with self._lock:
            if not self._started:
                return
            self.scheduler.stop()
            self.serving.stop()  # shadow predictions under way are logged first
            self.predictions.stop()
            self.executor.stop()
            if self.db.checkpointer is not None:
                self.db.checkpointer.stop()
            self._started = False
        self.db.dispose()
