"""The Python SDK: `mlteam.Client(url, token)` over the REST API.

Every method maps to one endpoint and raises the server's own error classes
(`mlteam.NotFound`, `mlteam.Forbidden`, ...). Pass `transport=httpx.ASGITransport(app)` to run
against an app in-process. Each capability's calls live in their own module.
"""

from __future__ import annotations

from mlteam.client.core import CoreAPI
from mlteam.client.data import DataAPI
from mlteam.client.evaluation import EvaluationAPI
from mlteam.client.pipelines import PipelinesAPI
from mlteam.client.projects import ProjectsAPI
from mlteam.client.registry import RegistryAPI
from mlteam.client.serving import ServingAPI
from mlteam.client.tracking import TrackingAPI

__all__ = ["Client"]


class Client(
    CoreAPI,
    ProjectsAPI,
    DataAPI,
    PipelinesAPI,
    TrackingAPI,
    RegistryAPI,
    EvaluationAPI,
    ServingAPI,
):
    """`Client(url, token, transport=None)`: the whole platform from Python."""
