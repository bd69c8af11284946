"""The feature store service over one ``$MLBOX_HOME``."""

from __future__ import annotations

from mlbox.store import Database, Home


class FeatureStore:
    def __init__(self, db: Database, home: Home) -> None:
        self.db = db
        self.home = home
