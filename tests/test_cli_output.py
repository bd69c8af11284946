"""How the CLI prints: listings through one rich table helper, progress through one rich bar.

A listing always prints its header, also when it has no rows (then one line
says so), and printed to a pipe it is plain aligned text, one row a line, that
a script splits on whitespace. The commands run in process against a real home
under tmp_path; the source check reads the package's own files.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mlbox.cli.context import print_table
from mlbox.services import Services
from tests.helpers import ok

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("argv", "header", "empty"),
    [
        (["runs", "ls"], ["ID", "EXPERIMENT", "NAME", "STATUS", "STARTED", "METRICS"], "no runs yet"),
        (["runs", "ls", "-f", "metrics.acc > 1"], ["ID", "EXPERIMENT"], "no runs match"),
        (["experiments", "ls"], ["ID", "NAME", "RUNS", "CREATED"], "no experiments yet"),
        (["models", "ls"], ["NAME", "LATEST", "VERSIONS", "CREATED", "ALIASES"], "no models yet"),
        (["features", "ls"], ["ENTITY", "JOIN", "KEYS"], "no entities yet"),
        (["sweeps", "ls"], ["ID", "NAME", "STATE", "TRIALS", "METRIC", "BEST", "CREATED"], "no sweeps yet"),
        (
            ["jobs", "ls"],
            ["ID", "STATE", "NAME", "GPUS", "PRI", "TRY", "CREATED", "TIME", "MESSAGE"],
            "no jobs",
        ),
    ],
)
def test_an_empty_listing_prints_its_header_and_says_so(
    capsys: pytest.CaptureFixture[str], home: Path, argv: list[str], header: list[str], empty: str
) -> None:
    lines = ok(capsys, *argv, quiet=True).splitlines()
    assert lines[0].split()[: len(header)] == header, lines
    assert lines[1].startswith(empty), lines


def test_empty_views_and_alias_history_keep_their_headers(
    capsys: pytest.CaptureFixture[str], services: Services
) -> None:
    listing = ok(capsys, "features", "ls").splitlines()
    views = listing.index("") + 1
    assert listing[views].split() == ["VIEW", "VERSION", "OF", "TTL", "FEATURES", "FRESHNESS"]
    assert listing[views + 1].startswith("no features yet; register definitions with: mlbox features apply")
    services.registry.register("m", model=_Double(), options={})
    history = ok(capsys, "models", "history", "m").splitlines()
    assert history == ["WHEN  ALIAS  FROM  TO  NOTE", "no alias moves yet"]


class _Double:
    def predict(self, x: object) -> object:
        return x


def test_a_table_in_a_pipe_is_plain_aligned_text_that_never_wraps(capsys: pytest.CaptureFixture[str]) -> None:
    long = "acc=0.91  " * 40
    count = print_table(
        ["ID", "NAME", "METRICS"], [[7, "alpha", long], [123, "b", None]], empty="-", right={"ID"}
    )
    lines = capsys.readouterr().out.splitlines()
    assert count == 2 and len(lines) == 3  # a 400-character cell stays on its row
    assert lines[0] == " ID  NAME   METRICS"  # a right-aligned column aligns its header too
    assert lines[1].startswith("  7  alpha  acc=0.91") and lines[1] == lines[1].rstrip()
    assert lines[2] == "123  b"  # an empty last cell leaves no trailing spaces
    assert "\x1b[" not in "".join(lines)  # no colour codes in a pipe


def _progress_uses(path: Path) -> list[str]:
    """Progress bars drawn by anything but rich: tqdm, click.progressbar, or a hand-made ``\\r`` counter."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            if any(n.split(".")[0] in {"tqdm", "alive_progress", "progressbar", "enlighten"} for n in names):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: a progress library other than rich")
        elif isinstance(node, ast.Attribute) and node.attr == "progressbar":
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: click.progressbar")
        elif isinstance(node, ast.Call) and _redraws(node):
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: a hand-made carriage-return counter")
    return found


def _redraws(call: ast.Call) -> bool:
    """A print, echo or write that starts its text with a carriage return, or ends it with one."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name not in {"print", "echo", "secho", "write"}:
        return False

    def starts_with_cr(node: ast.expr) -> bool:
        if isinstance(node, ast.JoinedStr) and node.values:
            node = node.values[0]
        return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("\r")

    ends = any(
        k.arg == "end" and isinstance(k.value, ast.Constant) and k.value.value == "\r" for k in call.keywords
    )
    return ends or any(starts_with_cr(a) for a in call.args[:1])


def test_every_progress_bar_is_rich() -> None:
    found = [
        hit
        for root in ("mlbox", "tui")
        for p in sorted((REPO / root).rglob("*.py"))
        for hit in _progress_uses(p)
    ]
    assert not found, "\n".join(found)


def test_table_cells_show_control_characters_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    """A run named with an escape sequence cannot drive the terminal that lists it."""
    print_table(("NAME",), [("evil\x1b]0;pwned\x07\x1b[2Jname",)], empty="none")
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "evil\\x1b]0;pwned\\x07\\x1b[2Jname" in out
