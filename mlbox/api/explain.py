"""Explanations of registered models over HTTP (every route needs the token, as all management
routes do; see `mlbox.monitoring.explain` for what the values mean).

``POST /api/v1/models/{name}/explain`` takes the bodies of the predict route (``instances``,
``inputs``, ``dataframe_split``, ``dataframe_records``, or an OIP V2 request) plus ``method``
(``shap``, ``lime``, ``ig``), ``target`` and one of ``version`` / ``alias``; ``GET
/api/v1/models/{name}/importance`` answers global importance over the version's reference.
The body is decoded by the serving codecs, so a body the predict route refuses is refused here
with the same field.
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from mlbox.monitoring.explain import Explanation, Explanations, Importance, model_ref
from mlbox.monitoring.service import MonitoringService
from mlbox.store.errors import InvalidInput, MlboxError


class NotSetUp(MlboxError):
    """The monitoring service was built without its explanations (503: the appliance's fault)."""

    http_status = 503


def _explanations(monitoring: MonitoringService) -> Explanations:
    found = getattr(monitoring, "explanations", None)
    if not isinstance(found, Explanations):
        raise NotSetUp("explanations are not set up in this appliance", field="model")
    return found


class ExplainController(Controller):
    path = "/api/v1/models"
    tags = ("monitoring",)

    @post(
        "/{name:str}/explain",
        operation_id="explainPredictions",
        status_code=200,
        summary="Explain predictions (SHAP, LIME or integrated gradients) for rows in a predict body",
    )
    async def explain(
        self,
        monitoring: NamedDependency[MonitoringService],
        request: Request[Any, Any, Any],
        name: FromPath[str],
    ) -> Explanation:
        body = await request.body()
        return await asyncio.to_thread(_explanations(monitoring).explain_body, name, body)

    @get(
        "/{name:str}/importance",
        operation_id="getImportance",
        sync_to_thread=True,
        summary="Global importance: mean |SHAP| (or |IG|) per feature over the version's reference",
    )
    def importance(
        self,
        monitoring: NamedDependency[MonitoringService],
        name: FromPath[str],
        n: FromQuery[int] = 200,
        method: FromQuery[str | None] = None,
        version: FromQuery[int | None] = None,
        alias: FromQuery[str | None] = None,
    ) -> Importance:
        if method == "lime":
            raise InvalidInput("global importance is computed with shap or ig, not lime", field="method")
        ref = model_ref(name, version, alias)
        return _explanations(monitoring).global_importance(ref, n, method=method)
