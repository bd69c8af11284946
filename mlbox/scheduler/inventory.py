"""Which GPUs exist: NVML's view of the machine, or a simulated list from ``MLBOX_GPUS``.

NVML (nvidia-ml-py) is imported lazily and only asked when no simulation is
configured; any failure (no driver, no library) means "no GPUs", so CPU-only
machines need nothing installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlbox.scheduler.schemas import Gpu
from mlbox.store.errors import InvalidInput

MAX_SIMULATED = 1024


def _bad(text: str, why: str) -> InvalidInput:
    return InvalidInput(
        f"MLBOX_GPUS={text!r}: {why} (write a count like 4, or indices like 0,1,2,3, "
        "optionally with MiB: 0:24000,1:24000)",
        field="MLBOX_GPUS",
    )


def parse_gpus(text: str) -> list[Gpu]:
    """``4`` -> GPUs 0-3; ``0,2`` -> GPUs 0 and 2; ``0:24000,1:16000`` -> with memory in MiB."""
    text = text.strip()
    if text.lower() in ("", "none"):
        return []
    if text.isdigit():
        count = int(text)
        if count > MAX_SIMULATED:
            raise _bad(text, f"at most {MAX_SIMULATED} simulated GPUs")
        return [Gpu(index=i, name="simulated", memory_mb=None, simulated=True) for i in range(count)]
    gpus: list[Gpu] = []
    seen: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        index_text, _, memory_text = part.partition(":")
        if not index_text.strip().isdigit():
            raise _bad(text, f"{index_text!r} is not a GPU index")
        index = int(index_text)
        if index in seen:
            raise _bad(text, f"GPU {index} is listed twice")
        memory: int | None = None
        if memory_text:
            if not memory_text.strip().isdigit() or int(memory_text) <= 0:
                raise _bad(text, f"{memory_text!r} is not a memory size in MiB")
            memory = int(memory_text)
        seen.add(index)
        gpus.append(Gpu(index=index, name="simulated", memory_mb=memory, simulated=True))
    if len(gpus) > MAX_SIMULATED:
        raise _bad(text, f"at most {MAX_SIMULATED} simulated GPUs")
    return sorted(gpus, key=lambda g: g.index)


def _nvml() -> Any | None:
    """The initialised ``pynvml`` module, or None when there is no driver or library."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:
        return None


def nvml_inventory() -> list[Gpu]:
    nvml = _nvml()
    if nvml is None:
        return []
    gpus = []
    try:
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            name = nvml.nvmlDeviceGetName(handle)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024)
            gpus.append(
                Gpu(
                    index=i,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    memory_mb=int(memory),
                    simulated=False,
                )
            )
    except Exception:
        return gpus
    return gpus


def discover(simulated: str | None) -> list[Gpu]:
    """The inventory: the simulated list when configured, else NVML's (empty without a driver)."""
    if simulated is not None:
        return parse_gpus(simulated)
    return nvml_inventory()


def usage(gpus: Sequence[Gpu]) -> dict[int, tuple[float | None, int | None]]:
    """Utilization (percent) and memory used (MiB) per real GPU; nothing for simulated ones."""
    real = [g for g in gpus if not g.simulated]
    if not real:
        return {}
    nvml = _nvml()
    if nvml is None:
        return {}
    out: dict[int, tuple[float | None, int | None]] = {}
    for g in real:
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(g.index)
            util = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            used = int(nvml.nvmlDeviceGetMemoryInfo(handle).used // (1024 * 1024))
            out[g.index] = (util, used)
        except Exception:
            out[g.index] = (None, None)
    return out
