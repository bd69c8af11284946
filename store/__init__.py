"""Persistence for mlbox: SQLite, the artifact store and Parquet/DuckDB helpers.

This package is the bottom layer. It imports nothing of mlbox's services or
front ends (an import-linter contract enforces it), so every service and every
process — the appliance, job processes, notebooks — can open the stores alone.
"""

from mlbox.store.artifacts import ArtifactStore, Blob
from mlbox.store.db import Database
from mlbox.store.errors import Conflict, IntegrityError, InvalidInput, MlboxError, NotFound
from mlbox.store.home import Home

__all__ = [
    "ArtifactStore",
    "Blob",
    "Conflict",
    "Database",
    "Home",
    "IntegrityError",
    "InvalidInput",
    "MlboxError",
    "NotFound",
]
