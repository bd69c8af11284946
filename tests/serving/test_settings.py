"""``MLBOX_SERVING_*`` settings: read from the environment, a bad value names its variable."""

from __future__ import annotations

import pytest

from mlbox.serving.config import ServingSettings
from mlbox.store.errors import InvalidInput


def test_serving_settings_from_env() -> None:
    s = ServingSettings.from_env(
        {
            "MLBOX_SERVING_MAX_BATCH_SIZE": "8",
            "MLBOX_SERVING_SHADOW": "off",
            "MLBOX_SERVING_MAX_DELAY_MS": "2.5",
            "MLBOX_SERVING_GPUS": "none",
        }
    )
    assert (s.max_batch_size, s.shadow, s.max_delay_ms, s.gpus) == (8, False, 2.5, "none")
    for bad in (
        {"MLBOX_SERVING_MAX_QUEUE": "many"},
        {"MLBOX_SERVING_SHADOW": "maybe"},
        {"MLBOX_SERVING_MAX_BATCH_SIZE": "0"},
    ):
        with pytest.raises(InvalidInput) as info:
            ServingSettings.from_env(bad)
        assert info.value.field == next(iter(bad))
