"""Composed models (chains and ensembles of registered versions): served, they equal calling
their parts; registered, a composed version is its graph and its parts must exist.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from mlbox.registry.composition import Composition
from mlbox.registry.service import RegistryService
from mlbox.services import Services
from mlbox.serving.service import ServingService
from mlbox.store.errors import InvalidInput, NotFound
from tests.serving.models import Constant
from tests.serving.server import http_client, oip


def test_composed_models_equal_calling_their_parts(
    services: Services, registry: RegistryService, serving: ServingService, data: dict[str, Any]
) -> None:
    x, y = data["x"], data["y"]
    scaler = StandardScaler().fit(x * 10 + 3)
    clf = LogisticRegression(max_iter=500).fit(scaler.transform(x * 10 + 3), y)
    registry.register("scaler", model=scaler, example_input=x[:3], options={"method": "transform"})
    registry.register("clf", model=clf, example_input=x[:3])
    registry.set_alias("clf", "champion", 1)
    registry.register("pipe", model=Composition.chain(["scaler/1", "clf@champion"]))
    registry.register("p1", model=data["gbc"], example_input=x[:3], options={"method": "predict_proba"})
    registry.register("p2", model=data["lr"], example_input=x[:3], options={"method": "predict_proba"})
    registry.register("avg", model=Composition.ensemble(["p1", "p2"], "mean"))
    registry.register("c3", model=Constant(1), flavor="python", example_input=x[:3])
    registry.register("vote", model=Composition.ensemble(["gbc/1", "clf/1", "c3"], "vote"))
    rows = x[:25] * 10 + 3
    with http_client(services, serving) as client:
        r = client.post("/api/v1/models/pipe/predict", json={"instances": rows.tolist()})
        assert r.json() == {"predictions": clf.predict(scaler.transform(rows)).tolist()}, r.text
        r = client.post("/v2/models/avg/infer", json=oip(x[:25]))
        out = r.json()["outputs"][0]
        assert out["shape"] == [25, 2]
        expected = (data["gbc"].predict_proba(x[:25]) + data["lr"].predict_proba(x[:25])) / 2
        np.testing.assert_allclose(np.reshape(out["data"], (25, 2)), expected)
        r = client.post("/api/v1/models/vote/predict", json={"instances": rows.tolist()})
        votes = np.stack([data["gbc"].predict(rows), clf.predict(rows), np.ones(25, dtype=np.int64)])
        majority = [
            int(np.bincount(votes[:, i]).argmax()) if len(set(votes[:, i])) < 3 else int(votes[0, i])
            for i in range(25)
        ]
        assert r.json() == {"predictions": majority}
        # a part's alias moves: the composed model follows it after the next pass
        clf2 = LogisticRegression(C=0.001).fit(scaler.transform(x * 10 + 3), 1 - y)
        registry.register("clf", model=clf2, example_input=x[:3])
        registry.set_alias("clf", "champion", 2)
        serving.sync()
        r = client.post("/api/v1/models/pipe/predict", json={"instances": rows.tolist()})
        assert r.json() == {"predictions": clf2.predict(scaler.transform(rows)).tolist()}


def test_a_composed_version_is_its_graph_and_its_parts_must_exist(
    registry: RegistryService, data: dict[str, Any]
) -> None:
    registry.register("a", model=Constant(1), flavor="python", example_input=data["x"][:2])
    with pytest.raises(NotFound) as missing:
        registry.register("ens", model=Composition.ensemble(["a", "b@champion"], "vote"))
    assert missing.value.field == "parts[1]"
    registry.register("b", model=Constant(2), flavor="python", example_input=data["x"][:2])
    registry.set_alias("b", "champion", 1)
    comp = Composition.ensemble(["a", "b@champion"], "vote")
    version = registry.register("ens", model=comp)
    assert version.flavor == "composed" and [f.path for f in version.files] == ["mlbox-model.json"]
    assert Composition.from_manifest(version.manifest) == comp
    with pytest.raises(InvalidInput, match="inside mlbox serving"):
        registry.load("ens/1").predict([[1.0]])
    with pytest.raises(InvalidInput) as info:
        Composition("ensemble", ["a", "b"])
    assert info.value.field == "combine"
    with pytest.raises(InvalidInput):
        Composition.chain(["only-one"])
