"""The ``mlbox`` command. Thin: parse, call one service, print.

One module per noun (`runs` for experiments and runs, `models` for the
registry); `root` holds the group, the top-level commands and `main`, the
console script's entry point, which turns every error into one line.
"""

from __future__ import annotations

from mlbox.cli.root import cli, main

__all__ = ["cli", "main"]
