"""``mlbox demo``: the whole lifecycle on scikit-learn's bundled digits, offline.

The demo doubles as an example of the public client (``import mlbox``): read
`trials` to see a training script logging to mlbox. It is a list of steps
(`runner.STEPS`) so later capabilities (registry, serving, features,
monitoring) each add one. torch and scikit-learn load only when a step needs
them, so importing this package is cheap.
"""

from __future__ import annotations

from mlbox.demo.runner import run_demo

__all__ = ["run_demo"]
