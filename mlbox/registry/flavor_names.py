"""The flavor names, apart from the flavors themselves (which import numpy): the CLI offers them
as choices at start-up."""

from __future__ import annotations

DETECT_ORDER = ("composed", "lightgbm", "xgboost", "onnx", "keras", "pytorch", "sklearn", "python", "pyfunc")
"""Flavors in the order detection tries them (the most specific first: a Keras model on the torch
backend is also a torch module). ``pyfunc`` (MLflow's python_function directories) is never detected."""
