"""The notebook service's pure parts: the idle decision, parameters, the offline HTML, settings."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from mlbox.notebooks.config import NotebookSettings
from mlbox.notebooks.export import strip_remote, to_html
from mlbox.notebooks.idle import KernelActivity, ServerActivity, decide, parse_time
from mlbox.notebooks.params import INJECTED_TAG, inject_parameters, parameters_source, parse_assignments
from mlbox.store.errors import InvalidInput

T0 = 1_700_000_000.0


def idle_server(last: float, *states: tuple[str, float]) -> ServerActivity:
    return ServerActivity(last_activity=last, kernels=tuple(KernelActivity(s, t) for s, t in states))


class TestDecide:
    def test_idle_past_the_timeout_is_culled(self) -> None:
        v = decide(now=T0 + 61, since=T0, server=idle_server(T0), gpu_utilization=[], timeout_s=60)
        assert v.cull and not v.busy and v.last_activity == T0

    def test_idle_within_the_timeout_is_kept(self) -> None:
        v = decide(now=T0 + 59, since=T0, server=idle_server(T0), gpu_utilization=[], timeout_s=60)
        assert not v.cull

    def test_browser_activity_restarts_the_clock(self) -> None:
        v = decide(now=T0 + 100, since=T0, server=idle_server(T0 + 50), gpu_utilization=[], timeout_s=60)
        assert not v.cull and v.last_activity == T0 + 50

    def test_idle_kernel_activity_counts(self) -> None:
        server = idle_server(T0, ("idle", T0 + 90))
        v = decide(now=T0 + 100, since=T0, server=server, gpu_utilization=[], timeout_s=60)
        assert not v.cull and v.last_activity == T0 + 90

    @pytest.mark.parametrize("state", ["busy", "starting", "restarting"])
    def test_a_busy_kernel_is_never_culled(self, state: str) -> None:
        # A cell started a day ago and still running: the server lives.
        server = idle_server(T0, ("idle", T0), (state, T0))
        v = decide(now=T0 + 86_400, since=T0, server=server, gpu_utilization=[], timeout_s=60)
        assert not v.cull and v.busy and v.last_activity == T0 + 86_400

    def test_gpu_work_keeps_it(self) -> None:
        v = decide(
            now=T0 + 1000, since=T0, server=idle_server(T0), gpu_utilization=[None, 87.0], timeout_s=60
        )
        assert not v.cull and v.busy

    def test_simulated_and_quiet_gpus_are_idle(self) -> None:
        v = decide(
            now=T0 + 1000, since=T0, server=idle_server(T0), gpu_utilization=[None, 0.0, 2.0], timeout_s=60
        )
        assert v.cull

    def test_no_answer_is_no_evidence(self) -> None:
        v = decide(now=T0 + 10_000, since=T0, server=None, gpu_utilization=[], timeout_s=60)
        assert not v.cull and v.last_activity == T0

    def test_known_activity_is_not_forgotten(self) -> None:
        # The server restarted its clock to an older time than already seen: keep the newer.
        v = decide(now=T0 + 100, since=T0 + 80, server=idle_server(T0), gpu_utilization=[], timeout_s=60)
        assert not v.cull and v.last_activity == T0 + 80

    def test_dead_kernels_do_not_keep_it(self) -> None:
        server = idle_server(T0, ("dead", T0))
        assert decide(now=T0 + 61, since=T0, server=server, gpu_utilization=[], timeout_s=60).cull


def test_parse_time() -> None:
    assert parse_time("2024-05-01T10:00:00.500000Z") == pytest.approx(1714557600.5)
    assert parse_time("2024-05-01T10:00:00+00:00") == pytest.approx(1714557600.0)
    assert parse_time("garbage") is None
    assert parse_time(None) is None


class TestParams:
    def test_values_are_parsed_as_json_else_text(self) -> None:
        got = parse_assignments(["lr=0.1", "epochs=3", "flag=true", "name=digits", "xs=[1, 2]", "empty="])
        assert got == {"lr": 0.1, "epochs": 3, "flag": True, "name": "digits", "xs": [1, 2], "empty": ""}

    @pytest.mark.parametrize("item", ["novalue", "1x=2", "class=3", "a-b=1"])
    def test_bad_assignments_name_the_field(self, item: str) -> None:
        with pytest.raises(InvalidInput) as err:
            parse_assignments([item])
        assert err.value.field == "params"

    def test_non_json_values_are_refused(self) -> None:
        with pytest.raises(InvalidInput):
            parameters_source({"x": object()})
        with pytest.raises(InvalidInput):
            parameters_source({"x": float("nan")})

    def test_source_is_python(self) -> None:
        src = parameters_source({"a": 1, "b": "it's", "c": None, "d": {"k": [True, 1.5]}})
        ns: dict[str, object] = {}
        exec(src, ns)
        assert (ns["a"], ns["b"], ns["c"], ns["d"]) == (1, "it's", None, {"k": [True, 1.5]})

    def test_injected_after_the_parameters_cell_and_replaced_on_rerun(self) -> None:
        nb = nbformat.v4.new_notebook()
        nb.cells = [
            nbformat.v4.new_code_cell("import os"),
            nbformat.v4.new_code_cell("alpha = 1", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("print(alpha)"),
        ]
        inject_parameters(nb, {"alpha": 2})
        inject_parameters(nb, {"alpha": 3})
        assert [c.source for c in nb.cells][:2] == ["import os", "alpha = 1"]
        assert INJECTED_TAG in nb.cells[2].metadata["tags"] and "alpha = 3" in nb.cells[2].source
        assert len(nb.cells) == 4

    def test_injected_at_the_top_without_a_parameters_cell(self) -> None:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("print(alpha)")]
        inject_parameters(nb, {"alpha": 2})
        assert nb.cells[0].source.endswith("alpha = 2\n") and len(nb.cells) == 2


class TestOfflineHtml:
    REMOTE = re.compile(r"""<(?:script|link)\b[^>]*(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)

    def test_strip_remote_keeps_local_things(self) -> None:
        html = (
            "<script src=\"https://cdn.example/a.js\"></script><script src='//cdn/b.js'/>"
            '<link rel="stylesheet" href="http://x/y.css"><style>@import url("https://f/x.css");</style>'
            '<script type="module">import m from "https://cdn/m.mjs"; m.go()</script>'
            '<script src="local.js"></script><a href="https://docs.example">docs</a>'
        )
        out = strip_remote(html)
        assert not self.REMOTE.search(out) and "@import" not in out and "cdn/m.mjs" not in out
        assert '<script src="local.js"></script>' in out and 'href="https://docs.example"' in out
        assert "m.go()" in out

    def test_export_has_no_cdn_even_with_math_and_remote_outputs(self) -> None:
        nb = nbformat.v4.new_notebook()
        output = nbformat.v4.new_output(
            "display_data",
            {"text/html": '<script src="https://cdn.plot.ly/plotly.min.js"></script><b>plot</b>'},
        )
        nb.cells = [
            nbformat.v4.new_markdown_cell("$e^{i\\pi} + 1 = 0$"),
            nbformat.v4.new_code_cell("show()", outputs=[output]),
        ]
        nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
        html = to_html(nb)
        assert "<b>plot</b>" in html and '<span class="n">show</span>' in html
        assert not self.REMOTE.search(html)
        assert "cdnjs" not in html and "cdn.plot.ly" not in html and "unpkg" not in html
        assert not re.search(r"""import\s[^;]*["']https?://""", html)


def test_settings_from_env() -> None:
    s = NotebookSettings.from_env({"MLBOX_NOTEBOOK_IDLE_S": "120", "MLBOX_NOTEBOOK_POLL_S": "0.5"})
    assert (s.idle_s, s.poll_s) == (120.0, 0.5)
    assert NotebookSettings.from_env({}).idle_s == 3600.0
    with pytest.raises(InvalidInput) as err:
        NotebookSettings.from_env({"MLBOX_NOTEBOOK_IDLE_S": "soon"})
    assert err.value.field == "MLBOX_NOTEBOOK_IDLE_S"
    with pytest.raises(InvalidInput):
        NotebookSettings.from_env({"MLBOX_NOTEBOOK_IDLE_S": "-1"})


def test_migrations_build_the_table_once(tmp_path: Path) -> None:
    from mlbox.notebooks.migrations import migrations
    from mlbox.store.db import Database

    db = Database(tmp_path / "nb.db")
    assert migrations.apply(db) == ["m001_notebooks"]
    assert migrations.apply(db) == []
    columns = {r["name"] for r in db.query("PRAGMA table_info(notebooks)")}
    assert columns == {
        "id", "job_id", "state", "gpus", "root_dir", "token", "port", "idle_timeout_s",
        "created_at", "started_at", "last_activity", "busy", "finished_at", "message",
    }  # fmt: skip


def test_first_error_names_the_cell_that_raised() -> None:
    from mlbox.notebooks.cells import CellError, first_error

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1", outputs=[]),
        nbformat.v4.new_code_cell(
            "\n" + "y = 1 / 0  # " + "z" * 80,
            outputs=[nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero")],
        ),
        nbformat.v4.new_code_cell("raise ValueError('later')", outputs=[]),
    ]
    error = first_error(nb)
    assert error is not None and (error.ename, error.evalue) == ("ZeroDivisionError", "division by zero")
    assert len(error.source) == 60 and error.source.startswith("y = 1 / 0") and error.source.endswith("…")
    assert error.line().startswith("ZeroDivisionError: division by zero (in the cell: y = 1 / 0")
    assert first_error(nbformat.v4.new_notebook()) is None
    assert CellError("E", "v", "").line() == "E: v"
