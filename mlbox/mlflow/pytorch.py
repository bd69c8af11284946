"""``mlflow.pytorch``: log and load torch modules (mlbox's pytorch flavor), and ``autolog()``.

MLflow's own ``mlflow.pytorch.autolog()`` logs only PyTorch Lightning's
``Trainer.fit``; a plain training loop logs nothing. Here, with or without
Lightning, autologging follows a plain loop through the hooks torch offers,
so an MLflow script gets what Lightning's autolog would have logged:

* The optimizer's settings, once per run, at its first ``step()`` (torch's
  global optimizer step hook): ``optimizer_name`` and its numeric defaults
  (``lr``, ``momentum``, ``weight_decay``, ``betas``…). A second optimizer in
  the same run logs its settings prefixed with its class name.
* The loss: a step function wrapped with ``@mlflow.pytorch.autolog`` (the
  same name used as a decorator) logs what it returns at every call, as
  ``loss`` at step = the number of calls so far (a dict of numbers logs each
  key; a tuple its first item as ``loss``). Tensors are read with ``.item()``.
* Epochs: when a ``DataLoader`` whose iteration ran wrapped steps is
  exhausted, that was a training epoch: the mean of each step metric over it
  is logged as ``<name>_epoch`` and the first optimizer's current ``lr`` as
  ``lr``, at step = the epoch number (0, 1, …).
* The final model: when the run ends FINISHED (``end_run``, the ``with``
  block, or the process exiting), the module that owns the first optimizer's
  parameters (the outermost module holding all of them) is logged as
  ``model/`` with `log_model`, with the first tensor a wrapped step received as
  its input example when that example exports, else without one.

A step outside any run starts one, as MLflow's fluent calls do; that run ends
when the process exits. ``autolog(disable=True)`` removes the hooks.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import math
import threading
from collections.abc import Callable, Iterable
from typing import Any

from mlbox.mlflow.entities import ModelInfo
from mlbox.mlflow.models import load
from mlbox.mlflow.models import log_model as _log_model

log = logging.getLogger("mlbox.mlflow.pytorch")


def log_model(
    pytorch_model: Any,
    artifact_path: str | None = None,
    *,
    name: str | None = None,
    input_example: Any = None,
    signature: Any = None,
    registered_model_name: str | None = None,
    **_ignored: Any,
) -> ModelInfo:
    return _log_model(
        pytorch_model,
        "pytorch",
        name=name,
        artifact_path=artifact_path,
        input_example=input_example,
        signature=signature,
        registered_model_name=registered_model_name,
    )


def load_model(model_uri: str, **_: Any) -> Any:
    return load(model_uri).unwrap_python_model()


# -- autolog ---------------------------------------------------------------------------------


class _RunLog:
    """What autologging saw in one run: its optimizers, step metrics, epochs, an input example."""

    def __init__(self) -> None:
        self.optimizers: list[Any] = []
        self.step = 0
        self.epoch = 0
        self.epoch_sums: dict[str, float] = {}
        self.epoch_counts: dict[str, int] = {}
        self.stepped_this_epoch = False
        self.example: Any = None


class _Autolog:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.enabled = False
        self.log_models = True
        self.log_every_n_step = 1
        self.hook: Any = None
        self.original_iter: Any = None
        self.runs: dict[str, _RunLog] = {}

    def current(self) -> tuple[str, _RunLog]:
        """The active run (started if none, as MLflow's fluent calls do) and its record."""
        import mlbox.mlflow as mlflow

        active = mlflow.active_run()
        if active is None:
            active = mlflow.start_run()
        run_id = active.info.run_id
        record = self.runs.get(run_id)
        if record is None:
            record = self.runs[run_id] = _RunLog()
        return run_id, record


_auto = _Autolog()


def autolog(
    fn: Callable[..., Any] | None = None,
    *,
    log_models: bool = True,
    log_every_n_step: int = 1,
    disable: bool = False,
    **_ignored: Any,
) -> Any:
    """Turn autologging of plain torch loops on (or off with ``disable=True``); given a function,
    turn it on and return the function wrapped so that what it returns is logged as the loss."""
    if fn is not None:
        if not _auto.enabled:
            autolog(log_models=log_models, log_every_n_step=log_every_n_step)
        return _wrap_step(fn)
    with _auto.lock:
        if disable:
            _uninstall()
            return None
        _auto.log_models = log_models
        _auto.log_every_n_step = max(1, int(log_every_n_step))
        if not _auto.enabled:
            _install()
    return None


def _install() -> None:
    from torch.optim.optimizer import register_optimizer_step_post_hook
    from torch.utils.data import DataLoader

    import mlbox.mlflow as mlflow

    _auto.hook = register_optimizer_step_post_hook(_after_optimizer_step)
    _auto.original_iter = DataLoader.__iter__
    DataLoader.__iter__ = _iter_epochs(DataLoader.__iter__)  # type: ignore[method-assign]
    mlflow._before_end.append(_finish_run)
    _auto.enabled = True


def _uninstall() -> None:
    from torch.utils.data import DataLoader

    import mlbox.mlflow as mlflow

    if not _auto.enabled:
        return
    _auto.hook.remove()
    DataLoader.__iter__ = _auto.original_iter  # type: ignore[method-assign]
    with contextlib.suppress(ValueError):
        mlflow._before_end.remove(_finish_run)
    _auto.enabled = False


def _after_optimizer_step(optimizer: Any, args: Any, kwargs: Any) -> None:
    """torch calls this after every ``optimizer.step()``: log a new optimizer's settings once."""
    import mlbox.mlflow as mlflow

    with _auto.lock:
        run_id, record = _auto.current()
        if any(o is optimizer for o in record.optimizers):
            return
        record.optimizers.append(optimizer)
        prefix = (
            "" if len(record.optimizers) == 1 else f"{type(optimizer).__name__}_{len(record.optimizers)}_"
        )
    params: dict[str, Any] = {f"{prefix}optimizer_name": type(optimizer).__name__}
    for key, value in getattr(optimizer, "defaults", {}).items():
        if isinstance(value, (bool, int, float, str)) or (
            isinstance(value, tuple) and all(isinstance(v, (int, float)) for v in value)
        ):
            params[f"{prefix}{key}"] = value
    mlflow.log_params(params, run_id=run_id)


def _numbers(result: Any) -> dict[str, float]:
    """What a step returned, as metrics: a number or tensor is ``loss``; a dict each number."""
    if isinstance(result, tuple) and result:
        result = result[0]
    items: Iterable[tuple[Any, Any]] = result.items() if isinstance(result, dict) else [("loss", result)]
    out: dict[str, float] = {}
    for key, value in items:
        with contextlib.suppress(TypeError, ValueError, RuntimeError, AttributeError):
            number = float(value.item() if hasattr(value, "item") else value)
            out[str(key)] = number
    return out


def _wrap_step(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def step(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        if not _auto.enabled:
            return result
        import mlbox.mlflow as mlflow

        metrics = _numbers(result)
        with _auto.lock:
            run_id, record = _auto.current()
            if record.example is None:
                record.example = _first_tensor(args, kwargs)
            n = record.step
            record.step += 1
            record.stepped_this_epoch = True
            for key, value in metrics.items():
                if not math.isnan(value):
                    record.epoch_sums[key] = record.epoch_sums.get(key, 0.0) + value
                    record.epoch_counts[key] = record.epoch_counts.get(key, 0) + 1
        if n % _auto.log_every_n_step == 0:
            mlflow.log_metrics(metrics, step=n, run_id=run_id)
        return result

    return step


def _first_tensor(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    import torch

    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.is_floating_point():
            return value[:5].detach().cpu().clone()
    return None


def _iter_epochs(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def iterate(self: Any) -> Any:
        return _EpochIterator(original(self))

    return iterate


class _EpochIterator:
    """A DataLoader's iterator that says when it is exhausted (the end of an epoch)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __iter__(self) -> _EpochIterator:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._inner)
        except StopIteration:
            _epoch_end()
            raise

    def __len__(self) -> int:
        return len(self._inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _epoch_end() -> None:
    import mlbox.mlflow as mlflow

    if not _auto.enabled or mlflow.active_run() is None:
        return
    with _auto.lock:
        run_id, record = _auto.current()
        if not record.stepped_this_epoch:
            return  # a validation loop, or a loader whose batches no wrapped step saw
        metrics = {f"{k}_epoch": s / record.epoch_counts[k] for k, s in record.epoch_sums.items()}
        if record.optimizers and record.optimizers[0].param_groups:
            with contextlib.suppress(TypeError, ValueError):
                metrics["lr"] = float(record.optimizers[0].param_groups[0]["lr"])
        epoch = record.epoch
        record.epoch += 1
        record.epoch_sums.clear()
        record.epoch_counts.clear()
        record.stepped_this_epoch = False
    mlflow.log_metrics(metrics, step=epoch, run_id=run_id)


def trained_module(optimizer: Any) -> Any:
    """The outermost ``torch.nn.Module`` that holds every parameter ``optimizer`` trains, or None."""
    import torch

    wanted = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if not wanted:
        return None
    holders = [
        m
        for m in gc.get_objects()
        if issubclass(type(m), torch.nn.Module) and wanted <= {id(p) for p in m.parameters()}
    ]
    inner = {id(child) for m in holders for child in m.modules() if child is not m}
    outer = [m for m in holders if id(m) not in inner]
    return outer[0] if outer else None


def _finish_run(run_id: str, status: str) -> None:
    """Before a run ends: log the trained module of a run that finished (`mlbox.mlflow.end_run`).
    A failure is a warning, as in MLflow's autologging: the run still ends."""
    with _auto.lock:
        record = _auto.runs.pop(run_id, None)
    if record is None or status != "FINISHED" or not _auto.log_models or not record.optimizers:
        return
    try:
        _log_trained(record)
    except Exception as exc:
        log.warning("autolog: could not log the trained model of run %s: %s", run_id, exc)


def _log_trained(record: _RunLog) -> None:
    module = trained_module(record.optimizers[0])
    if module is None:
        log.warning("autolog: no module holds the optimizer's parameters; the model is not logged")
        return
    if record.example is not None:
        try:
            log_model(module, name="model", input_example=record.example.numpy())
            return
        except Exception as exc:  # the step's first tensor was not the model's input
            log.info("autolog: logging the model with the step's first tensor failed (%s)", exc)
    log_model(module, name="model")
