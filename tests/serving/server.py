"""How the serving tests start the scoring service and talk to it: the token, fast settings,
an in-process HTTP client, and Open Inference Protocol request bodies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from litestar import Litestar
from litestar.testing import TestClient

from mlbox.api.app import create_app
from mlbox.registry.service import RegistryService
from mlbox.services import Services
from mlbox.serving.config import ServingSettings
from mlbox.serving.predlog import PredictionLog
from mlbox.serving.service import ServingService

TOKEN = "serving-token-1f2e"
BASE = "http://127.0.0.1:5151"
FAST = ServingSettings(poll_s=0.05, timeout_s=10.0, log_flush_s=0.05)
ROW = [0.5] * 20


def start_serving(registry: RegistryService, home: Path, settings: ServingSettings = FAST) -> ServingService:
    serving = ServingService(
        registry, settings, PredictionLog(home / "tables" / "predictions", flush_s=settings.log_flush_s)
    )
    serving.start()
    assert serving.wait_ready(30)
    return serving


@contextlib.contextmanager
def http_client(
    services: Services, serving: ServingService, *, auth: bool = True
) -> Iterator[TestClient[Litestar]]:
    """A client of the app; ``auth`` sends the token (a version no alias serves then loads on
    demand, as for a management client); without it, only what is served answers."""
    with TestClient(
        create_app(dataclasses.replace(services, serving=serving), token=TOKEN), base_url=BASE
    ) as client:
        if auth:
            client.headers.update({"Authorization": f"Bearer {TOKEN}"})
        yield client


def oip(x: Any, name: str = "input", datatype: str = "FP64", **extra: Any) -> dict[str, Any]:
    arr = np.asarray(x)
    tensor = {"name": name, "shape": list(arr.shape), "datatype": datatype, "data": arr.ravel().tolist()}
    return {"inputs": [tensor], **extra}


@contextlib.contextmanager
def uvicorn_server(app: Litestar) -> Iterator[str]:
    """``app`` served by uvicorn on a real socket on 127.0.0.1; yields its URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=lambda: server.run(sockets=[sock]), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
