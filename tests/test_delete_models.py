"""Deleting model versions and models in the registry service over a real home: what an alias,
a composed model and a pinned served version refuse, that a registered model keeps its source
run, and that the rows and the references to the files go."""

from __future__ import annotations

import pytest

from mlbox.registry.composition import Composition
from mlbox.services import Services
from mlbox.store.errors import Conflict, NotFound
from tests.models import Doubler


def _version(services: Services, name: str = "m", run: bool = True) -> tuple[int, int | None]:
    run_id = services.tracking.create_run("exp").id if run else None
    if run_id is not None:
        services.tracking.end_run(run_id)
    mv = services.registry.register(name, model=Doubler(), run_id=run_id)
    return mv.version, run_id


def test_a_version_no_alias_points_to_goes_and_its_files_are_no_longer_referenced(services: Services) -> None:
    reg = services.registry
    v1, _ = _version(services)
    v2, _ = _version(services)
    reg.set_alias("m", "champion", v2)
    files = {f.sha256 for f in reg.get_version("m", v1).files}
    with pytest.raises(Conflict) as err:
        reg.delete_version("m", v2)
    assert err.value.message == "cannot delete model 'm' version 2: alias m@champion points to version 2"
    assert err.value.field == "version"
    gone = reg.delete_version("m", v1)
    assert gone.version == 1
    with pytest.raises(NotFound):
        reg.get_version("m", 1)
    assert [v.version for v in reg.list_versions("m")] == [2]
    assert files <= reg.referenced_objects()  # v2 holds the same bytes (same model pickled)
    with pytest.raises(NotFound):
        reg.delete_version("m", 1)


def test_a_model_goes_only_without_aliases_and_its_number_starts_again(services: Services) -> None:
    reg = services.registry
    _version(services)
    reg.set_alias("m", "champion", 1)
    with pytest.raises(Conflict, match=r"aliases still point to it \(m@champion -> version 1\)"):
        reg.delete_model("m")
    reg.delete_alias("m", "champion")
    assert reg.delete_model("m").name == "m"
    assert [m.name for m in reg.list_models()] == []
    assert reg.referenced_objects() == set()
    assert _version(services)[0] == 1


def test_a_composed_model_keeps_its_parts(services: Services) -> None:
    reg = services.registry
    _version(services, "a")
    _version(services, "b")
    reg.register("both", model=Composition.ensemble(["a/1", "b"]))  # b: its latest version
    with pytest.raises(Conflict, match="composed model 'both' version 1 uses 'a/1'"):
        reg.delete_version("a", 1)
    with pytest.raises(Conflict, match="composed model 'both' version 1 uses 'b'"):
        reg.delete_model("b")
    reg.delete_model("both")
    reg.delete_model("a")


def test_a_registered_model_keeps_its_source_run(services: Services) -> None:
    _, run_id = _version(services)
    assert run_id is not None
    with pytest.raises(Conflict) as err:
        services.tracking.delete_run(run_id)
    assert (
        err.value.message
        == f"cannot delete run {run_id}: model 'm' version 1 was registered from run {run_id}"
    )
    services.registry.delete_version("m", 1)
    services.tracking.delete_run(run_id)
    with pytest.raises(Conflict, match="is deleted: restore it"):
        services.registry.register("m", model=Doubler(), run_id=run_id)


def test_a_pinned_served_version_stays(services: Services) -> None:
    """The composition root wires serving's check: a version served by number is refused."""
    _version(services)
    _version(services)
    services.serving.pin("m/1")
    try:
        with pytest.raises(Conflict, match=r"m/1 is served \(pinned\)"):
            services.registry.delete_version("m", 1)
        services.serving.unpin("m/1")
        services.registry.delete_version("m", 1)
    finally:
        services.serving.close()  # the batcher threads the pin started
