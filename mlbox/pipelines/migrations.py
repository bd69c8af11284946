"""The pipelines service's tables. Shipped migrations are never edited."""

from __future__ import annotations

from mlbox.store.migrations import Migrations

migrations = Migrations("pipelines")
