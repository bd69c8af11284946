"""Search spaces: parsed from YAML, JSON-like dicts or a Python file, checked before a sweep starts.

A space is either a mapping of parameter names to declarations::

    lr:     {type: float, low: 1.0e-4, high: 0.1, log: true}
    layers: {type: int, low: 1, high: 4}
    act:    {type: categorical, choices: [relu, gelu]}
    batch:  [32, 64, 128]          # a list is shorthand for categorical

or Python source exposing ``space`` (such a mapping, or a function that takes
an Optuna trial and calls ``trial.suggest_*`` — define-by-run). The source
text, not the path, is kept with the sweep, so editing or moving the file
later changes nothing about a sweep already running.

Every mistake is an `InvalidInput` whose ``field`` names the place
(``space.lr.low``), so the CLI and the API report it the same way. Optuna is
imported only when distributions are built.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlbox.store.errors import InvalidInput

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

KINDS = ("float", "int", "categorical")
MAX_GRID = 100_000
_KEYS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}
SpaceFn = Callable[["optuna.trial.Trial"], Any]


@dataclass(frozen=True)
class Param:
    """One declared parameter (a value object; `distribution` turns it into Optuna's)."""

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def distribution(self) -> BaseDistribution:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            assert isinstance(self.low, int) and isinstance(self.high, int)
            return IntDistribution(self.low, self.high, log=self.log, step=int(self.step or 1))
        assert self.low is not None and self.high is not None
        return FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)

    def grid_values(self) -> list[Any]:
        """Every value a grid search visits; a float needs a ``step``."""
        if self.kind == "categorical":
            return list(self.choices)
        assert self.low is not None and self.high is not None
        if self.step is None and self.kind == "float":
            raise InvalidInput(
                f"the grid sampler needs a 'step' for float parameter {self.name!r}",
                field=f"space.{self.name}.step",
            )
        step = self.step or 1
        count = math.floor((self.high - self.low) / step + 1e-9) + 1
        if count > MAX_GRID:
            raise InvalidInput(
                f"parameter {self.name!r} has {count} grid values (at most {MAX_GRID})",
                field=f"space.{self.name}",
            )
        if self.kind == "int":
            return [int(self.low + i * step) for i in range(count)]
        return [round(self.low + i * step, 12) for i in range(count)]


@dataclass(frozen=True)
class Space:
    """A parsed space: declared parameters, or a define-by-run function from Python source."""

    params: tuple[Param, ...] = ()
    source: str | None = None
    """Python source defining ``space`` as a function (None for a declared space)."""
    filename: str = "<space>"

    @property
    def is_function(self) -> bool:
        return self.source is not None

    def distributions(self) -> dict[str, BaseDistribution]:
        return {p.name: p.distribution() for p in self.params}

    def grid(self) -> dict[str, list[Any]]:
        if self.is_function:
            raise InvalidInput(
                "the grid sampler needs a declared space (a mapping), not a function", field="sampler"
            )
        grid = {p.name: p.grid_values() for p in self.params}
        if math.prod(len(v) for v in grid.values()) > MAX_GRID:
            raise InvalidInput(f"the grid has more than {MAX_GRID} points", field="space")
        return grid

    def function(self) -> SpaceFn:
        """The define-by-run function, compiled from the kept source."""
        assert self.source is not None
        namespace = _exec(self.source, self.filename)
        fn = namespace.get("space")
        if not callable(fn):
            raise InvalidInput(f"{self.filename} no longer defines a function 'space'", field="space")
        return fn

    def to_json(self) -> dict[str, Any]:
        """What the sweep row keeps (`from_json` reads it back)."""
        if self.source is not None:
            return {"source": self.source, "filename": self.filename}
        return {"params": {p.name: _declaration(p) for p in self.params}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Space:
        if "source" in data:
            return cls(source=str(data["source"]), filename=str(data.get("filename", "<space>")))
        return parse_mapping(data.get("params", {}))


def _declaration(p: Param) -> dict[str, Any]:
    if p.kind == "categorical":
        return {"type": "categorical", "choices": list(p.choices)}
    out: dict[str, Any] = {"type": p.kind, "low": p.low, "high": p.high}
    if p.log:
        out["log"] = True
    if p.step is not None:
        out["step"] = p.step
    return out


def _number(value: Any, where: str, *, integer: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{where} must be a number, got {value!r}", field=where)
    if integer and not (isinstance(value, int) or float(value).is_integer()):
        raise InvalidInput(f"{where} must be an integer, got {value!r}", field=where)
    if not math.isfinite(value):
        raise InvalidInput(f"{where} must be finite, got {value!r}", field=where)
    return int(value) if integer else float(value)


def parse_param(name: str, decl: Any) -> Param:
    """One declaration; ``field`` of any error is ``space.NAME[.KEY]``."""
    where = f"space.{name}"
    if not isinstance(name, str) or not name.isidentifier():
        raise InvalidInput(f"parameter name {name!r} must be an identifier", field=where)
    if isinstance(decl, (list, tuple)):
        decl = {"type": "categorical", "choices": list(decl)}
    if not isinstance(decl, Mapping):
        raise InvalidInput(
            f"{where} must be a mapping with 'type' (float, int, categorical) or a list of choices",
            field=where,
        )
    kind = decl.get("type")
    if kind not in KINDS:
        raise InvalidInput(
            f"{where}.type must be one of {', '.join(KINDS)}, got {kind!r}", field=f"{where}.type"
        )
    unknown = sorted(set(decl) - _KEYS[kind])
    if unknown:
        raise InvalidInput(
            f"{where} has unknown key {unknown[0]!r} for type {kind}", field=f"{where}.{unknown[0]}"
        )
    if kind == "categorical":
        choices = decl.get("choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            raise InvalidInput(f"{where}.choices must be a non-empty list", field=f"{where}.choices")
        for c in choices:
            if c is not None and not isinstance(c, (bool, int, float, str)):
                raise InvalidInput(
                    f"{where}.choices may hold only numbers, strings, booleans and null, got {c!r}",
                    field=f"{where}.choices",
                )
        if len(set(map(repr, choices))) != len(choices):
            raise InvalidInput(f"{where}.choices has a duplicate", field=f"{where}.choices")
        return Param(name, kind, choices=tuple(choices))
    integer = kind == "int"
    for key in ("low", "high"):
        if key not in decl:
            raise InvalidInput(f"{where}.{key} is required for type {kind}", field=f"{where}.{key}")
    low = _number(decl["low"], f"{where}.low", integer=integer)
    high = _number(decl["high"], f"{where}.high", integer=integer)
    if low > high:
        raise InvalidInput(f"{where}.low ({low}) is above high ({high})", field=f"{where}.low")
    log = decl.get("log", False)
    if not isinstance(log, bool):
        raise InvalidInput(f"{where}.log must be true or false", field=f"{where}.log")
    if log and low <= 0:
        raise InvalidInput(f"{where}.low must be above 0 when log is true", field=f"{where}.low")
    step = decl.get("step")
    if step is not None:
        step = _number(step, f"{where}.step", integer=integer)
        if step <= 0:
            raise InvalidInput(f"{where}.step must be above 0", field=f"{where}.step")
        if log:
            raise InvalidInput(f"{where}: step and log cannot be combined", field=f"{where}.step")
    return Param(name, kind, low=low, high=high, log=log, step=step)


def parse_mapping(data: Any) -> Space:
    if not isinstance(data, Mapping):
        raise InvalidInput("the search space must be a mapping of parameter names", field="space")
    if not data:
        raise InvalidInput("the search space is empty", field="space")
    return Space(params=tuple(parse_param(str(k), v) for k, v in data.items()))


def _exec(source: str, filename: str) -> dict[str, Any]:
    module = types.ModuleType("mlbox_sweep_space")
    module.__file__ = filename
    try:
        exec(compile(source, filename, "exec"), module.__dict__)
    except Exception as exc:
        raise InvalidInput(f"{filename} failed to load: {type(exc).__name__}: {exc}", field="space") from None
    return module.__dict__


def parse_python(source: str, filename: str = "<space>") -> Space:
    """Python source exposing ``space``: a mapping, or a function of an Optuna trial."""
    space = _exec(source, filename).get("space")
    if isinstance(space, Mapping):
        return parse_mapping(space)
    if callable(space):
        parsed = Space(source=source, filename=filename)
        check_function(parsed)
        return parsed
    raise InvalidInput(
        f"{filename} must define 'space' as a mapping or a function taking an Optuna trial", field="space"
    )


def check_function(space: Space) -> None:
    """Call a define-by-run space once on a scratch study, so a broken one fails at submit."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trial = optuna.create_study().ask()
    try:
        space.function()(trial)
    except InvalidInput:
        raise
    except Exception as exc:
        raise InvalidInput(
            f"space({type(trial).__name__}) raised {type(exc).__name__}: {exc}", field="space"
        ) from None
    if not trial.params:
        raise InvalidInput("the space function suggested no parameter", field="space")


def load_file(path: str | Path) -> tuple[Space, dict[str, Any]]:
    """A space from a ``.yaml``/``.yml``/``.json`` or ``.py`` file, with sweep settings the file carries.

    A YAML file is either the space itself or a mapping with ``space:`` beside
    settings such as ``metric:``, ``direction:``, ``n_trials:`` (returned as the
    second value, for the caller to merge under its own flags).
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise InvalidInput(f"cannot read the space file {str(p)!r}: {exc.strerror}", field="space") from None
    if p.suffix == ".py":
        return parse_python(text, str(p)), {}
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{p} is not valid YAML: {exc}", field="space") from None
    return parse_document(data)


def parse_document(data: Any) -> tuple[Space, dict[str, Any]]:
    """``{space: {...}, metric: ..., ...}`` or a bare space."""
    if isinstance(data, Mapping) and isinstance(data.get("space"), Mapping):
        settings = {str(k): v for k, v in data.items() if k != "space"}
        return parse_mapping(data["space"]), settings
    return parse_mapping(data), {}
