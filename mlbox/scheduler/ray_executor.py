"""The Ray executor: job attempts submitted to a Ray cluster through its Jobs API.

Chosen by ``MLBOX_EXECUTOR=ray://HOST:PORT`` (PORT: the dashboard's, which serves
the Jobs API). ``ray`` is imported here only, on first use, so an appliance with
the local executor never loads it. Every call is one HTTP request to the
dashboard; the reconciliation pass owns the meaning (`mlbox.scheduler.reconcile`).
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from typing import Any

from mlbox.store.errors import InvalidInput


def dashboard_url(executor: str) -> str:
    """``ray://HOST:PORT`` -> ``http://HOST:PORT`` (the Jobs API's address)."""
    if not executor.startswith("ray://") or ":" not in executor[6:]:
        raise InvalidInput(
            f"MLBOX_EXECUTOR={executor!r}: expected local or ray://HOST:PORT", field="MLBOX_EXECUTOR"
        )
    host, _, port = executor[6:].rstrip("/").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"MLBOX_EXECUTOR={executor!r}: expected ray://HOST:PORT", field="MLBOX_EXECUTOR")
    return f"http://{host}:{port}"


@dataclass(frozen=True)
class RayJob:
    status: str
    """PENDING, RUNNING, STOPPED, SUCCEEDED or FAILED (Ray's words)."""
    driver_exit_code: int | None
    node: str | None
    """Where the entrypoint runs: the node's IP address, else its id."""
    message: str | None


class RayUnavailable(Exception):
    """The cluster's Jobs API did not answer (the pass tries again next tick)."""


class RayExecutor:
    def __init__(self, executor: str) -> None:
        self.address = dashboard_url(executor)
        host = self.address[len("http://") :].rpartition(":")[0].strip("[]")
        self.loopback = host in ("127.0.0.1", "localhost", "::1")
        """The head is this machine: jobs may use the home's paths (and it is not exposed by us)."""
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            try:
                from ray.job_submission import JobSubmissionClient
            except ImportError:
                raise InvalidInput(
                    "MLBOX_EXECUTOR names a Ray cluster but ray is not installed: pip install 'mlbox[ray]'",
                    field="MLBOX_EXECUTOR",
                ) from None
            try:
                self._client = JobSubmissionClient(self.address)
            except Exception as exc:  # ray raises ConnectionError, RuntimeError, ...
                raise RayUnavailable(str(exc)) from exc
        return self._client

    def submit(self, submission_id: str, entrypoint: str, kwargs: dict[str, Any]) -> bool:
        """Submit once; False when Ray already has this submission id (the attempt was submitted
        before a crash): Ray refuses the duplicate, so an attempt never runs twice."""
        client = self.client()
        try:
            client.submit_job(entrypoint=entrypoint, submission_id=submission_id, **kwargs)
        except RuntimeError as exc:
            if "already exists" in str(exc) or "already been used" in str(exc):
                return False
            raise
        except Exception as exc:
            raise RayUnavailable(str(exc)) from exc
        return True

    def info(self, submission_id: str) -> RayJob | None:
        """What Ray knows of the submission; None when it knows nothing of it."""
        client = self.client()
        try:
            d = client.get_job_info(submission_id)
        except RuntimeError as exc:
            if "does not exist" in str(exc) or "404" in str(exc):
                return None
            raise RayUnavailable(str(exc)) from exc
        except Exception as exc:
            raise RayUnavailable(str(exc)) from exc
        driver = getattr(d, "driver_info", None)
        node_id = getattr(d, "driver_node_id", None)
        node = getattr(driver, "node_ip_address", None) or (node_id[:12] if node_id else None)
        status = getattr(d.status, "value", str(d.status))
        return RayJob(str(status), getattr(d, "driver_exit_code", None), node, d.message)

    def logs(self, submission_id: str) -> str:
        try:
            return str(self.client().get_job_logs(submission_id))
        except Exception as exc:
            raise RayUnavailable(str(exc)) from exc

    def stop(self, submission_id: str) -> None:
        """SIGTERM to the entrypoint, SIGKILL after Ray's grace (RAY_JOB_STOP_SIGNAL_TIMEOUT_S)."""
        try:
            self.client().stop_job(submission_id)
        except Exception as exc:
            raise RayUnavailable(str(exc)) from exc

    def cluster(self) -> dict[str, dict[str, float]]:
        """``{"total": {...}, "available": {...}}`` of the cluster's resources (CPU, GPU, memory,
        custom ones), read from the dashboard's cluster status; empty when it does not answer."""
        try:
            with urllib.request.urlopen(f"{self.address}/api/cluster_status?format=0", timeout=2) as resp:
                body = json.loads(resp.read())
        except (OSError, ValueError):
            return {}
        return cluster_resources(body)


def cluster_resources(body: Any) -> dict[str, dict[str, float]]:
    """The totals and what is free, from ``/api/cluster_status`` (its shape varies by version)."""
    try:
        usage = body["data"]["clusterStatus"]["loadMetricsReport"]["usage"]
    except (KeyError, TypeError):
        return {}
    total: dict[str, float] = {}
    available: dict[str, float] = {}
    for name, pair in usage.items():
        if name.startswith("node:") or name.startswith("accelerator_type:") or not isinstance(pair, list):
            continue
        used, tot = float(pair[0]), float(pair[1])
        total[name] = tot
        available[name] = tot - used
    return {"total": total, "available": available}
