"""Artifact preview in run detail (issue 18): text, JSON, YAML, CSV and Parquet as a table,
images in half-block cells, HTML named with the command that saves it to open."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from mlbox.services import Services
from mlbox.tui.app import MlboxApp, make_app
from mlbox.tui.screens.run_detail import RunDetailScreen
from mlbox.tui.views import artifact_preview as ap
from mlbox.tui.widgets.artifact_preview import ArtifactPreview
from tests.test_tui import SIZE, T0, app_for, settle

Snap = Callable[..., bool]


def png(width: int = 8, height: int = 4) -> bytes:
    img = Image.new("RGB", (width, height))
    for x in range(width):
        for y in range(height):
            img.putpixel((x, y), (255, 0, 0) if y < height // 2 else (0, 0, 255))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def parquet() -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2, 3], "score": [0.5, 0.25, 1 / 3], "name": ["a", "[b]", None]}), out)
    return out.getvalue()


ARTIFACTS = {
    "config.json": json.dumps({"lr": 0.01, "layers": [64, 32]}).encode(),
    "params.yaml": b"lr: 0.01\nlayers: [64, 32]\n",
    "preds.csv": b"id,label,score\n1,cat,0.9\n2,[dog],0.8\n",
    "preds.parquet": parquet(),
    "report.html": b"<html><body>report</body></html>",
    "sample.png": png(),
    "notes.txt": b"first line\n[bold]not markup[/bold]\n",
}


def test_previews_by_kind() -> None:
    p = ap.preview("config.json", ARTIFACTS["config.json"], run_id=1)
    assert p.text is not None and '"layers": [\n    64,' in p.text.plain
    p = ap.preview("preds.csv", ARTIFACTS["preds.csv"], run_id=1)
    assert p.columns == ["id", "label", "score"] and p.rows[1] == ["2", "[dog]", "0.8"]
    p = ap.preview("preds.parquet", ARTIFACTS["preds.parquet"], run_id=1)
    assert p.columns == ["id", "score", "name"] and p.rows[2] == ["3", "0.333333", ""]
    assert "3 rows" in p.note
    p = ap.preview("sample.png", ARTIFACTS["sample.png"], run_id=1, width=80)
    assert p.text is not None and p.text.plain == "▀" * 8 + "\n" + "▀" * 8 + "\n"
    styles = {str(span.style) for span in p.text.spans}
    assert any("#ff0000 on #ff0000" in s for s in styles) and any("#0000ff on #0000ff" in s for s in styles)
    p = ap.preview("report.html", ARTIFACTS["report.html"], run_id=7)
    assert "mlbox runs artifacts 7 report.html -o report.html" in p.note
    p = ap.preview("weights.bin", b"\x00\x01" * 10, run_id=7)
    assert p.text is None and "binary" in p.note
    p = ap.preview("broken.png", b"not an image", run_id=7)
    assert p.text is not None and p.text.plain.startswith("cannot preview")
    p = ap.preview("big.txt", b"x" * 10, run_id=7, truncated=True)
    assert "first 1 MiB" in p.note


@pytest.fixture
def with_artifacts(services: Services) -> Services:
    run = services.tracking.create_run("art", "r", now=T0)
    for path, data in ARTIFACTS.items():
        services.tracking.log_artifact_bytes(run.id, path, data)
    services.tracking.end_run(run.id, now=T0 + 5)
    return services


async def open_artifact(pilot: Pilot[None], path: str) -> ArtifactPreview:
    app = pilot.app
    app.push_screen(RunDetailScreen(1))
    await settle(pilot)
    app.screen.query_one("#info").active = "tab-artifacts"  # type: ignore[attr-defined]
    await pilot.pause()
    table = app.screen.query_one("#artifacts", DataTable)
    table.focus()
    table.move_cursor(row=sorted(ARTIFACTS).index(path))
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(app.screen, ArtifactPreview), app.screen
    return app.screen


async def test_enter_on_an_artifact_previews_it(with_artifacts: Services) -> None:
    app = app_for(with_artifacts)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        shown = await open_artifact(pilot, "preds.parquet")
        table = shown.query_one("#preview-table", DataTable)
        assert table.row_count == 3 and str(table.get_row_at(2)[1]) == "0.333333"
        await pilot.press("escape")
        assert isinstance(app.screen, RunDetailScreen)
        app.pop_screen()
        shown = await open_artifact(pilot, "notes.txt")
        body = shown.query_one("#preview-text", Static)
        assert "[bold]not markup[/bold]" in str(body.render())  # shown literally


@pytest.fixture
def app(with_artifacts: Services, utc: None) -> MlboxApp:
    return make_app(with_artifacts, home="~/.mlbox", refresh_s=3600, live_s=3600, build_ahead=False)


@pytest.mark.parametrize("size", [(160, 48), (100, 30)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("path", ["sample.png", "preds.csv"])
def test_preview_snapshots(app: MlboxApp, size: tuple[int, int], path: str, snap_compare: Snap) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await open_artifact(pilot, path)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
