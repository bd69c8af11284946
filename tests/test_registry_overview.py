"""`RegistryService.overview`: every model as the Models screen lists it, in a fixed number of
queries over a real registry database, whatever the number of models."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from mlbox.registry.service import RegistryService
from mlbox.services import Services
from tests.models import Doubler


@pytest.fixture
def registry(services: Services) -> RegistryService:
    t = services.tracking
    return RegistryService(t.db, t.artifacts, t)


def _statements(registry: RegistryService, call: Callable[[], object]) -> list[str]:
    """The SQL statements ``call()`` ran on this thread's connection."""
    seen: list[str] = []
    conn = registry.db.conn
    conn.set_trace_callback(seen.append)
    try:
        call()
    finally:
        conn.set_trace_callback(None)
    return [s for s in seen if s.lstrip().upper().startswith("SELECT")]


def test_overview_lists_latest_versions_aliases_and_the_last_change(registry: RegistryService) -> None:
    for factor in (1.0, 2.0, 3.0):
        registry.register("alpha", model=Doubler(factor), example_input=np.arange(3))
    registry.register("beta", model=Doubler())
    registry.set_alias("alpha", "champion", 1)
    registry.set_alias("alpha", "challenger", 3)
    registry.set_alias("alpha", "champion", 2)
    registry.delete_alias("alpha", "challenger")

    alpha, beta = registry.overview()

    assert (alpha.model.name, alpha.model.latest_version, alpha.model.version_count) == ("alpha", 3, 3)
    assert alpha.model.aliases == {"champion": 2}
    last_move = registry.alias_history("alpha")[-1].moved_at
    assert alpha.updated == last_move  # the deletion came after the newest version
    assert alpha.updated > registry.get_version("alpha", 3).created_at

    assert (beta.model.name, beta.model.latest_version, beta.model.version_count) == ("beta", 1, 1)
    assert beta.model.aliases == {}
    assert beta.updated == registry.get_version("beta", 1).created_at  # no alias ever moved
    assert [o.model for o in registry.overview()] == registry.list_models()


def test_a_version_registered_after_the_last_move_is_the_last_change(registry: RegistryService) -> None:
    registry.register("gamma", model=Doubler())
    registry.set_alias("gamma", "champion", 1)
    newest = registry.register("gamma", model=Doubler(5.0))
    (gamma,) = registry.overview()
    assert gamma.model.latest_version == 2 and gamma.model.aliases == {"champion": 1}
    assert gamma.updated == newest.created_at


def test_overview_of_an_empty_registry(registry: RegistryService) -> None:
    assert registry.overview() == []


def test_overview_asks_the_same_few_queries_however_many_models(registry: RegistryService) -> None:
    registry.register("m0", model=Doubler())
    one = _statements(registry, registry.overview)
    for i in range(1, 12):
        registry.register(f"m{i}", model=Doubler())
        registry.set_alias(f"m{i}", "champion", 1)
    many = _statements(registry, registry.overview)
    assert len(registry.overview()) == 12
    assert len(many) == len(one) <= 2
