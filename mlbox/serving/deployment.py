"""One registered version made servable: its predict function, batcher and statistics.

`build_deployment` does the slow part off the event loop (load from verified
files, assemble composed models, warm up); the serving service then swaps it
into place. A deployment is shared by every reference that resolves to its
version (``churn@champion`` and ``churn/3``): one inference thread per model.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from mlbox.registry.loaded import LoadedModel
from mlbox.registry.refs import ModelRef
from mlbox.registry.schemas import Model, ModelVersion
from mlbox.registry.signature import Schema, validate
from mlbox.serving.batcher import Batcher, Outputs
from mlbox.serving.codecs import json_floats
from mlbox.serving.compose import MAX_DEPTH, Composition, compose
from mlbox.serving.config import ServingSettings
from mlbox.serving.features import FeatureLookup, with_features
from mlbox.serving.metrics import ModelStats
from mlbox.serving.tensors import to_outputs
from mlbox.store.errors import InvalidInput

log = logging.getLogger("mlbox.serving")


class GpuPlacer(Protocol):
    """Where serving gets GPUs: the scheduler's lease table (`Appliance` builds one over it)."""

    def take(self, holder: str) -> str | None:
        """Lease one GPU to ``holder``; its torch device (``cpu`` for a simulated GPU),
        None if none is free."""

    def give_back(self, holder: str) -> None: ...


class Registry(Protocol):
    """What serving uses of `mlbox.registry.service.RegistryService`."""

    def list_models(self) -> list[Model]: ...

    def resolve(self, ref: str | ModelRef) -> ModelVersion: ...

    def load(self, ref: str | ModelRef | ModelVersion, *, device: str = "cpu") -> LoadedModel: ...


def device_for(version: ModelVersion, gpus: str = "auto") -> str:
    """Where a version runs: torch models on a GPU when one is given to serving, everything else on CPU.

    ``gpus`` is ``MLBOX_SERVING_GPUS``: ``auto`` asks CUDA (only for torch
    models, so other models never import torch), ``none`` or empty keeps
    the CPU, ``1,0`` uses the first index listed. This is the seam the
    scheduler's GPU inventory plugs into.
    """
    if version.flavor != "pytorch":
        return "cpu"
    choice = gpus.strip().lower()
    if choice in ("", "none", "cpu"):
        return "cpu"
    if choice != "auto":
        first = choice.split(",")[0].strip()
        return f"cuda:{int(first)}" if first.isdigit() else "cpu"
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return "cpu"
    try:
        import torch

        return "cuda:0" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def thread_setup(version: ModelVersion) -> Callable[[], None] | None:
    """What the inference thread of ``version`` sets once for its framework (thread-local settings).

    scikit-learn re-validates its own hyper-parameters on every ``predict``
    (about 40% of a small GradientBoosting call); its config is thread-local, so
    turning that off in the model's own thread changes nothing elsewhere. Input
    data is still checked (finiteness, shape) by scikit-learn as before. Any
    model may use scikit-learn inside (a python-flavor wrapper, a composed
    model's parts), so this applies whenever scikit-learn is loaded.
    """
    if "sklearn" not in sys.modules:
        return None

    def skip_parameter_validation() -> None:
        import sklearn

        sklearn.set_config(skip_parameter_validation=True)

    return skip_parameter_validation


SINGLE_OUTPUT = "output_0"
"""The name of a model's one unnamed output, whatever its flavor (see `output_name`)."""


def output_name(version: ModelVersion) -> str:
    """The name of a single-output model's output: its signature's, else ``output_0``.

    Output names come from the signature, never from the flavor: a model that
    returns one array answers ``output_0`` (a tuple of arrays ``output_0``,
    ``output_1``, …; a dict its keys; a frame its columns), so a client that
    asks for an output by name keeps working when an alias moves to a model
    of another flavor. Before, a scikit-learn model's output was named after
    the method called (``predict``); `legacy_output_names` keeps that name
    answering where a client asks for it.
    """
    outputs = version.signature.outputs if version.signature else None
    if outputs is not None and outputs.kind == "tensor" and outputs.tensors and outputs.tensors[0].name:
        return outputs.tensors[0].name
    return SINGLE_OUTPUT


def single_output(version: ModelVersion) -> bool:
    """Whether the signature says the model returns one unnamed array (renamed to `output_name`)."""
    outputs = version.signature.outputs if version.signature else None
    return outputs is not None and outputs.kind == "tensor"


def legacy_output_names(version: ModelVersion) -> dict[str, str]:
    """``{old name: name}`` for the output names served before names came from the signature
    (the method called: ``predict``, ``predict_proba``), so requests asking for them still work."""
    method = version.manifest.get("method")
    name = output_name(version)
    if not isinstance(method, str) or method == name or (version.signature and not single_output(version)):
        return {}
    return {method: name}


def example_for(schema: Schema) -> Any:
    """One synthetic row matching ``schema`` (zeros, empty strings), for warming a model up."""

    def column(dtype: str, shape: Sequence[int]) -> np.ndarray:
        dims = [1, *[d if d > 0 else 1 for d in shape[1:]]]
        if dtype in ("string", "bytes", "object", "category"):
            arr = np.empty(dims, dtype=object)
            arr.fill("" if dtype != "bytes" else b"")
            return arr
        if dtype in ("datetime", "date"):
            return np.zeros(dims, dtype="datetime64[us]")
        return np.zeros(dims, dtype=np.dtype(dtype))

    if schema.kind == "columns":
        return {c.name: column(c.dtype, [-1]) for c in schema.columns}
    if schema.kind == "tensors":
        return {t.name or "input": column(t.dtype, t.shape) for t in schema.tensors}
    spec = schema.tensors[0]
    return column(spec.dtype, spec.shape)


@dataclass
class Deployment:
    version: ModelVersion
    schema: Schema | None
    batcher: Batcher
    stats: ModelStats
    output_name: str
    depends: dict[str, int] = field(default_factory=dict)
    """Part reference -> the version it resolved to when this (composed) deployment was built."""
    legacy_outputs: dict[str, str] = field(default_factory=dict)
    """Output names answered before they came from the signature -> today's (`legacy_output_names`)."""
    by_entity: bool = False
    """Requests carry entity keys; features are looked up (`mlbox.serving.features`)."""

    @property
    def name(self) -> str:
        return self.version.name

    @property
    def number(self) -> int:
        return self.version.version

    def close(self, wait: bool = False) -> None:
        self.batcher.close(wait=wait)


def _device(
    version: ModelVersion,
    settings: ServingSettings,
    placer: GpuPlacer | None,
    holders: list[str] | None,
    top: ModelVersion,
) -> str:
    """``device_for``, except that with a placer (the appliance's lease table) and ``gpus=auto`` a
    torch model runs on a GPU it leased, or on the CPU when none is free."""
    if (
        placer is None
        or holders is None
        or version.flavor != "pytorch"
        or settings.gpus.strip().lower() != "auto"
    ):
        return device_for(version, settings.gpus)
    # a part of a composed model holds its GPU in the composed model's name, apart from its own deployment
    holder = f"serving:{top.ref}" if version is top else f"serving:{top.ref}+{version.ref}"
    device = placer.take(holder)
    if device is None:
        return "cpu"
    holders.append(holder)
    return device


def _step(schema: Schema | None, predict: Callable[[Any], Any]) -> Callable[[Any], Any]:
    if schema is None:
        return predict
    return lambda inputs: predict(validate(schema, inputs))


def assemble(
    registry: Registry,
    version: ModelVersion,
    settings: ServingSettings,
    depends: dict[str, int],
    depth: int = 0,
    lookup: FeatureLookup | None = None,
    placer: GpuPlacer | None = None,
    holders: list[str] | None = None,
    top: ModelVersion | None = None,
) -> tuple[Callable[[Any], Any], Schema | None]:
    """The predict function of ``version`` (taking inputs valid for the returned schema)."""
    if depth > MAX_DEPTH:
        raise InvalidInput(
            f"composed model {version.ref} nests deeper than {MAX_DEPTH} (a cycle?)", field="parts"
        )
    own_schema = version.signature.inputs if version.signature else None
    if version.flavor != "composed":
        loaded = registry.load(version, device=_device(version, settings, placer, holders, top or version))
        refs = version.manifest.get("features")
        if refs:
            if lookup is None:
                raise InvalidInput(
                    f"{version.ref} takes feature views as inputs, and no feature store is attached",
                    field="features",
                )
            # the request holds entity keys, checked by the lookup; the features meet the signature
            return with_features(refs, lookup, own_schema, loaded.predictor.predict), None
        return loaded.predictor.predict, own_schema
    composition = Composition.from_manifest(version.manifest)
    steps: list[Callable[[Any], Any]] = []
    first_schema: Schema | None = None
    for i, ref in enumerate(composition.parts):
        part = registry.resolve(ref)
        depends[ref] = part.version
        predict, schema = assemble(
            registry, part, settings, depends, depth + 1, lookup, placer, holders, top or version
        )
        if i == 0:
            first_schema = schema
        # the request was validated against the first part's schema unless the composed model has its own
        steps.append(predict if i == 0 and own_schema is None else _step(schema, predict))
    return compose(composition, steps), own_schema or first_schema


def build_deployment(
    registry: Registry,
    version: ModelVersion,
    settings: ServingSettings,
    stats: ModelStats,
    lookup: FeatureLookup | None = None,
    placer: GpuPlacer | None = None,
) -> Deployment:
    """Load, assemble and warm ``version``; the returned deployment's batcher is running.

    GPUs leased for it are given back once its batcher has drained (or at once if building fails).
    """
    depends: dict[str, int] = {}
    holders: list[str] = []

    def give_back() -> None:
        if placer is not None:
            for holder in holders:
                placer.give_back(holder)

    try:
        predict, schema = assemble(
            registry, version, settings, depends, lookup=lookup, placer=placer, holders=holders
        )
    except BaseException:
        give_back()
        raise
    name = output_name(version)
    rename = single_output(version)

    def run(inputs: Any) -> Outputs:
        outputs = to_outputs(predict(inputs), name)
        if rename and len(outputs) == 1 and name not in outputs:  # a named Series: the signature's name
            return {name: next(iter(outputs.values()))}
        return outputs

    json_floats()  # the reader of JSON float tensors (numba), loaded now rather than by a request
    if schema is not None:
        try:
            run(validate(schema, example_for(schema)))
        except Exception as exc:  # a synthetic row may be invalid for the model: warn, still serve
            log.warning(
                "warm-up of %s on a synthetic row failed: %s: %s", version.ref, type(exc).__name__, exc
            )
    batcher = Batcher(
        run,
        name=version.ref,
        max_batch_size=settings.max_batch_size,
        max_delay_s=settings.max_delay_ms / 1000.0,
        max_queue=settings.max_queue,
        retry_after_s=settings.retry_after_s,
        on_batch=stats.batch,
        on_start=thread_setup(version),
        on_exit=give_back,
    )
    stats.queue_depth = lambda: batcher.depth
    return Deployment(
        version,
        schema,
        batcher,
        stats,
        name,
        depends,
        legacy_output_names(version),
        by_entity=bool(version.manifest.get("features")),
    )
