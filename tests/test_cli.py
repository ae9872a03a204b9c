"""``python -m toyopt``: the JSON report, the trajectory file, and one-line errors."""

import json
import subprocess
import sys

import pytest

from toyopt.cli import main

FIELDS = {
    "rule",
    "lam",
    "steps",
    "f_sft",
    "f_dpo",
    "f_sft_star",
    "f_dpo_star",
    "gap_sft",
    "gap_dpo",
    "ideal_distance",
    "mix_gap",
    "chebyshev_gap",
    "grad_evals",
    "func_evals",
}


def run_json(capsys, *args):
    assert main(["run", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_report_has_the_documented_fields(capsys):
    report = run_json(capsys, "toy2d", "--rule", "maxright", "--steps", "200", "--seeds", "3")
    assert FIELDS <= set(report)
    assert report["mix_gap_se"] >= 0
    assert report["func_evals"] == {"sft": 600, "dpo": 600}


def test_sequential_plateaus_while_joint_methods_converge(capsys):
    """The issue's demonstration on the built-in 2-D instance: 10× the budget leaves sequential's
    f_mix gap where it was and shrinks ALRIGHT's and Mix's."""
    gap = {}
    for rule in ["sequential-sft-dpo", "sequential-dpo-sft", "alright", "mix"]:
        for steps in [1000, 10000]:
            report = run_json(
                capsys, "toy2d", "--rule", rule, "--steps", str(steps), "--seeds", "20"
            )
            gap[rule, steps] = report["mix_gap"]
    for rule in ["sequential-sft-dpo", "sequential-dpo-sft"]:
        assert gap[rule, 10000] > 0.5 * gap[rule, 1000] > 0.05
    for rule in ["alright", "mix"]:
        assert gap[rule, 10000] < 0.2 * gap[rule, 1000]


def test_trajectory_file(tmp_path, capsys):
    out = tmp_path / "traj.json"
    run_json(capsys, "quad2d", "--rule", "mix", "--steps", "100", "--seeds", "2", "--out", str(out))
    data = json.loads(out.read_text())
    assert data["steps"][0] == 0 and data["steps"][-1] == 100
    assert len(data["theta"]) == len(data["steps"]) and len(data["theta"][0]) == 2
    assert data["metrics"]["mix_gap"][-1] < data["metrics"]["mix_gap"][0]


def test_optima_override_and_problem_file(tmp_path, capsys):
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps(
            {
                "kind": "quadratic",
                "sft": {"hessian": [[1]], "center": [1]},
                "dpo": {"hessian": [[1]], "center": [-1]},
            }
        )
    )
    report = run_json(
        capsys, str(path), "--rule", "maxright", "--steps", "5000", "--optima", "sft=0,dpo=0"
    )
    # MAXRIGHT balances the two (equally weighted) gaps: both near 1/2 at θ = 0.
    assert report["f_sft"] == pytest.approx(0.5, abs=0.02)
    assert report["f_dpo"] == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "toy2d", "--rule", "alright", "--lam", "1.5", "--steps", "10"], "lam"),
        (["run", "toy2d", "--rule", "alright", "--steps", "-3"], "steps"),
        (["run", "toy2d", "--rule", "adam", "--steps", "10"], "invalid choice"),
        (["run", "nowhere.json", "--rule", "mix", "--steps", "10"], "nowhere.json: no such file"),
        (["run", "toy2d", "--rule", "maxright", "--steps", "10", "--optima", "sft=1"], "--optima"),
        (["run", "toy2d", "--rule", "mix", "--steps", "10", "--lr", "-1"], "step size"),
        (["run", "toy2d", "--rule", "mix", "--steps", "10", "--batch", "0"], "minibatch"),
        (["run", "quad2d", "--rule", "mix", "--steps", "10", "--batch", "2"], "no data"),
        (["run", "toy2d", "--rule", "mix", "--steps", "10", "--seeds", "0"], "--seeds"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_status_2(args, message):
    proc = subprocess.run([sys.executable, "-m", "toyopt", *args], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_explains_each_rule():
    proc = subprocess.run(
        [sys.executable, "-m", "toyopt", "run", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0
    for rule in ["sequential-sft-dpo", "sequential-dpo-sft", "alright", "maxright", "mix"]:
        assert f"  {rule}" in proc.stdout
