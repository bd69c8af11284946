"""The flavor names, apart from the flavors themselves (which import numpy): the CLI offers them
as choices at start-up."""

from __future__ import annotations

DETECT_ORDER = ("composed", "lightgbm", "xgboost", "onnx", "pytorch", "sklearn", "python")
"""Flavors in the order detection tries them (the most specific first)."""
