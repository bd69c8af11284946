"""Nothing in mlbox reaches for the network: no external URL in the installed package's sources,
styles and templates (beyond the few listed below, each with why it fetches nothing), and no
page mlbox produces loads anything from outside (scripts, styles, fonts, images, imports)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mlbox

PACKAGE = Path(mlbox.__file__).resolve().parent
ROOTS = {"mlbox": PACKAGE, "store": (PACKAGE / "store").resolve(), "tui": (PACKAGE / "tui").resolve()}
TEXT = {
    ".py",
    ".tcss",
    ".css",
    ".html",
    ".j2",
    ".js",
    ".json",
    ".md",
    ".txt",
    ".yaml",
    ".yml",
    ".toml",
    ".svg",
}

URL = re.compile(r"\b(?:https?|wss?|ftp)://[^\s\"'`<>()\\]+", re.IGNORECASE)
LOOPBACK = re.compile(
    r"(?:https?|wss?)://(?:127\.\d+\.\d+\.\d+|localhost|\[::1\]|0\.0\.0\.0)(?:[:/]|$)", re.I
)
TEMPLATE = re.compile(r"(?:https?|wss?)://(?:\{|[A-Z][A-Z_]*(?![\w.-]))")
"""``http://{host}:{port}`` (an address the code builds: the appliance's own URL) or
``http://HOST:PORT`` (a placeholder in a message or docstring): not a place."""

ALLOWED: dict[tuple[str, str], str] = {
    (
        "mlbox/notebooks/export.py",
        "https://…",
    ): "the docstring says which remote references the export strips",
}
"""(file, URL) pairs that stay, with the reason each one fetches nothing."""

LOADING = re.compile(
    r"""(?:\b(?:src|href|action|poster|data|srcset)\s*=\s*["']?|url\(\s*["']?|@import\s+["']?|\bimport\s*\(?\s*["'])"""
    r"""((?:https?|wss?)?:?//[^"')\s>]+)""",
    re.IGNORECASE,
)
"""A reference a browser follows on its own: an attribute that loads, a CSS url()/@import, a JS
import. A bare ``//host/x`` counts: it is the page's scheme to a remote host."""


def external_urls(text: str) -> list[str]:
    """The URLs in ``text`` that name a place outside this machine."""
    return [u for u in URL.findall(text) if not LOOPBACK.match(u) and not TEMPLATE.match(u)]


def remote_loads(html: str) -> list[str]:
    """What a page would fetch from outside this machine when opened."""
    found = []
    for ref in LOADING.findall(html):
        remote = ref.startswith("//") or re.match(r"(?:https?|wss?)://", ref, re.I)
        if remote and not LOOPBACK.match(ref if "://" in ref else "http:" + ref):
            found.append(ref)
    return found


def _sources() -> list[tuple[str, Path]]:
    files = []
    for name, root in ROOTS.items():
        for path in sorted(root.rglob("*")):
            if "__pycache__" in path.parts or not path.is_file() or path.suffix not in TEXT:
                continue
            rel = f"{name}/{path.relative_to(root)}"  # rglob does not follow mlbox/store, mlbox/tui
            files.append((rel, path))
    return files


def test_the_scanners_find_what_they_look_for() -> None:
    sample = (
        'see https://cdn.example.com/x.js and http://127.0.0.1:5151/v2 and f"http://{host}:{port}"'
        " and http://HOST:PORT but http://Example.org/"
    )
    assert external_urls(sample) == ["https://cdn.example.com/x.js", "http://Example.org/"]
    page = (
        '<script src="https://cdn.jsdelivr.net/a.js"></script><link href=//fonts.example/x.css>'
        "<style>@import url('https://x.example/y.css'); b{background:url(http://127.0.0.1/i.png)}</style>"
        '<svg xmlns="http://www.w3.org/2000/svg"></svg><img src="data:image/png;base64,AAAA">'
    )
    assert remote_loads(page) == [
        "https://cdn.jsdelivr.net/a.js",
        "//fonts.example/x.css",
        "https://x.example/y.css",
    ]


def test_no_external_url_in_the_installed_package() -> None:
    files = _sources()
    assert len(files) > 100 and any(rel.startswith("store/") for rel, _ in files)
    assert any(rel.startswith("tui/") for rel, _ in files)
    found = {(rel, url) for rel, path in files for url in external_urls(path.read_text(errors="replace"))}
    unexpected = sorted(found - set(ALLOWED))
    assert not unexpected, (
        f"external URLs (add to ALLOWED with a reason only if nothing fetches them): {unexpected}"
    )
    stale = sorted(set(ALLOWED) - found)
    assert not stale, f"ALLOWED names URLs no longer there: {stale}"


def test_an_exported_notebook_loads_nothing_from_outside() -> None:
    nbformat = pytest.importorskip("nbformat")
    from mlbox.notebooks.export import to_html

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("plot()")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={
                "text/html": '<script src="https://cdn.plot.ly/plotly-2.js"></script><div id="p"></div>'
                '<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">',
                "text/plain": "<Figure>",
            },
        )
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title\n$x^2$"), cell]
    html = to_html(nb)
    assert '<div id="p"></div>' in html  # the output itself is kept
    assert remote_loads(html) == []
