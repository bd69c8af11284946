"""An executed notebook as one self-contained HTML page that loads nothing from a network.

nbconvert's ``lab`` template pulls require.js, MathJax, mermaid and the widget
manager from a CDN; mlbox runs offline, so a template derived from it drops
those blocks (CSS is inlined by nbconvert already). Outputs may carry their
own remote references (a plotting library's ``<script src="https://…">``),
so whatever remote script, stylesheet or import survives is stripped last.
Math then shows as its TeX source, which reads fine.
"""

from __future__ import annotations

import re
from typing import Any

OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
"""

_REMOTE = r"""["']?\s*(?:https?:)?//"""
_SCRIPT_SRC = re.compile(
    r"<script\b[^>]*\bsrc\s*=\s*" + _REMOTE + r"[^>]*>(?:(?!<script\b)[\s\S])*?</script\s*>", re.I
)
_SCRIPT_SRC_OPEN = re.compile(r"<script\b[^>]*\bsrc\s*=\s*" + _REMOTE + r"[^>]*/?>", re.I)
_LINK_HREF = re.compile(r"<link\b[^>]*\bhref\s*=\s*" + _REMOTE + r"[^>]*>", re.I)
_IMPORT_URL = re.compile(r"""@import\s+(?:url\()?\s*["']?\s*(?:https?:)?//[^;]*;?""", re.I)
_JS_IMPORT = re.compile(r"""\bimport\s*(?:[\w*{}\s,]+from\s*)?\(?\s*["'](?:https?:)?//[^"']*["']\)?;?""")


def strip_remote(html: str) -> str:
    """Remove every remote ``<script src>``, ``<link href>``, CSS ``@import`` and JS module import."""
    for pattern in (_SCRIPT_SRC, _SCRIPT_SRC_OPEN, _LINK_HREF, _IMPORT_URL, _JS_IMPORT):
        html = pattern.sub("", html)
    return html


def to_html(nb: Any) -> str:
    """The notebook as offline HTML (images embedded, no CDN)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[DictLoader({"mlbox_offline.html.j2": OFFLINE_TEMPLATE})],
        template_file="mlbox_offline.html.j2",
        embed_images=True,
    )
    body, _resources = exporter.from_notebook_node(nb)
    return strip_remote(body)
