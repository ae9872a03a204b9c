"""What a newcomer runs: CI's script runs exactly the README's test command through the lock,
and the installed console scripts are the ``python -m`` programs."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {"toyopt": "toyopt.cli:main", "toyopt-llm": "toyopt.llm.__main__:main",
           "proofs-check": "proofs_check.__main__:main", "toyopt-figures": "figures.__main__:main"}  # fmt: skip


def readme_command(after: str) -> str:
    """The first bash block after the line ``after`` in the README."""
    text = (ROOT / "README.md").read_text()
    block = re.search(re.escape(after) + r"\s*```bash\n(.*?)\n```", text, re.S)
    assert block, f"no bash block after {after!r} in the README"
    return block.group(1).strip()


def test_ci_runs_exactly_the_readme_test_command_in_a_fresh_environment():
    command = readme_command("Run the tests:")
    assert "-c .ci/constraints.txt" in command
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert lines[-1] == command
    assert "rm -rf .venv-ci" in lines and "python3 -m venv .venv-ci" in lines


def test_the_lock_pins_every_installed_requirement_exactly():
    pins = [s for s in (ROOT / ".ci" / "constraints.txt").read_text().splitlines() if s[:1] != "#"]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[^=\s]+", s) for s in pins), pins
    names = {s.split("==")[0].lower().replace("_", "-") for s in pins}
    for needed in ("torch", "transformers", "peft", "accelerate", "pytest", "hypothesis", "trl"):
        assert needed in names


def installed_scripts() -> dict[str, str]:
    try:
        importlib.metadata.distribution("toyopt")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("toyopt is not installed (pip install -e .): no console scripts to test")
    found = importlib.metadata.entry_points(group="console_scripts")
    return {e.name: e.value for e in found if e.name in SCRIPTS}


def test_console_scripts_are_the_python_m_programs():
    assert installed_scripts() == SCRIPTS
    bindir = Path(sys.executable).parent
    for name, args in (("toyopt", ["list"]), ("toyopt-llm", ["train", "--help"]),
                       ("proofs-check", ["--help"]), ("toyopt-figures", ["--help"])):  # fmt: skip
        done = subprocess.run([str(bindir / name), *args], capture_output=True, text=True,
                              timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
    listing = subprocess.run([str(bindir / "toyopt"), "list"], capture_output=True, text=True)
    assert "toy2d" in listing.stdout
