"""``GET /``: the page a browser gets from MLflow's "View run ... at: http://127.0.0.1:PORT/#/..."
(issue 17: it was a JSON 404). Inert, self-contained, open without the token, behind the Host check."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from mlbox.api.app import create_app
from mlbox.api.landing import SCRIPT
from mlbox.services import Services
from tests.helpers import error

BASE = "http://127.0.0.1:5151"


@pytest.fixture
def anon(services: Services) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(services, token="landing-token"), base_url=BASE) as client:
        yield client


def test_the_page_says_mlbox_has_no_web_ui_without_the_token(anon: TestClient[Litestar]) -> None:
    page = anon.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "mlbox" in text and "no web UI" in text and "mlbox runs show ID" in text
    # self-contained: nothing to load, nothing to fetch; one inline script, allowed by its hash only
    assert not re.search(r"\b(src|href|action)\s*=", text, re.I)
    assert "http://" not in text and "https://" not in text
    assert text.count("<script") == 1 and "<script>" in text
    for call in ("fetch(", "XMLHttpRequest", "innerHTML", "eval(", "import(", "WebSocket"):
        assert call not in text
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    assert SCRIPT in text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and f"script-src 'sha256-{digest}'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"


def test_the_host_check_still_applies(anon: TestClient[Litestar]) -> None:
    error(anon.get("/", headers={"Host": "evil.example.com"}), 403, field="host")


def test_only_get_changed_at_the_root(anon: TestClient[Litestar]) -> None:
    posted = anon.post("/", json={})
    assert posted.status_code in (404, 405)
    assert posted.headers["content-type"].startswith("application/json")
    assert anon.get("/x.html").headers["content-type"].startswith("application/json")


def test_the_openapi_names_it_as_html(anon: TestClient[Litestar]) -> None:
    doc = anon.get("/schema/openapi.json").json()
    content = doc["paths"]["/"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/html"]
    assert "security" not in doc["paths"]["/"]["get"] or doc["paths"]["/"]["get"]["security"] == []


NODE = shutil.which("node")

DOCUMENT = """
const els = {asked: {textContent: ""}, cmd: {textContent: ""}, link: {hidden: true}};
const document = {getElementById: (id) => els[id]};
const location = {hash: HASH};
SCRIPT
console.log(JSON.stringify(els));
"""


@pytest.mark.skipif(NODE is None, reason="node runs the page's script")
@pytest.mark.parametrize(
    ("hash_", "asked", "cmd"),
    [
        ("#/experiments/3/runs/12", "run 12 (experiment 3)", "mlbox runs show 12"),
        ("#/experiments/0", "experiment 0", "mlbox runs ls --experiment Default"),
        ("#/experiments/5", "experiment 5", "mlbox experiments ls"),
        ("#/experiments/1/runs/%3Cb%3Ex", "run <b>x", "mlbox runs show <b>x"),  # text, never HTML
        ("", None, None),
    ],
)
def test_the_script_names_the_linked_run_as_text(hash_: str, asked: str | None, cmd: str | None) -> None:
    assert NODE is not None
    program = DOCUMENT.replace("HASH", json.dumps(hash_)).replace("SCRIPT", SCRIPT)
    done = subprocess.run([NODE, "-e", program], capture_output=True, text=True, timeout=30, check=True)
    els: dict[str, Any] = json.loads(done.stdout)
    if asked is None:
        assert els["link"]["hidden"] is True and els["cmd"]["textContent"] == ""
        return
    assert els["link"]["hidden"] is False
    assert asked in els["asked"]["textContent"] and els["cmd"]["textContent"].startswith(str(cmd))
