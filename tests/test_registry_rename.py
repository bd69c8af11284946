"""Renaming a registered model (MLflow's rename_registered_model), on a real store."""

from __future__ import annotations

import numpy as np
import pytest

from mlbox.services import Services
from mlbox.store.errors import Conflict, InvalidInput


class Doubler:
    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) * 2.0


def test_a_model_is_renamed_with_its_versions_files_and_alias_history(services: Services) -> None:
    registry = services.registry
    first = registry.register("doubler", model=Doubler(), description="first")
    registry.register("doubler", model=Doubler())
    registry.register("other", model=Doubler())
    registry.set_alias("doubler", "champion", 1)

    with pytest.raises(Conflict, match="champion"):  # an alias is what serving follows
        registry.rename_model("doubler", "twice")
    registry.delete_alias("doubler", "champion")
    with pytest.raises(Conflict, match="already exists"):
        registry.rename_model("doubler", "other")
    with pytest.raises(InvalidInput):
        registry.rename_model("doubler", "bad name/with slash")

    renamed = registry.rename_model("doubler", "twice")
    assert renamed.name == "twice" and renamed.latest_version == 2
    assert [v.version for v in registry.list_versions("twice")] == [1, 2]
    v1 = registry.get_version("twice", 1)
    assert v1.description == "first" and [f.path for f in v1.files] == [f.path for f in first.files]
    assert [m.alias for m in registry.alias_history("twice")] == ["champion", "champion"]
    assert sorted(m.name for m in registry.list_models()) == ["other", "twice"]
    loaded = registry.load("twice/1")  # the files still verify and load under the new name
    assert loaded.predictor.predict(np.asarray([[1.0, 2.0]])).tolist() == [[2.0, 4.0]]
    registry.set_alias("twice", "champion", 2)
    assert registry.resolve("twice@champion").version == 2
