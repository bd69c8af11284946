"""Versions behind an alias: moving the alias swaps versions under load over a real socket
with no failed request; a challenger shadows the champion without touching its answers.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from mlbox.api.app import create_app
from mlbox.registry.service import RegistryService
from mlbox.services import Services
from mlbox.serving.predlog import read_predictions
from mlbox.serving.service import ServingService
from tests.serving.models import Constant, Slow
from tests.serving.server import FAST, TOKEN, http_client, oip, start_serving, uvicorn_server


def test_moving_an_alias_swaps_versions_under_load_with_no_failed_request(
    services: Services, registry: RegistryService, serving: ServingService, data: dict[str, Any]
) -> None:
    registry.register("gbc", model=Constant(7), flavor="python", example_input=data["x"][:2])
    x = data["x"][:3]
    v1 = data["gbc"].predict(x).tolist()
    app = create_app(dataclasses.replace(services, serving=serving), token=TOKEN)
    seen: list[list[tuple[int, str, list[int]]]] = [[], [], []]
    stop = threading.Event()

    def fire(k: int, url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            while not stop.is_set():
                r = c.post("/v2/models/gbc@champion/infer", json=oip(x))
                body = r.json()
                seen[k].append(
                    (
                        r.status_code,
                        body.get("model_version", ""),
                        body["outputs"][0]["data"] if r.status_code == 200 else body,
                    )
                )

    with uvicorn_server(app) as url:
        threads = [threading.Thread(target=fire, args=(k, url)) for k in range(3)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30  # every client has been answered by v1 before the move
        while not all(seen) and time.monotonic() < deadline:
            time.sleep(0.02)
        registry.set_alias("gbc", "champion", 2)  # no notify: the watcher finds it by polling
        deadline = time.monotonic() + 30
        while not all(s and s[-1][1] == "2" for s in seen) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(10)
    for responses in seen:
        assert responses and all(status == 200 for status, _, _ in responses), responses[-3:]
        versions = [v for _, v, _ in responses]
        assert versions[0] == "1" and versions[-1] == "2"
        switched = versions.index("2")
        assert set(versions[switched:]) == {"2"}, "once swapped, never back"
        for _, version, out in responses:
            assert out == (v1 if version == "1" else [7, 7, 7])


def test_a_challenger_shadows_the_champion_and_both_are_logged(
    services: Services, registry: RegistryService, gbc: Any, home: Path, data: dict[str, Any]
) -> None:
    registry.register("gbc", model=data["lr"], example_input=data["x"][:2])
    registry.set_alias("gbc", "challenger", 2)
    serving = start_serving(registry, home)
    x = data["x"][:20]
    ids = []
    try:
        with http_client(services, serving) as client:
            for i in range(20):
                r = client.post("/v2/models/gbc@champion/infer", json=oip(x[i : i + 1], id=f"s{i}"))
                assert r.json()["model_version"] == "1"
                assert r.json()["outputs"][0]["data"] == data["gbc"].predict(x[i : i + 1]).tolist()
                ids.append(f"s{i}")
            r = client.post("/v2/models/gbc@challenger/infer", json=oip(x[:1], id="direct"))
            assert r.json()["model_version"] == "2"
            deadline = time.monotonic() + 5
            while serving.served()["gbc@challenger"].stats.shadow < 20 and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        serving.close()
    log = read_predictions(home / "tables" / "predictions", "gbc")
    champion = log.filter(~log["shadow"])
    shadow = log.filter(log["shadow"])
    assert sorted(champion["request_id"].to_list()) == sorted([*ids, "direct"])
    assert set(champion.filter(champion["request_id"] != "direct")["version"].to_list()) == {1}
    assert sorted(shadow["request_id"].to_list()) == sorted(ids)
    assert set(shadow["version"].to_list()) == {2}
    for row in shadow.iter_rows(named=True):
        i = int(row["request_id"][1:])
        assert json.loads(row["outputs"]) == {"output_0": data["lr"].predict(x[i : i + 1]).tolist()}
        assert json.loads(row["inputs"]) == x[i : i + 1].tolist()


def test_a_slow_or_failing_challenger_does_not_touch_champion_responses(
    services: Services, registry: RegistryService, gbc: Any, home: Path, data: dict[str, Any]
) -> None:
    registry.register("gbc", model=Slow(0.5), flavor="python", example_input=data["x"][:2])
    registry.set_alias("gbc", "challenger", 2)
    serving = start_serving(registry, home, replace(FAST, max_queue=2))
    try:
        with http_client(services, serving) as client:
            t0 = time.perf_counter()
            for i in range(8):
                r = client.post("/v2/models/gbc@champion/infer", json=oip(data["x"][i : i + 1]))
                assert r.status_code == 200
                assert r.json()["outputs"][0]["data"] == data["gbc"].predict(data["x"][i : i + 1]).tolist()
            # waiting on the challenger would take 8 x 0.5 s; a mirror is only enqueued (or dropped)
            assert time.perf_counter() - t0 < 2.0
        stats = serving.served()["gbc@challenger"].stats
        assert stats.shadow_errors >= 1  # its queue filled: mirrors were dropped, not waited for
    finally:
        serving.close()
