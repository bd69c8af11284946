"""PyTorch models in three forms, chosen with ``options={"form": ...}``.

* ``export``: a ``torch.export`` program (``model.pt2``), traced from the
  example input with a dynamic batch dimension. The default when an example
  input is given; if export fails the model is saved as TorchScript instead
  and the manifest keeps the reason (``export_error``).
* ``torchscript``: ``torch.jit.script`` (``torch.jit.trace`` with the example
  input when scripting fails), saved as ``model.pt``. torch 2.13 deprecates
  TorchScript, but existing models and C++ users still have it.
* ``state_dict``: the weights (``state_dict.pt``, loaded with
  ``weights_only=True``) plus ``class`` (``module:Class`` or a builder
  function, importable at load time) and ``init`` (its JSON keyword arguments).
* ``pickle``: a whole module saved with ``torch.save`` (what MLflow's pytorch
  flavor writes as ``data/model.pth``), only adopted, never written: loading
  it unpickles, so `mlbox models import` asks for ``--trust`` first.

Every form predicts under ``torch.inference_mode()`` on the device given at
load; float inputs are cast to float32, outputs come back as numpy arrays
(a dict of arrays for a tuple or dict of tensors). A dict of inputs is passed
positionally in the order of the example's keys.
"""

from __future__ import annotations

import importlib
import json
import sys
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlbox.registry.flavors.base import Flavor, Predictor, as_matrix, chosen_file, frame_library
from mlbox.store.errors import InvalidInput

if TYPE_CHECKING:
    import torch

FORMS = ("export", "torchscript", "state_dict")
"""The forms a model is saved in."""
LOAD_FORMS = (*FORMS, "pickle")
"""The forms files saved elsewhere may be adopted in."""


def import_object(path: str, field: str = "options.class") -> Any:
    """``package.module:Name`` (or ``:Outer.Inner``) imported; `InvalidInput` naming ``field`` if not."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidInput(f"{path!r} is not an import path like 'package.module:Class'", field=field)
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(f"cannot import {path!r}: {exc}", field=field) from None
    return obj


def _tensor(value: Any, device: str) -> torch.Tensor:
    import torch

    if isinstance(value, torch.Tensor):
        t = value
    else:
        arr = as_matrix(value) if frame_library(value) is not None else np.asarray(value)
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_floating_point() and t.dtype != torch.float32:
        t = t.float()
    return t.to(device)


def _arguments(inputs: Any, names: list[str] | None, device: str) -> tuple[torch.Tensor, ...]:
    if isinstance(inputs, Mapping):
        order = names or list(inputs)
        missing = [n for n in order if n not in inputs]
        if missing:
            raise InvalidInput(f"{missing[0]}: missing input", field=missing[0])
        return tuple(_tensor(inputs[n], device) for n in order)
    return (_tensor(inputs, device),)


def _numpy(out: Any) -> Any:
    import torch

    if isinstance(out, torch.Tensor):
        return out.detach().cpu().numpy()
    if isinstance(out, Mapping):
        return {str(k): _numpy(v) for k, v in out.items()}
    if isinstance(out, (tuple, list)):
        return {f"output_{i}": _numpy(v) for i, v in enumerate(out)}
    return out


class TorchPredictor:
    def __init__(self, module: Any, names: list[str] | None, device: str) -> None:
        self.module = module
        self.names = names
        self.device = device

    def predict(self, inputs: Any) -> Any:
        import torch

        args = _arguments(inputs, self.names, self.device)
        with torch.inference_mode():
            return _numpy(self.module(*args))


def _batch_of_two(args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """A batch of 1 would be specialised by export; repeat it so the batch stays dynamic."""
    import torch

    if args and all(a.ndim >= 1 and a.shape[0] == 1 for a in args):
        return tuple(torch.cat([a, a]) for a in args)
    return args


class PytorchFlavor(Flavor):
    name = "pytorch"

    def detect(self, model: object) -> bool:
        if "torch" not in sys.modules:
            return False
        import torch

        return isinstance(model, (torch.nn.Module, torch.jit.ScriptModule, torch.export.ExportedProgram))

    def save(
        self, model: Any, folder: Path, *, example_input: Any, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        import torch

        names = [str(k) for k in example_input] if isinstance(example_input, Mapping) else None
        args = None if example_input is None else _arguments(example_input, names, "cpu")
        form = options.get("form")
        if form is not None and form not in FORMS:
            raise InvalidInput(f"form {form!r} is not one of {list(FORMS)}", field="options.form")
        common: dict[str, Any] = {"torch_version": torch.__version__, "inputs": names}
        if isinstance(model, torch.export.ExportedProgram):
            if form not in (None, "export"):
                raise InvalidInput("an ExportedProgram is saved as form 'export'", field="options.form")
            torch.export.save(model, folder / "model.pt2")
            return {"form": "export", "file": "model.pt2", **common}
        if not isinstance(model, torch.nn.Module):
            raise InvalidInput(f"{type(model).__name__} is not a torch module", field="model")
        if form == "state_dict":
            return {**self._save_state_dict(model, folder, options), **common}
        was_training = model.training
        model.eval()
        try:
            if form == "export" or (form is None and args is not None):
                try:
                    return {**self._save_export(model, folder, args), **common}
                except InvalidInput:
                    raise
                except Exception as exc:
                    if form == "export":
                        raise InvalidInput(f"torch.export failed: {exc}", field="model") from None
                    common["export_error"] = f"{type(exc).__name__}: {exc}"[:500]
            return {**self._save_torchscript(model, folder, args), **common}
        finally:
            model.train(was_training)

    def _save_export(self, model: Any, folder: Path, args: tuple[Any, ...] | None) -> dict[str, Any]:
        import torch

        if args is None:
            raise InvalidInput("form 'export' needs an example_input to trace", field="example_input")
        args = _batch_of_two(args)
        dynamic = tuple({0: torch.export.Dim.AUTO} if a.ndim else {} for a in args)
        program = torch.export.export(model, args, dynamic_shapes=dynamic)
        torch.export.save(program, folder / "model.pt2")
        return {"form": "export", "file": "model.pt2"}

    def _save_torchscript(self, model: Any, folder: Path, args: tuple[Any, ...] | None) -> dict[str, Any]:
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the caller chose TorchScript
            if isinstance(model, torch.jit.ScriptModule):
                scripted, how = model, "script"
            else:
                try:
                    scripted, how = torch.jit.script(model), "script"
                except Exception as exc:
                    if args is None:
                        raise InvalidInput(
                            f"torch.jit.script failed ({type(exc).__name__}: {str(exc)[:300]}); give an"
                            " example_input to trace the model instead",
                            field="model",
                        ) from None
                    scripted, how = torch.jit.trace(model, args), "trace"
            torch.jit.save(scripted, str(folder / "model.pt"))
        return {"form": "torchscript", "file": "model.pt", "how": how}

    def _save_state_dict(self, model: Any, folder: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        import torch

        cls = type(model)
        path = options.get("class") or f"{cls.__module__}:{cls.__qualname__}"
        if not isinstance(path, str):
            raise InvalidInput("class must be an import path 'module:Class'", field="options.class")
        if path.startswith("__main__:") or "<locals>" in path:
            raise InvalidInput(
                f"{path} cannot be imported by another process; move the class into a module",
                field="options.class",
            )
        import_object(path)  # fail now, not when the appliance loads it
        init = options.get("init", {})
        try:
            json.dumps(init)
        except TypeError as exc:
            raise InvalidInput(f"init must be JSON: {exc}", field="options.init") from None
        if not isinstance(init, dict):
            raise InvalidInput("init must be a dict of keyword arguments", field="options.init")
        torch.save(model.state_dict(), folder / "state_dict.pt")
        return {"form": "state_dict", "file": "state_dict.pt", "class": path, "init": init}

    def adopt(self, folder: Path, options: Mapping[str, Any]) -> dict[str, Any]:
        file = chosen_file(folder, options, (".pt", ".pth", ".pt2", ".ts"), self.name)
        form = options.get("form")
        if form is None:
            form = "export" if file.endswith(".pt2") else _guess_form(folder / file)
        if form not in LOAD_FORMS:
            raise InvalidInput(f"form {form!r} is not one of {list(LOAD_FORMS)}", field="options.form")
        manifest: dict[str, Any] = {"form": form, "file": file, "inputs": options.get("inputs")}
        if form == "state_dict":
            path = options.get("class")
            if not isinstance(path, str):
                raise InvalidInput(
                    "a state dict needs options={'class': 'module:Class', 'init': {...}}",
                    field="options.class",
                )
            import_object(path)
            manifest.update({"class": path, "init": dict(options.get("init", {}))})
        return manifest

    def load(self, folder: Path, manifest: Mapping[str, Any], *, device: str) -> Predictor:
        import torch

        path = folder / manifest["file"]
        form = manifest["form"]
        if form == "export":
            module = torch.export.load(path).module()
            if device != "cpu":
                module = module.to(device)
        elif form == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(path), map_location=device).eval()
        elif form == "state_dict":
            builder = import_object(manifest["class"], field="manifest.class")
            module = builder(**manifest.get("init", {}))
            module.load_state_dict(torch.load(path, map_location=device, weights_only=True))
            module = module.to(device).eval()
        elif form == "pickle":
            module = torch.load(path, map_location=device, weights_only=False).eval()
        else:
            raise InvalidInput(f"unknown torch form {form!r}", field="manifest.form")
        return TorchPredictor(module, manifest.get("inputs"), device)


def _guess_form(path: Path) -> str:
    """TorchScript archives hold ``code/``; a plain ``torch.save`` of a state dict does not."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return "state_dict"
    return "torchscript" if any("/code/" in n or n.endswith("constants.pkl") for n in names) else "state_dict"


FLAVOR = PytorchFlavor()
