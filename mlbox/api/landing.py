"""``GET /``: a small page for a person who opened mlbox's address in a browser.

MLflow's client prints "View run NAME at: http://127.0.0.1:PORT/#/experiments/E/runs/R"
after each run, and people click it. mlbox has no web UI (its UI is the terminal
one), so this page says so and names the commands that show that run or
experiment. It is the API's one HTML answer, and it stays inert:

* self-contained: inline style, no links to load, nothing fetched; a
  Content-Security-Policy allows only its own inline script (by hash), and no
  request at all (``default-src 'none'``);
* the script only reads ``location.hash`` (which the browser never sends, so
  the server cannot) and writes it back as text (``textContent``, never HTML);
* open without the token (it shows no data) but behind the Host check like
  every route (`mlbox.api.security.ALWAYS_OPEN`).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from litestar import Controller, MediaType, Response, get

SCRIPT = """
var m = /^#\\/experiments\\/([^/?#]+)(?:\\/runs\\/([^/?#]+))?/.exec(location.hash);
if (m) {
  var exp = decodeURIComponent(m[1]), run = m[2] && decodeURIComponent(m[2]);
  var what = run ? "run " + run + " (experiment " + exp + ")" : "experiment " + exp;
  var cmd = run ? "mlbox runs show " + run
          : exp === "0" ? "mlbox runs ls --experiment Default    (MLflow's experiment 0)"
          : "mlbox experiments ls    (then: mlbox runs ls --experiment NAME)";
  document.getElementById("asked").textContent = "You followed a link to " + what + ". See it with:";
  document.getElementById("cmd").textContent = cmd;
  document.getElementById("link").hidden = false;
}
""".strip()
"""Names the run or experiment of an MLflow link; touches nothing but this page's text."""

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()

PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>mlbox</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 42em; margin: 3em auto; padding: 0 1em; }}
code, pre {{ background: #f2f2f2; padding: 0.1em 0.3em; }}
</style>
</head>
<body>
<h1>mlbox</h1>
<p>This is an mlbox appliance. It has no web UI: its UI runs in a terminal.</p>
<div id="link" hidden>
<p id="asked"></p>
<pre id="cmd"></pre>
</div>
<p>On the machine that runs it:</p>
<ul>
<li><code>mlbox</code> opens the terminal UI (key <code>1</code>: Experiments and their runs,
<code>2</code>: Models).</li>
<li><code>mlbox runs show ID</code> shows a run; <code>mlbox runs ls</code> lists runs;
<code>mlbox experiments ls</code> lists experiments.</li>
<li><code>mlbox models show NAME</code> shows a registered model and its lineage.</li>
</ul>
<p>Programs talk to its HTTP API (token in <code>$MLBOX_HOME/token</code>); its description
is <code>/schema/openapi.json</code>. MLflow clients use <code>/api/2.0/mlflow</code>.</p>
<script>
{SCRIPT}
</script>
</body>
</html>
"""

HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{_SCRIPT_HASH}';"
        " base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


async def _keep(response: Response[Any]) -> Response[Any]:
    """This route's own after-request hook: the app's (`mlbox.api.app.no_html`) turns HTML into a
    JSON 404, and Litestar uses the hook closest to the handler."""
    return response


class LandingController(Controller):
    path = "/"
    tags = ("landing",)

    @get(
        operation_id="landing",
        media_type=MediaType.HTML,
        sync_to_thread=False,
        summary="A page for a browser: mlbox has no web UI, and how to see a run",
        after_request=_keep,
    )
    def landing(self) -> Response[str]:
        return Response(PAGE, media_type=MediaType.HTML, headers=HEADERS)
