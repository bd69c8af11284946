"""Feature references (``view:feature``, ``view:feature@v2``, ``view:*``) and the
resolved request plan shared by the offline and online paths.

Parsing is pure; resolving names to versions is the catalog's job. The plan
fixes, once, which columns a request returns and under which names, so the
offline frame and the online dict agree on naming.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mlbox.features.definitions import FeatureView, OnDemandFeatureView, View
from mlbox.store.errors import InvalidInput

_REF_RE = re.compile(
    r"^(?P<view>[A-Za-z_][A-Za-z0-9_]*)(?:@(?P<v1>[A-Za-z0-9]+))?:(?P<feature>\*|[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:@(?P<v2>[A-Za-z0-9]+))?$"
)


@dataclass(frozen=True)
class FeatureRef:
    """A parsed reference. ``version`` is an int (``@v2``/``@2``), a hash prefix
    (``@3fa9c2``, at least 6 hex digits), or None for the latest."""

    view: str
    feature: str
    version: int | str | None = None


def parse_ref(text: str) -> FeatureRef:
    if not isinstance(text, str):
        raise InvalidInput(f"feature reference {text!r} must be a string 'view:feature'", field="features")
    m = _REF_RE.match(text.strip())
    if not m or (m.group("v1") and m.group("v2")):
        raise InvalidInput(
            f"feature reference {text!r} must look like 'view:feature', 'view:feature@v2' or 'view:*'",
            field="features",
        )
    raw = m.group("v1") or m.group("v2")
    version: int | str | None = None
    if raw:
        if re.fullmatch(r"v?\d+", raw) and len(raw.lstrip("v")) < 6:
            version = int(raw.lstrip("v"))
            if version < 1:
                raise InvalidInput(f"feature reference {text!r}: versions start at 1", field="features")
        elif re.fullmatch(r"[0-9a-f]{6,64}", raw):
            version = raw
        else:
            raise InvalidInput(f"feature reference {text!r}: bad version {raw!r}", field="features")
    return FeatureRef(m.group("view"), m.group("feature"), version)


@dataclass(frozen=True)
class ResolvedView:
    """One registered version of a view, as the catalog stores it.

    ``join_keys`` are resolved from the entities at apply time (so a later change
    to an entity cannot alter an old version); ``source_versions`` pins the
    versions of an on-demand view's source views.
    """

    name: str
    version: int
    hash: str
    definition: View
    join_keys: tuple[str, ...]
    created_at: float
    source_versions: tuple[tuple[str, int], ...] = ()

    @property
    def kind(self) -> str:
        return (
            "on_demand_feature_view" if isinstance(self.definition, OnDemandFeatureView) else "feature_view"
        )

    @property
    def feature_view(self) -> FeatureView:
        assert isinstance(self.definition, FeatureView)
        return self.definition

    @property
    def dtypes(self) -> dict[str, str]:
        return {f.name: f.dtype for f in self.definition.features}

    @property
    def pinned(self) -> str:
        return f"{self.name}@v{self.version}"


@dataclass(frozen=True)
class ViewRequest:
    """A feature view to join, with every feature to fetch from it (asked for,
    or needed by an on-demand view)."""

    view: ResolvedView
    features: tuple[str, ...]


@dataclass(frozen=True)
class OnDemandRequest:
    """An on-demand view to compute: the features asked for, and the request fields
    (name, dtype) their expressions read, which each entity row must carry."""

    view: ResolvedView
    features: tuple[str, ...]
    request: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Output:
    """One returned column: which view/feature, its dtype, its two possible names."""

    view: str
    feature: str
    dtype: str
    on_demand: bool

    def name(self, full: bool) -> str:
        return f"{self.view}__{self.feature}" if full else self.feature


@dataclass(frozen=True)
class FeaturePlan:
    views: tuple[ViewRequest, ...]
    on_demand: tuple[OnDemandRequest, ...]
    outputs: tuple[Output, ...]
    pinned: tuple[str, ...] = field(default=())

    @property
    def join_keys(self) -> tuple[str, ...]:
        """Every join key any joined view needs, in first-seen order."""
        keys: list[str] = []
        for req in self.views:
            keys.extend(k for k in req.view.join_keys if k not in keys)
        return tuple(keys)

    @property
    def request_fields(self) -> dict[str, str]:
        """Every request value (name → dtype) the on-demand features asked for read."""
        return {name: dtype for req in self.on_demand for name, dtype in req.request}

    def output_names(self, full: bool) -> list[str]:
        names = [o.name(full) for o in self.outputs]
        seen: set[str] = set()
        for n in names:
            if n in seen:
                raise InvalidInput(
                    f"two requested features are both named {n!r}; pass full_feature_names=True "
                    "to name columns view__feature",
                    field="features",
                )
            seen.add(n)
        return names


def internal_name(view: str, feature: str) -> str:
    """The column a fetched feature has while a request is assembled."""
    return f"{view}__{feature}"
