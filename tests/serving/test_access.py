"""Who may call what with the scoring service mounted: scoring routes are open, everything
else still needs the token, and a foreign Host header is refused.
"""

from __future__ import annotations

import dataclasses

from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from mlbox.api.app import create_app
from mlbox.services import Services
from mlbox.serving.service import ServingService
from tests.helpers import error
from tests.serving.server import BASE, ROW, TOKEN, oip
from tests.test_api import EXPECTED_OPEN, EXPECTED_OPEN_SCORING


def test_scoring_is_open_and_everything_else_still_needs_the_token(
    services: Services, serving: ServingService
) -> None:
    app = create_app(dataclasses.replace(services, serving=serving), token=TOKEN)
    open_scoring = EXPECTED_OPEN_SCORING  # one list, pinned in tests/test_api.py
    seen = set()
    with TestClient(app, base_url=BASE) as anon:
        for route in app.routes:
            assert isinstance(route, HTTPRoute)
            url = route.path_format.format(**{n: "gbc" if n == "name" else 1 for n in route.path_parameters})
            for method in route.methods:
                seen.add((method, route.path_format))
                status = anon.request(method, url, json=oip([ROW])).status_code
                if (method, route.path_format) in open_scoring:
                    assert status != 401, (method, url)
                elif (method, route.path_format) in EXPECTED_OPEN:
                    assert status == 200, (method, url, status)
                else:
                    assert status == 401, (method, url, status)
        assert seen >= open_scoring
        r = anon.post("/v2/models/gbc/infer", json=oip([ROW]), headers={"Host": "evil.example"})
        error(r, 403, "host")
