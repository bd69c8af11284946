"""Settings of the scoring path, read from ``MLBOX_SERVING_*`` environment variables.

Kept as its own frozen dataclass so `mlbox.settings.Settings` can hold it as
one field (``settings.serving``) and tests can build one with the values they
need (a queue of one, a delay of zero) without touching the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from mlbox.registry.refs import parse_ref
from mlbox.store.errors import InvalidInput

_AT_LEAST_ONE = (
    "max_batch_size",
    "max_queue",
    "max_body_bytes",
    "max_inflight",
    "min_inflight_per_model",
    "max_connections",
)


@dataclass(frozen=True)
class ServingSettings:
    max_batch_size: int = 256
    """``MLBOX_SERVING_MAX_BATCH_SIZE``: most rows one model call receives."""
    max_delay_ms: float = 0.0
    """``MLBOX_SERVING_MAX_DELAY_MS``: how long the first queued request may wait for others to
    join its batch. 0 batches what queued while the model was busy, which is what keeps p99 low
    under closed-loop load; raise it for models whose per-call cost dwarfs per-row cost (GPUs)."""
    max_queue: int = 1024
    """``MLBOX_SERVING_MAX_QUEUE``: requests waiting per served model; beyond it 503 + Retry-After."""
    timeout_s: float = 30.0
    """``MLBOX_SERVING_TIMEOUT_S``: a request not answered in this time gets 504."""
    max_body_bytes: int = 8 * 1024 * 1024
    """``MLBOX_SERVING_MAX_BODY_BYTES``: larger scoring bodies get 413 (Content-Length and bytes read)."""
    poll_s: float = 0.5
    """``MLBOX_SERVING_POLL_S``: how often the alias table is read to find moved aliases."""
    shadow: bool = True
    """``MLBOX_SERVING_SHADOW``: mirror a champion's traffic to its ``challenger`` when one exists."""
    log_predictions: bool = True
    """``MLBOX_SERVING_LOG_PREDICTIONS``: append every prediction to the Parquet prediction log."""
    log_flush_s: float = 1.0
    """``MLBOX_SERVING_LOG_FLUSH_S``: how often buffered predictions are written as a segment."""
    log_max_buffer: int = 200_000
    """``MLBOX_SERVING_LOG_MAX_BUFFER``: predictions held in memory at most; beyond it new ones are
    dropped (and counted) rather than slowing responses."""
    retry_after_s: int = 1
    """``MLBOX_SERVING_RETRY_AFTER_S``: the Retry-After a 503 carries."""
    max_inflight: int = 256
    """``MLBOX_SERVING_MAX_INFLIGHT``: scoring requests answered at once, all models together; one
    more gets 503 + Retry-After at once instead of queueing (`mlbox.serving.admission`). Health
    and management routes do not count and are never refused by it."""
    latency_tolerance: float = 2.0
    """``MLBOX_SERVING_LATENCY_TOLERANCE``: each model's own in-flight limit shrinks while its answers
    take longer than this many times its fastest recent answer, and grows back while they do not;
    0 turns the per-model limit off."""
    min_inflight_per_model: int = 3
    """``MLBOX_SERVING_MIN_INFLIGHT_PER_MODEL``: the per-model limit never shrinks below this, so a
    few clients are never refused because a latency spike cut the limit; a low floor keeps the
    admitted latency of a costly model close to its unloaded latency."""
    max_connections: int = 1000
    """``MLBOX_SERVING_MAX_CONNECTIONS``: open HTTP connections (uvicorn's ``limit_concurrency``);
    while more are open, every request gets uvicorn's plain-text 503 and its connection is closed."""
    drain_s: float = 10.0
    """``MLBOX_SERVING_DRAIN_S``: on SIGTERM, how long requests being answered may take to finish
    (new scoring requests get 503 meanwhile) before connections are closed."""
    fast_path: bool = True
    """``MLBOX_SERVING_FAST_PATH``: answer the scoring POST routes before Litestar routes them
    (`mlbox.api.serving.ScoringFastPath`); off, the Litestar handlers answer, identically but slower."""
    gpus: str = "auto"
    """``MLBOX_SERVING_GPUS``: GPUs torch models may be served on: ``auto`` (CUDA decides), ``none``,
    or indices such as ``0,1`` (the first is used); see `mlbox.serving.deployment.device_for`."""

    # -- versions loaded on demand (issue 12): only for a caller with the token, capped, on the CPU --
    max_on_demand: int = 4
    """``MLBOX_SERVING_MAX_ON_DEMAND``: versions no alias points to that callers with the API token may
    have loaded at once (the least recently used is unloaded to make room); 0 loads none on demand.
    Open routes never load one (`mlbox.serving.ondemand`); such versions score on the CPU."""
    on_demand_idle_s: float = 600.0
    """``MLBOX_SERVING_ON_DEMAND_IDLE_S``: a version loaded on demand and not scored for this long is
    unloaded; 0 keeps it until the cap pushes it out."""

    # -- who may score (issue 12): for an appliance bound beyond loopback --
    require_token: bool = False
    """``MLBOX_SERVING_REQUIRE_TOKEN``: scoring, model metadata and ``/metrics`` need the API token too
    (`mlbox.api.security.SCORING_ROUTES`), the fast path's POSTs included; health and the schema stay
    open. Off, they are open like KServe's on loopback; ``mlbox up`` warns when they are open beyond it."""

    invocations_model: str = ""
    """``MLBOX_SERVING_INVOCATIONS_MODEL``: the model MLflow's ``POST /invocations`` scores, a reference
    such as ``churn@champion``; empty, the one model served by alias (its champion), else 404/409
    (`mlbox.serving.invocations.choose_model`)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServingSettings:
        env = os.environ if environ is None else environ
        s = cls()
        for f in fields(cls):
            name = f"MLBOX_SERVING_{f.name.upper()}"
            raw = env.get(name)
            if not raw:
                continue
            kind = type(getattr(s, f.name))
            value: str | bool | int | float
            if kind is str:
                value = raw
            elif kind is bool:
                if raw.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise InvalidInput(f"{name}={raw!r} is not a boolean", field=name)
                value = raw.lower() in ("1", "true", "yes", "on")
            else:
                try:
                    number = int(raw) if kind is int else float(raw)
                except ValueError:
                    raise InvalidInput(f"{name}={raw!r} is not a number", field=name) from None
                if number < 0 or (f.name in _AT_LEAST_ONE and number < 1):
                    raise InvalidInput(f"{name}={raw!r} is out of range", field=name)
                value = number
            s = replace(s, **{f.name: value})  # type: ignore[arg-type]
        if s.invocations_model:
            s = replace(
                s,
                invocations_model=str(
                    parse_ref(s.invocations_model, field="MLBOX_SERVING_INVOCATIONS_MODEL")
                ),
            )
        return s
