"""Asking a Jupyter server what it has been doing, over loopback, with its token.

Two reads per poll: ``/api/status`` (the server's own ``last_activity``:
browser and API traffic, kernel messages, terminals) and ``/api/kernels``
(each kernel's ``execution_state``). Both carry ``no_track_activity`` so
that being asked does not itself count as activity. Proxy variables are
ignored: the server is on 127.0.0.1 and a proxy would only break that.
"""

from __future__ import annotations

import json
from typing import Any

from mlbox.notebooks.idle import KernelActivity, ServerActivity, parse_time


def get_json(url: str, token: str, *, timeout_s: float = 2.0) -> Any:
    """GET a JSON document with the token; raises OSError (URLError, HTTPError) on failure."""
    import urllib.request  # lazily: it pulls in ssl and http.client, costly at CLI start-up

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with opener.open(request, timeout=timeout_s) as response:
        return json.loads(response.read())


def answers(base_url: str, token: str, *, timeout_s: float = 2.0) -> bool:
    """The server is up and accepts this token."""
    try:
        get_json(f"{base_url}/api/status", token, timeout_s=timeout_s)
    except (OSError, ValueError):
        return False
    return True


def poll(base_url: str, token: str, *, timeout_s: float = 2.0) -> ServerActivity | None:
    """What the server reports, or None when it does not answer (starting, stopping, hung)."""
    try:
        status = get_json(f"{base_url}/api/status?no_track_activity=1", token, timeout_s=timeout_s)
        kernels = get_json(f"{base_url}/api/kernels?no_track_activity=1", token, timeout_s=timeout_s)
    except (OSError, ValueError):
        return None
    if not isinstance(status, dict) or not isinstance(kernels, list):
        return None
    return ServerActivity(
        last_activity=parse_time(status.get("last_activity")),
        kernels=tuple(
            KernelActivity(str(k.get("execution_state", "")), parse_time(k.get("last_activity")))
            for k in kernels
            if isinstance(k, dict)
        ),
    )
