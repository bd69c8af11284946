"""The service seam: every service is declared once per front end and checked by the layer contracts.

A service is a package under ``mlbox/`` with a ``service.py``. It must be a field of
`mlbox.services.Services`, a mount of the API, a line of the CLI's `COMMANDS`, a section of the
TUI, a source of the contract "services never import a front end" and a forbidden module of
"the store is the bottom layer". Forgetting one leaves a service silently unwired or unchecked;
``docs/adding-a-service.md`` is the recipe this test guards.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from mlbox.api.app import MOUNTS
from mlbox.cli.root import COMMANDS
from mlbox.services import Services, specs
from mlbox.settings import Settings, sections
from mlbox.tui.navigation import SECTIONS

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mlbox"


def service_packages(package: Path) -> set[str]:
    """The packages below ``package`` that hold a ``service.py`` (store and tui are links, not services)."""
    return {p.parent.name for p in package.glob("*/service.py") if not p.parent.is_symlink()}


def contracts() -> dict[str, dict[str, list[str]]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {c["name"]: c for c in config["tool"]["importlinter"]["contracts"]}


def missing_registrations(packages: set[str]) -> dict[str, set[str]]:
    """For each registry, the service packages it does not name."""
    by_name = contracts()
    return {
        "Services": packages - {name for name, _ in specs()},
        "api MOUNTS": packages - {m.service for m in MOUNTS},
        "cli COMMANDS": packages - {service for service, _ in COMMANDS},
        "tui SECTIONS": packages - {s.service for s in SECTIONS},
        "contract: services never import a front end": packages
        - {m.removeprefix("mlbox.") for m in by_name["services never import a front end"]["source_modules"]},
        "contract: the store is the bottom layer": packages
        - {m.removeprefix("mlbox.") for m in by_name["the store is the bottom layer"]["forbidden_modules"]},
    }


def test_every_service_package_is_registered_everywhere() -> None:
    packages = service_packages(PACKAGE)
    assert {
        "tracking",
        "registry",
        "serving",
        "scheduler",
        "sweeps",
        "notebooks",
        "features",
        "monitoring",
        "labeling",
        "pipelines",
    } <= packages
    assert {k: v for k, v in missing_registrations(packages).items() if v} == {}


def test_a_new_service_package_is_caught(tmp_path: Path) -> None:
    """The check above fails for a service that exists as a package but is wired nowhere."""
    (tmp_path / "forgotten").mkdir()
    (tmp_path / "forgotten" / "service.py").write_text("")
    packages = service_packages(PACKAGE) | service_packages(tmp_path)
    missing = missing_registrations(packages)
    assert all(found == {"forgotten"} for found in missing.values()), missing


def test_registries_name_only_declared_services() -> None:
    declared = {name for name, _ in specs()}
    assert {m.service for m in MOUNTS} <= declared
    assert {service for service, _ in COMMANDS} <= declared
    assert {s.service for s in SECTIONS} <= declared


def test_every_settings_section_is_read_from_the_environment() -> None:
    """A service's ``config.py`` settings class is a field of `Settings`, read by ``from_env``."""
    found = {
        p.parent.name
        for p in PACKAGE.glob("*/config.py")
        if not p.parent.is_symlink() and re.search(r"class \w+Settings\b[\s\S]*def from_env", p.read_text())
    }
    assert found == {name for name, _ in sections()}
    env = {"MLBOX_GPUS": "3", "MLBOX_NOTEBOOK_IDLE_S": "7", "MLBOX_FEATURES_THREADS": "2"}
    settings = Settings.from_env(env)
    assert (settings.scheduler.gpus, settings.notebooks.idle_s, settings.features.threads) == ("3", 7, 2)


def test_loops_run_services_in_declared_order(services: Services) -> None:
    """The job loop runs the scheduler before what drives jobs, so a sweep sees this pass's outcomes."""
    jobs = [name for name, spec in specs() if spec.loop == "jobs"]
    assert jobs == ["scheduler", "sweeps", "notebooks", "pipelines"]
    assert [name for name, spec in specs() if spec.loop == "housekeeping"] == ["tracking", "monitoring"]
    changed = services.reconcile("jobs")
    assert {"notebooks_culled", "notebooks_ended"} <= set(changed)
    assert services.reconcile("housekeeping") == {"crashed": []}
