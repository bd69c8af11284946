"""What `mlbox predict` reads, apart from the reading itself (numpy, the registry): the CLI
names these in its options at start-up."""

from __future__ import annotations

FORMATS = (".parquet", ".csv")
"""The input formats, by file suffix (lower case)."""
DEFAULT_TIMESTAMP_COLUMN = "event_timestamp"
"""The entity time column a feature-view model's input is looked up at, when it has one."""
