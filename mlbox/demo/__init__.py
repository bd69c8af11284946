"""``mlbox demo``: the whole lifecycle on scikit-learn's bundled digits, offline.

The demo doubles as an example of the public client (``import mlbox``): read
`trials` to see a training script logging to mlbox, and `jobs` for the same
code run as the scheduler's jobs and a sweep's trials. It is a list of steps
(`runner.STEPS`). Importing this package is cheap (``run_demo`` loads the
runner on first use), because every training job imports ``mlbox.demo.jobs``
in a fresh process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlbox.demo.runner import run_demo

__all__ = ["run_demo"]


def __getattr__(name: str) -> Any:
    if name == "run_demo":
        from mlbox.demo.runner import run_demo

        return run_demo
    raise AttributeError(f"module 'mlbox.demo' has no attribute {name!r}")
