"""The new services' numeric settings: read from the environment, and a bad one names its variable."""

from __future__ import annotations

import pytest

from mlbox.settings import Settings
from mlbox.store.errors import InvalidInput

NUMBERS = [
    ("MLBOX_MONITOR_EVERY_S", "monitoring", "every_s", "2.5", 2.5),
    ("MLBOX_PIPELINES_WORKERS", "pipelines", "workers", "2", 2),
    ("MLBOX_LABELING_PREFETCH", "labeling", "prefetch", "3", 3),
]


@pytest.mark.parametrize(("name", "section", "attr", "raw", "value"), NUMBERS)
def test_a_number_is_read_and_a_bad_one_is_refused_by_name(
    name: str, section: str, attr: str, raw: str, value: float
) -> None:
    default = getattr(getattr(Settings.from_env({}), section), attr)
    assert getattr(getattr(Settings.from_env({name: ""}), section), attr) == default
    read = getattr(getattr(Settings.from_env({name: raw}), section), attr)
    assert read == value and type(read) is type(default)
    for bad in ("x", "0", "-1"):
        with pytest.raises(InvalidInput) as refused:
            Settings.from_env({name: bad})
        assert refused.value.field == name and bad in refused.value.message


def test_the_annotator_is_read_or_left_to_the_login_name() -> None:
    assert Settings.from_env({"MLBOX_LABELING_ANNOTATOR": "ann"}).labeling.annotator == "ann"
    assert Settings.from_env({}).labeling.annotator is None
