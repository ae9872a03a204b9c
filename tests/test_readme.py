"""The README's generated parts and examples stay true: every JSON problem in it runs with every
rule, its claims table has the rows of a fresh full ``proofs_check`` run (by claim and instance;
the numbers vary with the machine's floating point, the rows must not), and its sensitivity table
has the rows the command produces."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from proofs_check.sensitivity import rows as sensitivity_rows
from proofs_check.suite import jobs
from toyopt.cli import main as toyopt_main
from toyopt.rules import RULE_NAMES

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def block(name: str) -> list[list[str]]:
    """Body rows (cells) of the Markdown table between the proofs_check:name markers."""
    match = re.search(
        rf"<!-- proofs_check:{name} -->(.*?)<!-- /proofs_check:{name} -->", README, re.S
    )
    assert match, f"README has no proofs_check:{name} block"
    lines = [ln for ln in match.group(1).splitlines() if ln.startswith("| ")]
    return [[c.strip() for c in ln.strip().strip("|").split(" | ")] for ln in lines[1:]]


JSON_EXAMPLES = re.findall(r"```json\n(.*?)```", README, re.S)


def test_the_readme_has_json_examples():
    assert JSON_EXAMPLES


@pytest.mark.parametrize("rule", list(RULE_NAMES))
@pytest.mark.parametrize("index", range(len(JSON_EXAMPLES)))
def test_every_json_example_runs_with_every_rule(index, rule, tmp_path, capsys):
    path = tmp_path / "example.json"
    path.write_text(JSON_EXAMPLES[index], encoding="utf-8")
    args = ["run", str(path), "--rule", rule, "--steps", "300", "--seeds", "4", "--json"]
    assert toyopt_main(args) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    assert report["rule"] == rule and report["grad_evals"]


@pytest.fixture(scope="module")
def fresh_records():
    return [record for _, run in jobs(quick=False) for record in run()]


def test_claims_table_has_the_rows_of_a_fresh_full_run(fresh_records):
    table = block("table")
    assert [(r[0], r[1]) for r in table] == [(r.claim, r.instance) for r in fresh_records]
    assert all(r[8] == "yes" for r in table), "the README shows a failing row"
    assert all(r.holds for r in fresh_records)


def test_sensitivity_table_has_the_rows_of_the_command():
    assert [(r[0], r[1]) for r in block("sensitivity")] == sensitivity_rows()


def test_every_local_link_and_image_of_the_readme_exists():
    root = Path(__file__).resolve().parent.parent
    targets = re.findall(r"\]\(([^)#:]+)\)", README)  # relative links: no scheme, no anchor
    assert any(t.endswith(".png") for t in targets)
    missing = [t for t in targets if not (root / t).exists()]
    assert not missing, f"README links to missing files: {missing}"
