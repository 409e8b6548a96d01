"""Every capability's tables, gathered for Alembic and schema checks."""

from mlteam.core import models as core_models  # noqa: F401
from mlteam.core.db import Base
from mlteam.data import models as data_models  # noqa: F401
from mlteam.data import pipeline_models  # noqa: F401
from mlteam.evaluation import models as evaluation_models  # noqa: F401
from mlteam.monitoring import models as monitoring_models  # noqa: F401
from mlteam.projects import models as project_models  # noqa: F401
from mlteam.registry import models as registry_models  # noqa: F401
from mlteam.serving import models as serving_models  # noqa: F401
from mlteam.tracking import models as tracking_models  # noqa: F401

metadata = Base.metadata
