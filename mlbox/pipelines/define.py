"""``@step`` and ``@pipeline``: a pipeline's graph is traced from the calls inside its function.

Calling a step inside a pipeline function runs nothing: it records a node and returns an
`Output` standing for the value the step will produce (as Prefect's and Dagster's users
write it). Everything a run needs is checked while tracing, before anything runs: a missing
input, an unknown argument, an input whose declared type the upstream output does not
match, a parameter the pipeline does not have, a constant that cannot be stored safely
(never pickled). Called outside a pipeline, a step is the plain function.

Kept free of I/O and of heavy imports: ``import mlbox`` exposes these names.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import sys
import threading
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec

from mlbox.store.errors import InvalidInput

Kind = Literal["step", "param", "const"]


@dataclass(frozen=True)
class StepOptions:
    """What a step asks for. Any resource or ``job=True`` makes it a scheduler job; a timeout
    alone does not (the in-process driver enforces it)."""

    gpus: int = 0
    gpu_memory_mb: int = 0
    cpus: float = 0.0
    timeout_s: float | None = None
    retries: int = 0
    backoff_s: float = 1.0
    """Wait before retry ``n`` is ``backoff_s * 2 ** (n - 1)``."""
    cache: bool = True
    job: bool = False

    @property
    def runs_as_job(self) -> bool:
        # a timeout alone keeps a step in-process: the driver fails it when it passes its
        # timeout (`PipelineService._timed_out`) and drops its late result
        return self.job or self.gpus > 0 or self.gpu_memory_mb > 0 or self.cpus > 0


@dataclass(frozen=True)
class Binding:
    """Where a step's input comes from: another node's output, a pipeline parameter or a constant."""

    kind: Kind
    ref: str = ""
    """The node (``step``) or parameter (``param``) name."""
    value: Any = None
    """The constant (``const``), JSON-safe."""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "ref": self.ref, "value": self.value}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Binding:
        return cls(raw["kind"], raw.get("ref", ""), raw.get("value"))


@dataclass(frozen=True)
class Node:
    name: str
    step: StepDef
    bindings: dict[str, Binding]

    @property
    def deps(self) -> list[str]:
        return sorted({b.ref for b in self.bindings.values() if b.kind == "step"})


@dataclass(frozen=True)
class Output:
    """Stands for a node's future value inside a pipeline function."""

    node: str
    type: Any


@dataclass(frozen=True)
class Param:
    """Stands for a pipeline parameter inside a pipeline function (its value is bound per run)."""

    name: str
    type: Any


@dataclass
class Graph:
    pipeline: str
    nodes: dict[str, Node] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    def order(self) -> list[str]:
        return topo_order({n: node.deps for n, node in self.nodes.items()})


class _Tracer(threading.local):
    graph: Graph | None = None


_tracer = _Tracer()


def _type_name(t: Any) -> str:
    return getattr(t, "__name__", None) or str(t).replace("typing.", "")


def compatible(produced: Any, expected: Any) -> bool:
    """Whether an output declared ``produced`` may feed an input declared ``expected``."""
    if expected is Any or produced is Any or expected is inspect.Parameter.empty:
        return True
    if produced is inspect.Parameter.empty:
        return True
    if produced == expected:
        return True
    exp_origin = typing.get_origin(expected)
    if exp_origin is typing.Union or type(expected).__name__ == "UnionType":
        return any(compatible(produced, arm) for arm in typing.get_args(expected))
    prod = typing.get_origin(produced) or produced
    exp = exp_origin or expected
    if isinstance(prod, type) and isinstance(exp, type):
        if exp is float and prod is int:
            return True
        return issubclass(prod, exp)
    return False


def conforms(value: Any, declared: Any) -> bool:
    """Whether a produced value matches its declared output type (checked on the outer class)."""
    if declared in (Any, inspect.Parameter.empty) or (declared is None and value is None):
        return True
    origin = typing.get_origin(declared)
    if origin is typing.Union or type(declared).__name__ == "UnionType":
        return any(conforms(value, arm) for arm in typing.get_args(declared))
    cls = origin or declared
    if declared is None or declared is type(None):
        return value is None
    if not isinstance(cls, type):
        return True
    if cls is float and isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, cls)


def code_hash(fn: Callable[..., Any]) -> str:
    """The step's source (falling back to its bytecode): a changed body misses the cache."""
    try:
        text = inspect.getsource(fn).encode()
    except (OSError, TypeError):
        text = fn.__code__.co_code + repr(fn.__code__.co_consts).encode()
    return hashlib.sha256(text).hexdigest()[:16]


def _json_safe(value: Any) -> bool:
    try:
        msgspec.json.encode(value)
    except (TypeError, msgspec.EncodeError):
        return False
    return True


class StepDef:
    """A function made a step. Inside a pipeline function calling it records a node."""

    def __init__(self, fn: Callable[..., Any], name: str, options: StepOptions) -> None:
        self.fn = fn
        self.name = name
        self.options = options
        self.signature = inspect.signature(fn)
        try:
            hints = typing.get_type_hints(fn)
        except Exception:  # an unresolvable annotation: the step is simply not type-checked
            hints = {}
        self.inputs: dict[str, Any] = {
            p: hints.get(p, inspect.Parameter.empty) for p in self.signature.parameters
        }
        self.output: Any = hints.get("return", inspect.Parameter.empty)
        self.code_hash = code_hash(fn)
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<step {self.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        graph = _tracer.graph
        if graph is None:
            return self.fn(*args, **kwargs)
        return self._trace(graph, args, kwargs)

    def _trace(self, graph: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Output:
        # the k-th call of a step is ``name_k`` (the first is ``name``); counted, not searched
        n = graph.calls.get(self.name, 0) + 1
        node_name = self.name if n == 1 else f"{self.name}_{n}"
        while node_name in graph.nodes:  # a step named like another's numbered call
            n += 1
            node_name = f"{self.name}_{n}"
        graph.calls[self.name] = n
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInput(f"step {node_name!r}: {exc}", field=node_name) from None
        bound.apply_defaults()
        bindings: dict[str, Binding] = {}
        for pname, value in bound.arguments.items():
            expected = self.inputs.get(pname, inspect.Parameter.empty)
            where = f"{node_name}.{pname}"
            if isinstance(value, Output):
                if value.node not in graph.nodes:
                    raise InvalidInput(
                        f"step {node_name!r} input {pname!r}: unknown step {value.node!r}", field=where
                    )
                if not compatible(value.type, expected):
                    raise InvalidInput(
                        f"step {node_name!r} input {pname!r} expects {_type_name(expected)}, but step"
                        f" {value.node!r} outputs {_type_name(value.type)}",
                        field=where,
                    )
                bindings[pname] = Binding("step", value.node)
            elif isinstance(value, Param):
                if not compatible(value.type, expected):
                    raise InvalidInput(
                        f"step {node_name!r} input {pname!r} expects {_type_name(expected)}, but the"
                        f" parameter {value.name!r} is {_type_name(value.type)}",
                        field=where,
                    )
                bindings[pname] = Binding("param", value.name)
            else:
                if not _json_safe(value):
                    raise InvalidInput(
                        f"step {node_name!r} input {pname!r}: a constant must be JSON"
                        f" (got {type(value).__name__}); pass other values between steps",
                        field=where,
                    )
                bindings[pname] = Binding("const", value=value)
        graph.nodes[node_name] = Node(node_name, self, bindings)
        return Output(node_name, self.output)


def step(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    gpus: int = 0,
    gpu_memory_mb: int = 0,
    cpus: float = 0.0,
    timeout_s: float | None = None,
    retries: int = 0,
    backoff_s: float = 1.0,
    cache: bool = True,
    job: bool = False,
) -> Any:
    """Make a function a pipeline step: ``@mlbox.step`` or ``@mlbox.step(gpus=1, retries=2)``."""
    if gpus < 0 or gpu_memory_mb < 0 or cpus < 0 or retries < 0 or backoff_s < 0:
        raise InvalidInput("step resources, retries and backoff must not be negative", field="step")
    if timeout_s is not None and timeout_s <= 0:
        raise InvalidInput("a step's timeout_s must be positive", field="timeout_s")
    options = StepOptions(gpus, gpu_memory_mb, cpus, timeout_s, retries, backoff_s, cache, job)

    def wrap(f: Callable[..., Any]) -> StepDef:
        return StepDef(f, name or f.__name__, options)

    return wrap(fn) if fn is not None else wrap


class PipelineDef:
    """A function made a pipeline; `trace` builds its graph for one set of parameters."""

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        self.fn = fn
        self.name = name
        self.signature = inspect.signature(fn)
        try:
            hints = typing.get_type_hints(fn)
        except Exception:
            hints = {}
        self.params: dict[str, Any] = {p: hints.get(p, Any) for p in self.signature.parameters}
        self.defaults: dict[str, Any] = {
            p.name: p.default for p in self.signature.parameters.values() if p.default is not p.empty
        }
        self.ref = f"{fn.__module__}:{fn.__qualname__}"
        self.import_root = import_root(fn.__module__)
        """The folder the module was imported from: stored with each run and schedule so that an
        appliance started elsewhere (not in the submitter's folder) imports the same module."""
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<pipeline {self.name}>"

    def resolve_params(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """The run's parameters: defaults overlaid with ``given``; unknown or missing ones refused."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise InvalidInput(
                f"pipeline {self.name!r} has no parameter {unknown[0]!r} (it has: {', '.join(self.params) or 'none'})",
                field=f"params.{unknown[0]}",
            )
        values = {**self.defaults, **given}
        for p in self.params:
            if p not in values:
                raise InvalidInput(f"pipeline {self.name!r} needs the parameter {p!r}", field=f"params.{p}")
            if not _json_safe(values[p]):
                raise InvalidInput(f"pipeline parameter {p!r} must be JSON", field=f"params.{p}")
            declared = self.params[p]
            if isinstance(declared, type) and not conforms(values[p], declared):
                raise InvalidInput(
                    f"pipeline parameter {p!r} must be {_type_name(declared)}, got {values[p]!r}",
                    field=f"params.{p}",
                )
        return values

    def trace(self) -> Graph:
        """The graph (parameters stay symbolic, so one graph serves every run)."""
        graph = Graph(self.name)
        previous = _tracer.graph
        _tracer.graph = graph
        try:
            self.fn(**{p: Param(p, t) for p, t in self.params.items()})
        finally:
            _tracer.graph = previous
        if not graph.nodes:
            raise InvalidInput(f"pipeline {self.name!r} calls no step", field="pipeline")
        graph.order()
        return graph

    def __call__(self, **params: Any) -> Any:
        """Run the pipeline in this process against the default home (`mlbox.pipelines.local`)."""
        from mlbox.pipelines.local import run_local

        return run_local(self, params)


def pipeline(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Make a function a pipeline: its parameters are the run's parameters; it calls steps."""

    def wrap(f: Callable[..., Any]) -> PipelineDef:
        return PipelineDef(f, name or f.__name__)

    return wrap(fn) if fn is not None else wrap


def topo_order(deps: Mapping[str, list[str]]) -> list[str]:
    """Nodes so that each comes after its dependencies; a cycle or a dangling edge is refused,
    naming a step on it."""
    for n, ds in deps.items():
        for d in ds:
            if d not in deps:
                raise InvalidInput(f"step {n!r} depends on unknown step {d!r}", field=n)
    order: list[str] = []
    state: dict[str, int] = {}
    for root in sorted(deps):
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            n, i = stack[-1]
            ds = deps[n]
            if i < len(ds):
                stack[-1] = (n, i + 1)
                d = ds[i]
                s = state.get(d, 0)
                if s == 1:
                    cycle = [x for x, _ in stack]
                    cycle = [*cycle[cycle.index(d) :], d]
                    raise InvalidInput(
                        f"the graph has a cycle (each step needs the next): {' -> '.join(cycle)}", field=d
                    )
                if s == 0:
                    state[d] = 1
                    stack.append((d, 0))
            else:
                stack.pop()
                state[n] = 2
                order.append(n)
    return order


def import_root(module: str) -> str | None:
    """The ``sys.path`` folder ``module`` (already imported) was found in, or None (``__main__``,
    a module without a file)."""
    mod = sys.modules.get(module)
    file = getattr(mod, "__file__", None)
    if module == "__main__" or not file:
        return None
    folder = Path(file).resolve().parent
    if Path(file).name == "__init__.py":
        folder = folder.parent
    for _ in range(module.count(".")):
        folder = folder.parent
    return str(folder)


def module_stamp(ref: str) -> tuple[int, int] | None:
    """The modification time and size of the file ``ref``'s module was loaded from (None: not
    loaded, or no file): a long-lived process reloads the module when they change."""
    file = getattr(sys.modules.get(ref.partition(":")[0]), "__file__", None)
    try:
        st = os.stat(file) if file else None
    except OSError:
        return None
    return None if st is None else (st.st_mtime_ns, st.st_size)


def resolve(ref: str, roots: Iterable[str] = (), *, reload: bool = False) -> PipelineDef:
    """The pipeline named ``package.module:name`` (imported: the appliance resumes runs by it).

    A module this process cannot import is looked for in ``roots`` too (the folders it was
    submitted from): the appliance does not run in the folder of the user who submitted it.
    ``reload``: import the module's file again (the user edited it since it was imported).
    """
    import importlib

    module, _, attr = ref.partition(":")
    if not module or not attr:
        raise InvalidInput(f"pipeline {ref!r} must read package.module:name", field="pipeline")
    try:
        try:
            loaded = sys.modules.get(module) if reload else None
            obj: Any = importlib.reload(loaded) if loaded is not None else importlib.import_module(module)
        except ModuleNotFoundError:
            extra = [r for r in roots if r not in sys.path]
            if not extra:
                raise
            sys.path.extend(extra)
            obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(f"cannot load pipeline {ref!r}: {exc}", field="pipeline") from None
    except Exception as exc:
        # The user's module raised while it was imported (a NameError, a bad @mlbox.step): that
        # is bad input naming their line, not an internal error of the CLI or the appliance.
        import traceback

        where = traceback.extract_tb(exc.__traceback__)[-1]
        raise InvalidInput(
            f"cannot load pipeline {ref!r}: {type(exc).__name__}: {exc} ({where.filename}, line {where.lineno})",
            field="pipeline",
        ) from None
    if not isinstance(obj, PipelineDef):
        raise InvalidInput(f"{ref!r} is not a @mlbox.pipeline", field="pipeline")
    return obj
