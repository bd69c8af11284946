"""A pipeline's graph drawn with box-drawing characters (the CLI's ``show`` and the TUI's DAG).

Layered left to right: a step's column is its longest path from a root; an edge that skips
columns passes through the ones between as a line (a dummy node), so every edge joins
neighbouring columns. Within a column, steps are ordered by the mean row of their inputs
(the barycentre heuristic) to cut crossings. In the gutter between two columns each source
step has its own vertical lane; where lines meet the junction character is chosen from the
directions that meet there (``┬ ┼ ┤``...), so merged lines stay readable.

Pure: it returns lines of text and where each step's box is, so a caller can colour boxes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

BOX_W = 20
BOX_H = 5
"""Rows a slot takes: the box's four lines and a blank row below."""

_JUNCTIONS = {
    frozenset("lr"): "─",
    frozenset("ud"): "│",
    frozenset("rd"): "┌",
    frozenset("ld"): "┐",
    frozenset("ru"): "└",
    frozenset("lu"): "┘",
    frozenset("lrd"): "┬",
    frozenset("lru"): "┴",
    frozenset("udr"): "├",
    frozenset("udl"): "┤",
    frozenset("udlr"): "┼",
    frozenset("l"): "─",
    frozenset("r"): "─",
    frozenset("u"): "│",
    frozenset("d"): "│",
}


@dataclass(frozen=True)
class Placed:
    node: str
    row: int
    col: int
    width: int
    height: int = 4


def layers(deps: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each step's column: 0 for a root, else one past its deepest input."""
    depth: dict[str, int] = {}

    def visit(n: str, trail: frozenset[str]) -> int:
        if n in depth:
            return depth[n]
        if n in trail:
            raise ValueError(f"cycle at {n}")
        ds = deps.get(n, ())
        d = 0 if not ds else 1 + max(visit(x, trail | {n}) for x in ds)
        depth[n] = d
        return d

    for n in deps:
        visit(n, frozenset())
    return depth


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def draw(
    deps: Mapping[str, Sequence[str]], labels: Mapping[str, tuple[str, str]], *, box_w: int = BOX_W
) -> tuple[list[str], list[Placed]]:
    """The drawing and each step's box. ``labels[node]`` is the box's two lines (name, state)."""
    if not deps:
        return [], []
    depth = layers(deps)
    ncols = max(depth.values()) + 1
    # columns of slots: a step, or ("~", src, dst, k) passing an edge through column k
    cols: list[list[str]] = [[] for _ in range(ncols)]
    for n in sorted(deps, key=lambda x: (depth[x], x)):
        cols[depth[n]].append(n)
    links: list[tuple[str, str]] = []  # edges between neighbouring columns (slot ids)
    for n in deps:
        for d in deps[n]:
            prev = d
            for k in range(depth[d] + 1, depth[n]):
                dummy = f"\0{d}\0{n}\0{k}"
                cols[k].append(dummy)
                links.append((prev, dummy))
                prev = dummy
            links.append((prev, n))
    ins: dict[str, list[str]] = {}
    for a, b in links:
        ins.setdefault(b, []).append(a)
    # barycentre ordering, two sweeps
    pos: dict[str, float] = {}
    for c in cols:
        for i, n in enumerate(c):
            pos[n] = i
    for _ in range(2):
        for k in range(1, ncols):
            cols[k].sort(key=lambda n: (sum(pos[a] for a in ins.get(n, [])) / max(1, len(ins.get(n, []))), n))
            for i, n in enumerate(cols[k]):
                pos[n] = i
    # gutters: one lane per source slot with outgoing links
    sources_at: list[list[str]] = [[] for _ in range(ncols)]
    for a, _b in links:
        k = _col_of(a, depth)
        if a not in sources_at[k]:
            sources_at[k].append(a)
    for k in range(ncols):
        sources_at[k].sort(key=lambda n: pos[n])
    gutter = [len(sources_at[k]) + 3 for k in range(ncols)]
    x0: list[int] = []
    x = 0
    for k in range(ncols):
        x0.append(x)
        x += box_w + (gutter[k] if k < ncols - 1 else 0)
    width = x
    height = max(len(c) for c in cols) * BOX_H
    grid = [[" "] * width for _ in range(height)]
    dirs: dict[tuple[int, int], set[str]] = {}

    def mark(r: int, c: int, d: str) -> None:
        dirs.setdefault((r, c), set()).add(d)

    def mid(n: str) -> int:
        return int(pos[n]) * BOX_H + 1

    placed: list[Placed] = []
    for k, c in enumerate(cols):
        for n in c:
            r = mid(n) - 1
            if n.startswith("\0"):
                for cc in range(x0[k], x0[k] + box_w):
                    mark(r + 1, cc, "l")
                    mark(r + 1, cc, "r")
                continue
            top, bottom = labels.get(n, (n, ""))
            inner = box_w - 2
            grid[r][x0[k] : x0[k] + box_w] = list("┌" + "─" * inner + "┐")
            grid[r + 1][x0[k] : x0[k] + box_w] = list("│" + _clip(top, inner).ljust(inner) + "│")
            grid[r + 2][x0[k] : x0[k] + box_w] = list("│" + _clip(bottom, inner).ljust(inner) + "│")
            grid[r + 3][x0[k] : x0[k] + box_w] = list("└" + "─" * inner + "┘")
            placed.append(Placed(n, r, x0[k], box_w))
    arrows: set[tuple[int, int]] = set()
    for a, b in links:
        k = _col_of(a, depth)
        lane = x0[k] + box_w + 1 + sources_at[k].index(a)
        ra, rb = mid(a), mid(b)
        start = x0[k] + box_w
        end = x0[k + 1] - 1
        for cc in range(start, lane):
            mark(ra, cc, "l")
            mark(ra, cc, "r")
        mark(ra, lane, "l")
        if rb != ra:
            step = 1 if rb > ra else -1
            mark(ra, lane, "d" if step == 1 else "u")
            for rr in range(ra + step, rb, step):
                mark(rr, lane, "u")
                mark(rr, lane, "d")
            mark(rb, lane, "u" if step == 1 else "d")
        mark(rb, lane, "r")
        for cc in range(lane + 1, end + 1):
            mark(rb, cc, "l")
            mark(rb, cc, "r")
        if not b.startswith("\0"):
            arrows.add((rb, end))
    for (ry, cx), ds in dirs.items():
        if grid[ry][cx] != " ":
            continue
        grid[ry][cx] = _JUNCTIONS.get(frozenset(ds), "┼")
    for ry, cx in arrows:
        grid[ry][cx] = "▶"
    lines = ["".join(row).rstrip() for row in grid]
    while lines and not lines[-1]:
        lines.pop()
    return lines, placed


def _col_of(slot: str, depth: Mapping[str, int]) -> int:
    if slot.startswith("\0"):
        return int(slot.rsplit("\0", 1)[1])
    return depth[slot]


STATE_MARKS = {
    "pending": "·",
    "ready": "○",
    "running": "▶",
    "succeeded": "✓",
    "cached": "↺",
    "failed": "✗",
    "skipped": "-",
    "cancelled": "⊘",
}


def step_label(state: str, duration_s: float | None, attempt: int) -> str:
    """A box's second line: the state's mark and word, the duration, retries."""
    text = f"{STATE_MARKS.get(state, '?')} {state}"
    if duration_s is not None and state in ("succeeded", "failed"):
        text += f" {duration_s:.1f}s" if duration_s < 100 else f" {duration_s / 60:.0f}m"
    if attempt > 1:
        text += f" #{attempt}"
    return text
