"""A self-contained HTML report of one evaluation: inline SVG plots, inline CSS, no script and
no external reference of any kind (tests search it for ``http://`` and ``https://``).

Pure: an `Evaluation` and the values of the drifted features in, text out. Every
user string goes through `html.escape`.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Mapping, Sequence

import numpy as np

from mlbox.monitoring.schemas import Evaluation

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1em 0}th,td{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}.drift{color:#b00020;font-weight:bold}.ok{color:#1b5e20}
h2{margin-top:2em;border-bottom:2px solid #444}.plots{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0}figcaption{font-size:90%;text-align:center}
"""

W, H = 320, 160


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}g}"


def histogram_svg(reference: np.ndarray, current: np.ndarray, title: str, bins: int = 30) -> str:
    """Two overlaid density histograms (reference grey, current red) as an SVG element."""
    ref = reference[np.isfinite(reference)]
    cur = current[np.isfinite(current)]
    both = np.concatenate([ref, cur])
    if both.size == 0:
        return ""
    lo, hi = float(both.min()), float(both.max())
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    r = np.histogram(ref, edges)[0] / max(ref.size, 1)
    c = np.histogram(cur, edges)[0] / max(cur.size, 1)
    top = max(float(r.max(initial=0)), float(c.max(initial=0)), 1e-12)
    bw = W / bins
    bars = []
    for i in range(bins):
        for share, color in ((r[i], "#9e9e9e"), (c[i], "#d32f2f")):
            h = (H - 20) * share / top
            bars.append(
                f'<rect x="{i * bw:.1f}" y="{H - 20 - h:.1f}" width="{bw:.1f}" height="{h:.1f}"'
                f' fill="{color}" fill-opacity="0.55"/>'
            )
    axis = (
        f'<text x="0" y="{H - 4}" font-size="10">{_num(lo, 3)}</text>'
        f'<text x="{W}" y="{H - 4}" font-size="10" text-anchor="end">{_num(hi, 3)}</text>'
    )
    return (
        f'<figure><svg width="{W}" height="{H}" role="img">'
        + "".join(bars)
        + axis
        + f"</svg><figcaption>{_e(title)} (grey reference, red current)</figcaption></figure>"
    )


def line_svg(
    points: Sequence[tuple[float, float | None]], series: Mapping[str, Sequence[float | None]]
) -> str:
    """A small line chart of several series over the same x positions (None: a gap)."""
    if not points:
        return ""
    colors = ["#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a"]
    n = len(points)
    paths = []
    legend = []
    for k, (name, values) in enumerate(series.items()):
        color = colors[k % len(colors)]
        pts = [
            (20 + (W * 2 - 40) * (i / max(n - 1, 1)), 10 + (H - 30) * (1 - float(v)))
            for i, v in enumerate(values)
            if v is not None and math.isfinite(v)
        ]
        if pts:
            d = " ".join(f"{'M' if j == 0 else 'L'}{x:.1f},{y:.1f}" for j, (x, y) in enumerate(pts))
            paths.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="2"/>')
            paths += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>' for x, y in pts]
        legend.append(f'<tspan fill="{color}">■ {_e(name)}</tspan> ')
    grid = "".join(
        f'<line x1="20" x2="{W * 2 - 20}" y1="{10 + (H - 30) * (1 - g):.1f}" y2="{10 + (H - 30) * (1 - g):.1f}"'
        f' stroke="#eee"/><text x="0" y="{14 + (H - 30) * (1 - g):.1f}" font-size="9">{g:.1f}</text>'
        for g in (0.0, 0.5, 1.0)
    )
    return (
        f'<svg width="{W * 2}" height="{H + 10}" role="img">{grid}{"".join(paths)}'
        f'<text x="20" y="{H + 6}" font-size="11">{"".join(legend)}</text></svg>'
    )


def render(
    evaluation: Evaluation,
    distributions: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    *,
    title: str | None = None,
    generated: float | None = None,
) -> str:
    ev = evaluation
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(generated or time.time()))
    name = title or f"{ev.model} version {ev.version}"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Monitoring report: {_e(name)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Monitoring report: {_e(name)}</h1>",
        f"<p>{ev.rows} logged rows checked against the stored reference; generated {when}.</p>",
        "<h2>Summary</h2><table>",
        f"<tr><th>features drifted</th><td class='num'>{sum(v.drifted for v in ev.drift)} of {len(ev.drift)}"
        f" ({ev.drift_share:.0%})</td></tr>",
        f"<tr><th>outlier rate</th><td class='num'>{ev.outlier_rate:.2%}</td></tr>",
        f"<tr><th>labelled rows</th><td class='num'>{ev.performance.labelled}</td></tr>",
        f"<tr><th>accuracy (realised)</th><td class='num'>{_num(ev.performance.accuracy)}</td></tr>",
        f"<tr><th>accuracy (estimated, CBPE)</th><td class='num'>{_num(ev.performance.estimated_accuracy)}</td></tr>",
        f"<tr><th>F1 (macro)</th><td class='num'>{_num(ev.performance.f1)}</td></tr>",
        f"<tr><th>ROC AUC</th><td class='num'>{_num(ev.performance.roc_auc)}</td></tr>",
    ]
    if ev.performance.rmse is not None:
        parts.append(
            f"<tr><th>RMSE / MAE</th><td class='num'>{_num(ev.performance.rmse)} / {_num(ev.performance.mae)}</td></tr>"
        )
    if ev.prediction_drift is not None:
        pdv = ev.prediction_drift
        parts.append(
            f"<tr><th>prediction drift</th><td>{'drifted' if pdv.drifted else 'stable'}"
            f" ({_e(pdv.test)} {_num(pdv.statistic)})</td></tr>"
        )
    parts.append("</table>")
    parts.append("<h2>Drift per feature</h2><table><tr><th>column</th><th>test</th><th>statistic</th>"
                 "<th>p-value</th><th>threshold</th><th>verdict</th></tr>")  # fmt: skip
    for v in ev.drift:
        verdict = "<span class='drift'>drifted</span>" if v.drifted else "<span class='ok'>ok</span>"
        parts.append(
            f"<tr><td>{_e(v.column)}</td><td>{_e(v.test)}</td><td class='num'>{_num(v.statistic)}</td>"
            f"<td class='num'>{_num(v.p_value)}</td><td class='num'>{_num(v.threshold)}</td><td>{verdict}</td></tr>"
        )
    parts.append("</table>")
    if distributions:
        parts.append("<h2>Distributions of the drifted features</h2><div class='plots'>")
        for column, (ref, cur) in distributions.items():
            parts.append(histogram_svg(np.asarray(ref, np.float64), np.asarray(cur, np.float64), column))
        parts.append("</div>")
    parts.append("<h2>Data quality</h2>")
    problems = ev.quality.problems
    if problems:
        parts.append("<ul>" + "".join(f"<li>{_e(p)}</li>" for p in problems) + "</ul>")
    else:
        parts.append("<p>No data-quality problems.</p>")
    parts.append("<h2>Performance over time</h2>")
    if ev.over_time:
        parts.append(
            line_svg(
                [(b.start, None) for b in ev.over_time],
                {
                    "accuracy (realised)": [b.performance.accuracy for b in ev.over_time],
                    "accuracy (estimated)": [b.performance.estimated_accuracy for b in ev.over_time],
                },
            )
        )
        parts.append("<table><tr><th>from</th><th>to</th><th>rows</th><th>labelled</th><th>accuracy</th>"
                     "<th>estimated</th></tr>")  # fmt: skip
        for b in ev.over_time:
            parts.append(
                f"<tr><td>{time.strftime('%H:%M:%S', time.gmtime(b.start))}</td>"
                f"<td>{time.strftime('%H:%M:%S', time.gmtime(b.end))}</td><td class='num'>{b.performance.rows}</td>"
                f"<td class='num'>{b.performance.labelled}</td><td class='num'>{_num(b.performance.accuracy)}</td>"
                f"<td class='num'>{_num(b.performance.estimated_accuracy)}</td></tr>"
            )
        parts.append("</table>")
    parts.append("<h2>Champion vs challenger</h2>")
    cmp = ev.challenger
    if cmp is not None:
        rows = [
            ("versions", f"champion {cmp.champion_version} · challenger {cmp.challenger_version}"),
            ("rows both answered", str(cmp.paired_rows)),
            ("agreement", f"{cmp.agreement:.1%}"),
            ("labelled", str(cmp.labelled)),
            (
                "accuracy champion / challenger",
                f"{_num(cmp.champion_accuracy)} / {_num(cmp.challenger_accuracy)}",
            ),
            ("right only: champion / challenger", f"{cmp.champion_only_right} / {cmp.challenger_only_right}"),
            ("McNemar p-value", _num(cmp.p_value)),
            ("better", cmp.better or "no significant difference"),
        ]
        parts.append(
            "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows) + "</table>"
        )
    else:
        parts.append("<p>No shadow traffic compared in this window.</p>")
    if ev.bias is not None:
        bs = ev.bias
        parts.append(f"<h2>Bias across {_e(bs.column)} (positive class {_e(bs.positive)})</h2>")
        parts.append(
            f"<p>demographic-parity difference {_num(bs.demographic_parity_difference)},"
            f" equalized-odds difference {_num(bs.equalized_odds_difference)}</p>"
        )
        parts.append("<table><tr><th>segment</th><th>rows</th><th>selection rate</th><th>TPR</th><th>FPR</th>"
                     "<th>accuracy</th></tr>")  # fmt: skip
        for g in bs.segments:
            parts.append(
                f"<tr><td>{_e(g.segment)}</td><td class='num'>{g.rows}</td><td class='num'>{_num(g.selection_rate)}</td>"
                f"<td class='num'>{_num(g.true_positive_rate)}</td><td class='num'>{_num(g.false_positive_rate)}</td>"
                f"<td class='num'>{_num(g.accuracy)}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
