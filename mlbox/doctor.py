"""`mlbox doctor`: the store's checks (`mlbox.store.doctor`) with what the services know.

The store checks bytes and knows no service; this module says which columns of which
service's tables name artifact objects, where each service's writers leave temporaries,
and how to tell a live writer (`mlbox.scheduler.processes.process_start`, as the appliance
checks its jobs). It opens no service: a home too damaged to build `Services` from is the
one that most needs a doctor.
"""

from __future__ import annotations

from pathlib import Path

from mlbox.registry.cache import STAGING, STAGING_PREFIX, TEMP_PREFIXES
from mlbox.scheduler.processes import process_start
from mlbox.store.doctor import Finding, TempRule, examine

REFERENCES: tuple[tuple[str, str], ...] = (
    ("artifacts", "sha256"),  # tracking: a run's logged files
    ("model_files", "sha256"),  # registry: a model version's files
)
"""``(table, column)`` pairs whose values are artifact object names."""

TEMP_RULES: tuple[TempRule, ...] = (
    TempRule("artifacts/tmp", ("",)),  # ArtifactStore.put_stream
    TempRule("cache/models", TEMP_PREFIXES),  # the registry's model cache
    TempRule(f"cache/models/{STAGING}", (STAGING_PREFIX,)),  # a registration being staged
    TempRule("", (".tmp-",), recursive=True),  # Parquet segments, job records, checkpoints
)


def run_doctor(home: Path, *, repair: bool = False) -> list[Finding]:
    """Every finding over ``home`` (repaired where possible when ``repair``)."""
    return examine(
        home, references=REFERENCES, temp_rules=TEMP_RULES, process_start=process_start, repair=repair
    )
