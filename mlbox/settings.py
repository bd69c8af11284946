"""The one settings object, read from ``MLBOX_*`` environment variables.

Loaded once at an entry point (CLI, client, test) and passed down; nothing
below reads the environment for configuration on its own. Each service with
settings owns a section (``MLBOX_<SERVICE>_*``, a frozen dataclass with
``from_env``) and adds it here as one field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mlbox.features.config import FeatureSettings
from mlbox.labeling.config import LabelingSettings
from mlbox.monitoring.config import MonitoringSettings
from mlbox.notebooks.config import NotebookSettings
from mlbox.pipelines.config import PipelineSettings
from mlbox.scheduler.config import SchedulerSettings
from mlbox.serving.config import ServingSettings
from mlbox.store.errors import InvalidInput

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: Path.home() / ".mlbox")
    """``MLBOX_HOME``: the one folder holding every store (default ``~/.mlbox``)."""
    host: str = "127.0.0.1"
    """``MLBOX_HOST``: interface the HTTP API binds; loopback unless you mean otherwise."""
    port: int = 5151
    """``MLBOX_PORT``: HTTP API port (0 picks a free one)."""
    allowed_hosts: tuple[str, ...] = ()
    """``MLBOX_ALLOWED_HOSTS``: extra Host header names accepted beside loopback
    (comma separated); anything else is refused, which defeats DNS rebinding."""
    heartbeat_s: float = 5.0
    """``MLBOX_HEARTBEAT_S``: how often a logging process proves it is alive."""
    crash_after_s: float = 60.0
    """``MLBOX_CRASH_AFTER_S``: a running run with no heartbeat for this long is
    marked crashed (used when its pid cannot be checked, e.g. another host)."""
    reap_every_s: float = 2.0
    """``MLBOX_REAP_EVERY_S``: how often the appliance looks for crashed runs."""
    retention_days: float = 30.0
    """``MLBOX_RETENTION_DAYS``: deleted runs and experiments stay restorable this long;
    ``mlbox gc`` purges them afterwards (its ``--older-than`` default)."""
    serving: ServingSettings = field(default_factory=ServingSettings)
    """``MLBOX_SERVING_*``: the scoring path (batching, queues, limits, shadow, prediction log)."""
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    """``MLBOX_GPUS``, ``MLBOX_SCHEDULER_*``: the job scheduler (GPU inventory, tick, kill grace)."""
    notebooks: NotebookSettings = field(default_factory=NotebookSettings)
    """``MLBOX_NOTEBOOK_*``: when idle notebook servers are culled, how often they are asked."""
    features: FeatureSettings = field(default_factory=FeatureSettings)
    """``MLBOX_FEATURES_*``: DuckDB's memory limit and threads for the feature store's offline work."""
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    """``MLBOX_MONITOR_*``: how often monitors run."""
    labeling: LabelingSettings = field(default_factory=LabelingSettings)
    """``MLBOX_LABELING_*``: the labeling screen's prefetch."""
    pipelines: PipelineSettings = field(default_factory=PipelineSettings)
    """``MLBOX_PIPELINES_*``: threads for in-process steps."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        s = cls()
        if env.get("MLBOX_HOME"):
            s = replace(s, home=Path(env["MLBOX_HOME"]).expanduser())
        if env.get("MLBOX_HOST"):
            s = replace(s, host=env["MLBOX_HOST"])
        if env.get("MLBOX_ALLOWED_HOSTS"):
            hosts = tuple(h.strip() for h in env["MLBOX_ALLOWED_HOSTS"].split(",") if h.strip())
            s = replace(s, allowed_hosts=hosts)
        for name, attr in (
            ("MLBOX_PORT", "port"),
            ("MLBOX_HEARTBEAT_S", "heartbeat_s"),
            ("MLBOX_CRASH_AFTER_S", "crash_after_s"),
            ("MLBOX_REAP_EVERY_S", "reap_every_s"),
            ("MLBOX_RETENTION_DAYS", "retention_days"),
        ):
            if env.get(name):
                kind: type[int] | type[float] = int if attr == "port" else float
                try:
                    value: int | float = kind(env[name])
                except ValueError:
                    raise InvalidInput(f"{name}={env[name]!r} is not a number", field=name) from None
                s = replace(s, **{attr: value})  # type: ignore[arg-type]
        return replace(s, **{name: section.from_env(env) for name, section in sections()})

    @property
    def accepted_hosts(self) -> frozenset[str]:
        return frozenset((*LOOPBACK_HOSTS, self.host, *self.allowed_hosts))


def sections() -> list[tuple[str, Any]]:
    """``(field, class)`` of each service's settings section: the fields of `Settings` whose
    class reads itself from the environment (``from_env``). A new service adds one field."""
    return [
        (f.name, f.default_factory)
        for f in fields(Settings)
        if f.default_factory is not MISSING and hasattr(f.default_factory, "from_env")
    ]
