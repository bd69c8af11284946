"""``mlflow.sklearn``: log and load scikit-learn estimators, and ``autolog()``.

Autologging wraps ``fit`` of every scikit-learn estimator class, as MLflow's
does: a ``fit`` outside any run starts one and ends it afterwards; the
estimator's params (``get_params(deep=False)``), its ``training_score`` on the
data it was fit on, and the fitted model (``model/``) are logged. A ``fit``
called inside another (a meta-estimator fitting its parts, a grid search) logs
nothing of its own.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any

from mlbox.mlflow.entities import ModelInfo
from mlbox.mlflow.models import load
from mlbox.mlflow.models import log_model as _log_model

_inside = threading.local()
_patched: dict[type, Any] = {}
_settings: dict[str, Any] = {"log_models": True, "disable": False}


def log_model(
    sk_model: Any,
    artifact_path: str | None = None,
    *,
    name: str | None = None,
    input_example: Any = None,
    signature: Any = None,
    registered_model_name: str | None = None,
    **_ignored: Any,
) -> ModelInfo:
    return _log_model(
        sk_model,
        "sklearn",
        name=name,
        artifact_path=artifact_path,
        input_example=input_example,
        signature=signature,
        registered_model_name=registered_model_name,
    )


def load_model(model_uri: str, **_: Any) -> Any:
    """The estimator itself (``predict``, ``predict_proba``…), from the registry or a run."""
    return load(model_uri).unwrap_python_model()


def _wrap(fit: Any) -> Any:
    @functools.wraps(fit)
    def fit_and_log(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _settings["disable"] or getattr(_inside, "depth", 0) > 0:
            return fit(self, *args, **kwargs)
        import mlbox.mlflow as mlflow

        started = mlflow.active_run() is None
        if started:
            mlflow.start_run()
        _inside.depth = 1
        try:
            params = {k: v for k, v in self.get_params(deep=False).items()}
            mlflow.log_params({k: repr(v) if not isinstance(v, (int, float, str, bool, type(None))) else v
                               for k, v in params.items()})  # fmt: skip
            mlflow.set_tags({"estimator_name": type(self).__name__, "estimator_class": type(self).__module__
                             + "." + type(self).__qualname__})  # fmt: skip
            result = fit(self, *args, **kwargs)
            if len(args) >= 2 and hasattr(self, "score"):
                with contextlib.suppress(Exception):
                    mlflow.log_metric("training_score", float(self.score(args[0], args[1])))
            if _settings["log_models"]:
                log_model(self, name="model")
        except BaseException:
            if started:
                mlflow.end_run("FAILED")
            raise
        finally:
            _inside.depth = 0
        if started:
            mlflow.end_run("FINISHED")
        return result

    fit_and_log.__mlbox_autolog__ = True  # type: ignore[attr-defined]
    return fit_and_log


def autolog(log_models: bool = True, disable: bool = False, **_ignored: Any) -> None:
    """Log every scikit-learn ``fit`` from now on (``disable=True`` turns it off again)."""
    from sklearn.utils import all_estimators

    _settings["log_models"] = log_models
    _settings["disable"] = disable
    for _name, cls in all_estimators():
        fit = cls.__dict__.get("fit")
        if fit is None or getattr(fit, "__mlbox_autolog__", False):
            continue
        _patched[cls] = fit
        cls.fit = _wrap(fit)
