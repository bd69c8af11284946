"""Per-job API tokens: what a job on a Ray node logs to its own run with, never the admin token.

A job on another node cannot open the appliance's SQLite file, so it logs metrics,
params, tags, artifacts and checkpoints through the HTTP API (`mlbox.remote`). The
token it gets is minted when its attempt is submitted (in the claim's transaction),
reaches the job only through its environment, and is stored as its sha256 alone: the
database never holds a usable token. It is good for one attempt of one job while that
attempt runs: `grant` joins the jobs table, so a token of an attempt that ended, or of
a job retried since, grants nothing even before `revoke` deletes it when the attempt
ends. What it may call is the API's business (`mlbox.api.security.JOB_ROUTES`).
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass

from mlbox.store import Database

PREFIX = "mlbj_"
"""Job tokens start so: the API tells a job token from the admin token without a lookup."""


@dataclass(frozen=True)
class Grant:
    """What a valid job token allows: its own job's files and its own run."""

    job_id: int
    run_id: int | None


def digest(token: str) -> str:
    """The stored form (a token has 256 random bits: a plain sha256 cannot be searched back)."""
    return hashlib.sha256(token.encode()).hexdigest()


def mint(conn: sqlite3.Connection, job_id: int, attempt: int, run_id: int | None, now: float) -> str:
    """A new token for this attempt, replacing any it had (a submission retried after a crash
    gets a fresh one: the old one was never stored in a usable form)."""
    token = PREFIX + secrets.token_urlsafe(32)
    conn.execute("DELETE FROM job_tokens WHERE job_id = ?", (job_id,))
    conn.execute(
        "INSERT INTO job_tokens (digest, job_id, attempt, run_id, created_at) VALUES (?, ?, ?, ?, ?)",
        (digest(token), job_id, attempt, run_id, now),
    )
    return token


def revoke(conn: sqlite3.Connection, job_id: int) -> None:
    """The job's attempt ended: its token is gone."""
    conn.execute("DELETE FROM job_tokens WHERE job_id = ?", (job_id,))


def grant(db: Database, token: str) -> Grant | None:
    """The grant of a token whose attempt is running now; None for any other string."""
    if not token.startswith(PREFIX):
        return None
    row = db.query_one(
        "SELECT t.job_id, t.run_id FROM job_tokens t JOIN jobs j"
        " ON j.id = t.job_id AND j.attempt = t.attempt AND j.state = 'running' WHERE t.digest = ?",
        (digest(token),),
    )
    return None if row is None else Grant(int(row[0]), None if row[1] is None else int(row[1]))
