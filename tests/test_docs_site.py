"""The documentation site builds with MkDocs in strict mode (a broken link, anchor, included
file or API reference is an error), and the pages repeat the README's commands exactly."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_docs_build_with_warnings_as_errors(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    assert "toyopt.llm.tracking" in api and "make_rule" in api  # generated from the docstrings
    bench = (tmp_path / "site" / "benchmarks" / "index.html").read_text(encoding="utf-8")
    assert "Per-rule cost" in bench  # BENCHMARKS.md, included


def bash_blocks(path: Path) -> list[str]:
    return re.findall(r"```bash\n(.*?)\n```", path.read_text(encoding="utf-8"), re.S)


def test_the_install_page_repeats_the_readme_commands_verbatim():
    readme = bash_blocks(ROOT / "README.md")
    for command in bash_blocks(ROOT / "docs" / "install.md"):
        if command.startswith("pip install torch"):
            assert command in readme
