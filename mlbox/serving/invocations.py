"""Which model MLflow's ``/invocations`` route scores: a pure decision over what is served.

``mlflow models serve`` serves one model, so its clients (and SageMaker's)
post to ``/invocations`` without naming one. mlbox serves many; this module
picks the one such a client means, or says how to choose:

* ``MLBOX_SERVING_INVOCATIONS_MODEL`` (a reference such as ``churn@champion``) wins;
* else the one model served by alias: its ``champion`` if it has one, else its
  only aliased version;
* else no answer: 404 when no model is served by alias, 409 when several are
  (or one model's aliases point at several versions and none is ``champion``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mlbox.store.errors import Conflict, NotFound

CHAMPION = "champion"
CHOOSE = "set MLBOX_SERVING_INVOCATIONS_MODEL=NAME@ALIAS to choose the model /invocations scores"


def choose_model(setting: str, served: Mapping[str, int], failed: Iterable[str] = ()) -> str:
    """The reference ``/invocations`` scores.

    ``served`` maps the references routed now to their version numbers;
    ``failed`` are references whose load failed (still aliased, so still meant:
    scoring them answers why they are not ready instead of picking another model).
    """
    if setting:
        return setting
    aliased = {k: v for k, v in served.items() if "@" in k}
    keys = sorted({*aliased, *(k for k in failed if "@" in k)})
    names = sorted({k.split("@")[0] for k in keys})
    if not names:
        raise NotFound(
            "no model is served for /invocations: give one an alias"
            f" (mlbox models alias NAME {CHAMPION} VERSION), or {CHOOSE}",
            field="model",
        )
    if len(names) > 1:
        raise Conflict(f"several models are served ({', '.join(names)}): {CHOOSE}", field="model")
    champion = f"{names[0]}@{CHAMPION}"
    if champion in keys:
        return champion
    if len(keys) == 1 or (len(aliased) == len(keys) and len(set(aliased.values())) == 1):
        return keys[0]
    raise Conflict(
        f"{names[0]} is served under aliases on different versions ({', '.join(keys)}): {CHOOSE}",
        field="model",
    )
