"""Fixtures of the serving tests: one fitted pair of sklearn models for the whole package, a
registry with ``gbc@champion``, the scoring service over it and an HTTP client to the app.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from mlbox.registry.service import RegistryService
from mlbox.services import Services
from mlbox.serving.service import ServingService
from tests.serving.server import FAST, http_client, start_serving


@pytest.fixture(scope="package")
def data() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 20))
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(np.int64)
    gbc = GradientBoostingClassifier(n_estimators=20, max_depth=2, random_state=0).fit(x, y)
    lr = LogisticRegression(max_iter=500).fit(x, y)
    return {"x": x, "y": y, "gbc": gbc, "lr": lr}


@pytest.fixture
def registry(services: Services) -> RegistryService:
    return services.registry


@pytest.fixture
def gbc(registry: RegistryService, data: dict[str, Any]) -> Any:
    registry.register("gbc", model=data["gbc"], example_input=data["x"][:5])
    registry.set_alias("gbc", "champion", 1)
    return data["gbc"]


@pytest.fixture(params=[True, False], ids=["fast-path", "litestar"])
def serving(
    request: pytest.FixtureRequest, registry: RegistryService, gbc: Any, home: Path
) -> Iterator[ServingService]:
    """Every test over this fixture runs twice: scoring POSTs through the fast path, and through
    the Litestar handlers, which must answer identically."""
    serving = start_serving(registry, home, replace(FAST, fast_path=request.param))
    yield serving
    serving.close()


@pytest.fixture
def client(services: Services, serving: ServingService) -> Iterator[TestClient[Litestar]]:
    with http_client(services, serving) as c:
        yield c
