"""The serving service: which models are served, hot swaps, shadows, and the scoring call.

Routes map a reference as clients write it (``churn@champion``, ``churn/3``,
``churn``) to a `Deployment`. Invariants:

* Every alias in the registry is served, loaded eagerly. Any other
  reference (``churn/3``, ``churn`` following the newest version) is scored
  by anyone only when its version is already loaded; it is loaded on demand
  only for a caller holding the API token (``may_load``), then kept
  (pinned) and followed like an alias, at most ``max_on_demand`` of them
  (least recently used unloaded first), unloaded when idle, and on the CPU
  (`mlbox.serving.ondemand`). An open route never loads a version, takes a
  GPU lease or grows memory.
* Hot swap: a watcher thread reads the alias table every ``poll_s`` (or at
  once on `notify`); when a reference resolves to a new version, that version
  is loaded and warmed *first*, then the route is replaced in one dict
  assignment. Requests already queued on the old version finish there
  (its batcher drains before its thread ends); a request that looked up the
  old route just before the swap gets `Retired` at submit and looks again.
  No request fails because of a swap.
* Shadow: a request to ``name@champion`` is mirrored, after the champion has
  answered it, to ``name@challenger`` when that alias exists on another
  version and shadowing is on for the model. The mirror is fire-and-forget:
  a full challenger queue or a challenger error is only counted and logged.
* Every scored request, champion or shadow, goes to the prediction log.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from mlbox.registry.refs import parse_ref
from mlbox.registry.schemas import ModelVersion
from mlbox.serving.admission import admission_for
from mlbox.serving.batcher import Outputs
from mlbox.serving.config import ServingSettings
from mlbox.serving.deployment import Deployment, GpuPlacer, Registry, build_deployment
from mlbox.serving.errors import InferenceTimeout, NotReady, NotServed, Retired
from mlbox.serving.features import FeatureLookup, entity_inputs
from mlbox.serving.invocations import choose_model
from mlbox.serving.metrics import SHED_METRIC, ModelStats, StatsSnapshot, render
from mlbox.serving.ondemand import idle, make_room
from mlbox.serving.predlog import PredictionLog
from mlbox.serving.tensors import Payload, conform
from mlbox.store.errors import InvalidInput, MlboxError, NotFound

log = logging.getLogger("mlbox.serving")

CHAMPION = "champion"
CHALLENGER = "challenger"
RETRY_FAILED_LOAD_S = 30.0


@dataclass(frozen=True)
class Scored:
    """One answered request: who answered it, with what, for which id."""

    deployment: Deployment
    request_id: str
    outputs: Outputs
    rows: int


@dataclass
class _Failure:
    version: int | None
    message: str
    at: float


def _expire(fut: asyncio.Future[Outputs], seconds: float) -> None:
    if not fut.done():
        fut.set_exception(InferenceTimeout(f"no answer within {seconds:g} s", field=None))


class ServingService:
    def __init__(
        self,
        registry: Registry,
        settings: ServingSettings,
        predlog: PredictionLog | None = None,
        features: FeatureLookup | None = None,
        placer: GpuPlacer | None = None,
    ) -> None:
        self.registry = registry
        self.placer = placer
        """Where torch models get GPUs (the scheduler's lease table); without one, ``device_for``."""
        self.features = features
        """Online feature lookup for models registered with ``features=`` (`mlbox.serving.features`)."""
        self.settings = settings
        self.admission = admission_for(settings)
        """The door of both HTTP scoring paths (503 past the limits); here so that its count of
        refused requests shows where the other serving statistics do (``/metrics``, the TUI)."""
        self.predlog = predlog
        self._log = predlog if settings.log_predictions else None
        self._routes: dict[str, Deployment] = {}
        self._by_version: dict[tuple[str, int], Deployment] = {}
        self._stats: dict[tuple[str, int], ModelStats] = {}
        self._pinned: set[str] = set()
        self._on_demand: dict[str, float] = {}
        """Pinned references loaded on demand (not aliases) -> when last scored (monotonic)."""
        self._unserved: dict[str, str] = {}
        """Aliases the last watcher pass could not serve -> why (the server's readiness answer)."""
        self._failures: dict[str, _Failure] = {}
        self._shadow_off: set[str] = set()
        self._keys: dict[str, str] = {}
        self._lock = threading.RLock()
        self._build_locks: dict[str, threading.Lock] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(4) + "-"

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Load every aliased model (in the background) and follow the alias table from then on.

        After `close`, starts afresh (an appliance started again over the same `Services`): the
        admission the last appliance drained on its way out admits again."""
        self.admission.reopen()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._watch, name="mlbox-serving-watch", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop watching, let every model finish its queue, then write the prediction log out."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        with self._lock:
            deployments = list(self._by_version.values())
            self._routes.clear()
            self._by_version.clear()
        for dep in deployments:
            dep.batcher.close(wait=True)
        if self.predlog is not None:
            self.predlog.close()

    def notify(self) -> None:
        """Look at the alias table now (an alias was just moved in this process)."""
        self._wake.set()

    @property
    def ready(self) -> bool:
        """True once the first pass has loaded (or given up on) every aliased model."""
        return self._ready.is_set()

    def unserved(self) -> dict[str, str]:
        """Aliases not served after the last watcher pass (a load refused, a hash mismatch) -> why.

        The server is ready only when this is empty: ``/v2/health/ready`` lists them otherwise.
        """
        return dict(self._unserved)

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def sync(self) -> None:
        """One pass of the watcher: serve every alias and pinned reference at its current version.

        One read of the alias table decides; a reference is only resolved and
        (re)built when its version changed or it is composed (its parts may have moved).
        """
        wanted: set[str] = set(self._pinned)
        current_version: dict[str, int] = {}
        for model in self.registry.list_models():
            for alias, number in model.aliases.items():
                wanted.add(f"{model.name}@{alias}")
                current_version[f"{model.name}@{alias}"] = number
            if model.latest_version is not None:
                current_version[model.name] = model.latest_version
        for key in sorted(wanted):
            served = self._routes.get(key)
            target = current_version.get(key)
            if target is None and "/" in key:
                target = int(key.partition("/")[2])
            if served is not None and served.number == target and not served.depends:
                continue
            try:
                self._ensure(key, on_demand=key in self._on_demand)  # on demand: never on a GPU
            except NotFound:
                self._drop(key)
            except NotReady:
                pass  # logged once when the load failed; retried after RETRY_FAILED_LOAD_S
            except MlboxError as exc:
                log.warning("serving %s: %s", key, exc.message)
        with self._lock:
            wanted |= self._pinned  # pinned since this pass began (a version loading on demand)
            served_by_wanted = {id(dep) for k, dep in self._routes.items() if k in wanted}
            unwanted = [(k, dep) for k, dep in self._routes.items() if k not in wanted]
        for key, dep in unwanted:
            target = int(key.partition("/")[2]) if "/" in key else current_version.get(key)
            if id(dep) in served_by_wanted and dep.number == target:
                continue  # `churn` or `churn/3` answered by what an alias serves: still right
            self._drop(key)
        for key in idle(self._on_demand, time.monotonic(), self.settings.on_demand_idle_s):
            log.info("unloading %s: not scored for %g s", key, self.settings.on_demand_idle_s)
            self._drop(key)
        self._unserved = {
            k: self._failures[k].message if k in self._failures else f"{k} is not loaded"
            for k in sorted(wanted)
            if "@" in k and k not in self._routes
        }

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception:  # the watcher must survive a bad pass (a locked database, a bad model)
                log.exception("serving watcher pass failed")
            self._ready.set()
            self._wake.wait(self.settings.poll_s)
            self._wake.clear()

    # -- routes ------------------------------------------------------------------------

    def key(self, ref: str) -> str:
        """The canonical form of a reference (``models:/a@b`` -> ``a@b``), cached."""
        key = self._keys.get(ref)
        if key is None:
            key = str(parse_ref(ref))
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[ref] = key
        return key

    def _build_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._build_locks.setdefault(key, threading.Lock())

    def _stats_for(self, version: ModelVersion) -> ModelStats:
        with self._lock:
            k = (version.name, version.version)
            stats = self._stats.get(k)
            if stats is None:
                stats = self._stats[k] = ModelStats(version.name, version.version)
            return stats

    def _deps_current(self, dep: Deployment) -> bool:
        for ref, version in dep.depends.items():
            try:
                if self.registry.resolve(ref).version != version:
                    return False
            except NotFound:
                return False
        return True

    def _ensure(self, key: str, on_demand: bool = False) -> Deployment:
        """Serve ``key`` at the version it resolves to now, loading and warming before any swap.

        ``on_demand`` (a version loaded for a caller with the token) builds it on the CPU with no
        GPU lease; an alias that later points to that version shares it as it is."""
        with self._build_lock(key):
            version = self.registry.resolve(key)
            current = self._routes.get(key)
            if current is not None and current.number == version.version and self._deps_current(current):
                return current
            failed = self._failures.get(key)
            if (
                failed is not None
                and failed.version == version.version
                and time.monotonic() - failed.at < RETRY_FAILED_LOAD_S
            ):
                raise NotReady(failed.message, retry_after_s=self.settings.retry_after_s)
            dep = self._by_version.get((version.name, version.version))
            if dep is None or not self._deps_current(dep) or dep.batcher.closed:
                try:
                    dep = build_deployment(
                        self.registry,
                        version,
                        replace(self.settings, gpus="none") if on_demand else self.settings,
                        self._stats_for(version),
                        self.features,
                        None if on_demand else self.placer,
                    )
                except MlboxError as exc:
                    self._fail(key, version.version, f"{version.ref} could not be loaded: {exc.message}")
                    raise NotReady(self._failures[key].message) from None
                except Exception as exc:
                    log.exception("loading %s failed", version.ref)
                    self._fail(
                        key,
                        version.version,
                        f"{version.ref} could not be loaded: {type(exc).__name__}: {exc}",
                    )
                    raise NotReady(self._failures[key].message) from None
            self._failures.pop(key, None)
            self._swap(key, dep)
            if current is None or current.number != dep.number:
                log.info("serving %s as %s", key, dep.version.ref)
            return dep

    def _fail(self, key: str, version: int | None, message: str) -> None:
        log.error("serving %s: %s", key, message)
        self._failures[key] = _Failure(version, message, time.monotonic())

    def _swap(self, key: str, dep: Deployment) -> None:
        with self._lock:
            old_for_version = self._by_version.get((dep.name, dep.number))
            self._by_version[(dep.name, dep.number)] = dep
            old = self._routes.get(key)
            self._routes[key] = dep  # the swap: one assignment, visible to the next lookup
            retired = [d for d in (old, old_for_version) if d is not None and d is not dep]
            for d in retired:
                self._retire_if_unused(d)

    def _retire_if_unused(self, dep: Deployment) -> None:
        if any(d is dep for d in self._routes.values()):
            return
        if self._by_version.get((dep.name, dep.number)) is dep:
            del self._by_version[(dep.name, dep.number)]
        dep.batcher.close(wait=False)  # drains what is queued, then its thread ends

    def _drop(self, key: str) -> None:
        with self._lock:
            dep = self._routes.pop(key, None)
            self._pinned.discard(key)
            self._on_demand.pop(key, None)
            if dep is not None:
                log.info("no longer serving %s", key)
                self._retire_if_unused(dep)

    def pin(self, ref: str) -> Deployment:
        """Serve ``ref`` (e.g. ``churn/3``) from now on (blocking: loads it if needed)."""
        key = self.key(ref)
        dep = self._ensure(key)
        with self._lock:
            self._pinned.add(key)
        return dep

    def unpin(self, ref: str) -> None:
        key = self.key(ref)
        if "@" not in key:
            self._drop(key)

    def set_shadow(self, name: str, enabled: bool) -> None:
        """Turn mirroring of ``name@champion`` to ``name@challenger`` on or off for one model."""
        if enabled:
            self._shadow_off.discard(name)
        else:
            self._shadow_off.add(name)

    def served(self) -> dict[str, Deployment]:
        """Reference -> deployment, as routed now."""
        return dict(self._routes)

    def failures(self) -> dict[str, str]:
        return {k: f.message for k, f in self._failures.items()}

    async def route(self, ref: str, may_load: bool = False) -> Deployment:
        """The deployment answering ``ref``.

        An alias not loaded yet is loaded (off the loop): aliases are what is served, and only
        the token moves them. Any other reference is answered by a version already loaded, or
        `NotServed` (404); ``may_load`` (the caller holds the API token) loads it on demand.
        """
        dep = self.route_now(ref)
        if dep is not None:
            return dep
        key = self.key(ref)
        if "@" in key:
            return await asyncio.to_thread(self._ensure, key)
        state = await asyncio.to_thread(self.readiness, ref)
        if isinstance(state, Deployment):
            with self._lock:
                self._routes.setdefault(key, state)  # unpinned: the next watcher pass forgets it
            return state
        if not may_load:
            raise NotServed(
                f"{key} is not served: only versions an alias points to (or already loaded) are scored"
                " without the token; send 'Authorization: Bearer <token>' to load it on demand",
                field="name",
            )
        return await asyncio.to_thread(self._load_on_demand, key)

    def _load_on_demand(self, key: str) -> Deployment:
        cap = self.settings.max_on_demand
        if cap < 1:
            raise NotServed(
                f"{key} is not served and loading on demand is off (MLBOX_SERVING_MAX_ON_DEMAND=0)",
                field="name",
            )
        with self._lock:
            evict = make_room(self._on_demand, cap)
            # pinned before it loads: a watcher pass meanwhile would otherwise find it served
            # and not wanted, and unload it (seen in CI)
            self._pinned.add(key)
            self._on_demand[key] = time.monotonic()
        for old in evict:
            log.info("unloading %s to make room for %s (MLBOX_SERVING_MAX_ON_DEMAND=%d)", old, key, cap)
            self._drop(old)
        try:
            dep = self._ensure(key, on_demand=True)
        except BaseException:
            with self._lock:
                self._pinned.discard(key)
                self._on_demand.pop(key, None)
            raise
        with self._lock:
            self._on_demand[key] = time.monotonic()
        return dep

    def readiness(self, ref: str) -> Deployment | str:
        """The deployment that answers ``ref`` now, or why there is none; never loads anything.

        Asked by the open readiness routes, which must not load a version or
        take a GPU (issue 12). ``churn`` is ready when its newest version is
        loaded under any reference (``churn@champion``, loaded at start-up).
        Blocking (reads the registry): call it off the event loop.
        """
        dep = self.route_now(ref)
        if dep is not None:
            return dep
        key = self.key(ref)
        version = self.registry.resolve(key)  # NotFound for an unknown model, alias or version
        with self._lock:
            dep = self._by_version.get((version.name, version.version))
        if dep is not None and not dep.batcher.closed:
            return dep
        for failed_key, failure in self._failures.items():
            if failed_key == key or (
                failure.version == version.version and self.key(failed_key).split("@")[0] == version.name
            ):
                return failure.message
        return f"{version.ref} is not loaded: aliased versions load at start-up, others with the token"

    def route_now(self, ref: str) -> Deployment | None:
        """The deployment answering ``ref`` if it is loaded (no loading, no waiting).

        ``name/3`` is answered by version 3's deployment when another reference
        (``name@champion``) already loaded it: one model thread per version. That route is
        remembered, not pinned: once the alias moves away, the next watcher pass forgets it
        and the version unloads (an open route must not keep a version, or its GPU, alive).
        """
        key = self.key(ref)
        dep = self._routes.get(key)
        if dep is None and "/" in key:
            name, _, number = key.partition("/")
            dep = self._by_version.get((name, int(number)))
            if dep is not None and not dep.batcher.closed:
                with self._lock:
                    self._routes.setdefault(key, dep)
            else:
                dep = None
        return dep

    # -- scoring -----------------------------------------------------------------------

    def new_request_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):x}"

    async def score(
        self,
        ref: str,
        payload: Payload,
        *,
        request_id: str | None = None,
        started: float | None = None,
        may_load: bool = False,
    ) -> Scored:
        """Validate ``payload`` against the served version's signature, batch it, return its outputs.

        ``may_load``: the caller holds the API token, so a version not loaded may be (`route`)."""
        t0 = time.perf_counter() if started is None else started
        loop = asyncio.get_running_loop()
        dep: Deployment | None = None
        try:
            for _ in range(5):
                dep = await self.route(ref, may_load)
                inputs, rows = entity_inputs(payload) if dep.by_entity else conform(dep.schema, payload)
                try:
                    fut = dep.batcher.submit(inputs, rows, loop)
                except Retired:
                    continue  # swapped out between lookup and submit: look again
                break
            else:
                raise NotReady(f"{ref} is being swapped; retry", retry_after_s=self.settings.retry_after_s)
            timeout = self.settings.timeout_s
            handle = loop.call_later(timeout, _expire, fut, timeout)
            try:
                outputs = await fut
            finally:
                handle.cancel()
        except MlboxError as exc:
            if dep is not None:
                dep.stats.request(exc.http_status, time.perf_counter() - t0)
            raise
        elapsed = time.perf_counter() - t0
        dep.stats.request(200, elapsed, rows)
        if self._on_demand:
            key = self.key(ref)
            if key in self._on_demand:
                self._on_demand[key] = time.monotonic()
        rid = request_id if request_id is not None else self.new_request_id()
        if self._log is not None:
            self._log.append(
                (rid, dep.name, dep.number, time.time(), elapsed * 1000.0, False, inputs, outputs)
            )
        if (
            self.settings.shadow
            and dep.name not in self._shadow_off
            and self.key(ref) == f"{dep.name}@{CHAMPION}"
        ):
            self._mirror(dep, inputs, rows, rid)
        return Scored(dep, rid, outputs, rows)

    def record_error(self, ref: str, status: int, seconds: float) -> None:
        """Count a request that failed before `score` (a malformed body) against its model, if served."""
        try:
            dep = self.route_now(ref)
        except MlboxError:
            return
        if dep is not None:
            dep.stats.request(status, seconds)

    def _mirror(self, champion: Deployment, inputs: Any, rows: int, request_id: str) -> None:
        challenger = self._routes.get(f"{champion.name}@{CHALLENGER}")
        if challenger is None or challenger.number == champion.number:
            return
        try:
            if challenger.schema is not champion.schema and challenger.schema is not None:
                from mlbox.registry.signature import validate

                inputs = validate(challenger.schema, inputs)
            t0 = time.perf_counter()

            def done(result: Outputs | BaseException) -> None:
                # runs in the challenger's inference thread: kept even after the
                # champion's event loop has ended (a clean shutdown drains it)
                challenger.stats.shadow += 1
                if isinstance(result, BaseException):
                    challenger.stats.shadow_errors += 1
                    log.info("shadow %s failed: %s", challenger.version.ref, result)
                    return
                if self._log is not None:
                    elapsed_ms = (time.perf_counter() - t0) * 1000.0
                    self._log.append(
                        (
                            request_id,
                            challenger.name,
                            challenger.number,
                            time.time(),
                            elapsed_ms,
                            True,
                            inputs,
                            result,
                        )
                    )

            challenger.batcher.submit_detached(inputs, rows, done)
        except (MlboxError, Retired) as exc:
            challenger.stats.shadow_errors += 1
            log.debug("shadow %s skipped: %s", challenger.version.ref, exc)

    # -- introspection -----------------------------------------------------------------

    def stats(self) -> list[StatsSnapshot]:
        with self._lock:
            items = list(self._stats.values())
        return [s.snapshot() for s in items]

    def metrics_text(self) -> str:
        with self._lock:
            items = sorted(self._stats.values(), key=lambda s: (s.model, s.version))
        extra = {
            "mlbox_serving_models_loaded": float(len(self._by_version)),
            SHED_METRIC: float(self.admission.shed),
        }
        if self.predlog is not None:
            extra["mlbox_prediction_log_dropped_total"] = float(self.predlog.dropped)
            extra["mlbox_prediction_log_pending"] = float(self.predlog.pending)
        return render(items, extra)

    def describe(self, ref: str) -> ModelVersion:
        """The version ``ref`` names (served or not): for OIP model metadata."""
        dep = self.route_now(ref)
        if dep is not None:
            return dep.version
        return self.registry.resolve(self.key(ref))

    def version_ref(self, name: str, version: str) -> str:
        """``name/3`` for the ``/versions/{version}`` routes, where ``name`` may carry an ``@alias``
        (``churn@champion/versions/3`` is version 3 of ``churn``, as the alias's metadata lists
        every version). A version the model does not have, or an alias it does not have: `NotFound`.
        Blocking when the alias is not served (reads the registry)."""
        ref = parse_ref(name, field="name")
        if ref.version is not None:
            raise InvalidInput(
                f"{name!r}: give a model name (or name@alias) here, not a version", field="name"
            )
        if not version.isdigit() or len(version) > 10 or int(version) < 1:
            raise NotFound(f"model {ref.name!r} has no version {version!r}", field="version")
        if ref.alias is not None and self.route_now(str(ref)) is None:
            self.registry.resolve(ref)  # NotFound when the model has no such alias
        return f"{ref.name}/{int(version)}"

    def invocations_ref(self) -> str:
        """The model MLflow's ``/invocations`` scores (`mlbox.serving.invocations.choose_model`)."""
        with self._lock:
            served = {k: dep.number for k, dep in self._routes.items()}
            failed = list(self._failures)
        return choose_model(self.settings.invocations_model, served, failed)

    def versions(self, name: str) -> Iterable[int]:
        for model in self.registry.list_models():
            if model.name == name:
                return range(1, (model.latest_version or 0) + 1)
        raise NotFound(f"no model named {name!r}", field="name")
