"""Calling a pipeline like a function: it runs in this process against the default home."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlbox.pipelines.define import PipelineDef
    from mlbox.pipelines.schemas import PipelineRun


def run_local(pdef: PipelineDef, params: dict[str, Any]) -> PipelineRun:
    """Open the services of ``$MLBOX_HOME``, submit and drive the run to its end."""
    from mlbox.services import Services
    from mlbox.settings import Settings

    services = Services.open(Settings.from_env())
    run = services.pipelines.submit(pdef, params)
    try:
        return services.pipelines.wait(run.id)
    finally:
        services.pipelines.close()
