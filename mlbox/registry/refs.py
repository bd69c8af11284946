"""Model references as people write them, parsed in one place.

``name`` (the latest version), ``name@alias``, ``name/3``, ``name:3`` and the
MLflow spellings ``models:/name/3`` and ``models:/name@alias`` all name one
model version. Names and aliases are checked here so that every front end
refuses the same strings with the same message and field.
"""

from __future__ import annotations

import re

import msgspec

from mlbox.store.errors import InvalidInput

MAX_NAME_LEN = 128
MAX_ALIAS_LEN = 64
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_ALIAS = re.compile(r"[a-z][a-z0-9_-]*")
_VERSION = re.compile(r"[1-9][0-9]{0,9}")


class ModelRef(msgspec.Struct, frozen=True):
    """One parsed reference: at most one of ``version`` and ``alias`` is set."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        if self.version is not None:
            return f"{self.name}/{self.version}"
        return self.name


def check_name(name: object, field: str = "name") -> str:
    """A model name: letters, digits, ``_ . -``; no ``@ / :`` so references stay unambiguous."""
    if not isinstance(name, str) or not name:
        raise InvalidInput("model name must be a non-empty string", field=field)
    if len(name) > MAX_NAME_LEN or not _NAME.fullmatch(name):
        raise InvalidInput(
            f"model name {name!r} must start with a letter or digit and hold only letters, digits,"
            f" '_', '.' or '-' (at most {MAX_NAME_LEN} characters)",
            field=field,
        )
    return name


def check_alias(alias: object, field: str = "alias") -> str:
    """An alias such as ``champion``: lower case, ``[a-z][a-z0-9_-]*``."""
    if not isinstance(alias, str) or not alias:
        raise InvalidInput("alias must be a non-empty string", field=field)
    if len(alias) > MAX_ALIAS_LEN or not _ALIAS.fullmatch(alias):
        raise InvalidInput(
            f"alias {alias!r} must match [a-z][a-z0-9_-]* (at most {MAX_ALIAS_LEN} characters)",
            field=field,
        )
    if alias == "latest":
        raise InvalidInput("'latest' is reserved: it always means the newest version", field=field)
    return alias


def check_version(version: object, field: str = "version") -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInput(f"version must be a positive integer, got {version!r}", field=field)
    return version


def parse_ref(ref: object, field: str = "model") -> ModelRef:
    """Parse ``name``, ``name@alias``, ``name/3``, ``name:3`` (optionally ``models:/`` first)."""
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput("model reference must be a non-empty string", field=field)
    text = ref.strip()
    if text.startswith("models:/"):
        text = text[len("models:/") :]
    if "@" in text:
        name, _, alias = text.partition("@")
        check_name(name, field)
        if alias == "latest":
            return ModelRef(name)
        check_alias(alias, field)
        return ModelRef(name, alias=alias)
    for sep in ("/", ":"):
        if sep in text:
            name, _, version = text.partition(sep)
            check_name(name, field)
            if not _VERSION.fullmatch(version):
                raise InvalidInput(
                    f"model reference {ref!r}: version {version!r} is not a positive integer", field=field
                )
            return ModelRef(name, version=int(version))
    check_name(text, field)
    return ModelRef(text)
