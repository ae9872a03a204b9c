"""K ≥ 2 named objectives: the rules, the K-objective quadratic and its optima; two objectives
stay the two-objective rules bit for bit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from proofs_check.broken import k3_variants
from proofs_check.record import KINDS, format_table
from toyopt.cli import main as toyopt_main
from toyopt.problems import ProblemFormatError, problem_from_dict
from toyopt.rules import (
    AlRight,
    KAlRight,
    KMaxRight,
    KMix,
    KSequential,
    KStaleMaxRight,
    MaxRight,
    Mix,
    Sequential,
    StaleMaxRight,
    check_weights,
    make_rule,
    make_weighted_rule,
)
from toyopt.schedules import Schedule
from toyopt.simulate import simulate

W = {"sft": 0.3, "dpo": 0.5, "extra": 0.2}
ZERO = dict.fromkeys(W, 0.0)
K3 = {
    "kind": "quadratic",
    "start": [0.0, 0.0],
    "objectives": {
        "sft": {"hessian": [[2, 0], [0, 1]], "center": [1, 0]},
        "dpo": {"hessian": [[1, 0], [0, 3]], "center": [0, 1]},
        "extra": {"hessian": [[1, 0.5], [0.5, 1]], "center": [-1, -1]},
    },
}


@pytest.mark.parametrize("lam", [0.0, 0.1, 0.5, 0.77, 1.0])
def test_two_objective_alright_draw_is_the_same_coin(lam):
    state = {"seeds": np.arange(40)}
    a = AlRight(lam).choose_block(state, 3, 500)
    b = KAlRight({"dpo": lam, "sft": 1 - lam}).choose_block(state, 3, 500)
    assert all(np.array_equal(a[k], b[k]) for k in ("sft", "dpo"))


@pytest.mark.parametrize("name", ["alright", "mix", "maxright", "sequential"])
def test_sft_dpo_weights_build_the_two_objective_rules(name):
    rule = make_weighted_rule(
        name, {"sft": 0.25, "dpo": 0.75}, 100, optima=dict.fromkeys(("sft", "dpo"), 0.0)
    )
    expected = {"alright": AlRight(0.75), "mix": Mix(0.75), "sequential": Sequential("sft", 50),
                "maxright": MaxRight(0.75, {"sft": 0.0, "dpo": 0.0})}[name]  # fmt: skip
    assert rule == expected
    stale = make_weighted_rule(
        "maxright", {"dpo": 0.5, "sft": 0.5}, 10, optima=ZERO, refresh_every=3
    )
    assert stale == StaleMaxRight(0.5, {"sft": 0.0, "dpo": 0.0}, 3)
    assert make_rule("alright", 0.75, 100) == AlRight(0.75)


def test_weights_on_the_simplex_with_one_line_errors():
    assert check_weights(W) == W
    for bad, words in [({"sft": 0.5, "dpo": 0.6}, "sum to 1"), ({"sft": 1.0}, "two named"),
                       ({"sft": -0.1, "dpo": 1.1}, "[0, 1]"), ({"": 0.5, "dpo": 0.5}, "names")]:  # fmt: skip
        with pytest.raises(ValueError, match=None) as e:
            check_weights(bad)
        assert words in str(e.value) and "\n" not in str(e.value)


def test_k_alright_draws_by_the_weights():
    c = KAlRight(W).choose_block({"seeds": np.arange(4000)}, 0, 50)
    assert sum(c.values()).min() == 1.0
    for k, w in W.items():
        assert abs(c[k].mean() - w) < 0.01


def test_k_sequential_stages_and_k_mix():
    c = KSequential(("extra", "sft", "dpo"), (2, 1, 3)).choose_block({"seeds": np.arange(2)}, 0, 7)
    assert [max(W, key=lambda k: c[k][t, 0]) for t in range(7)] == ["extra"] * 2 + ["sft"] + [
        "dpo"
    ] * 4
    m = KMix(W).choose_block({"seeds": np.arange(3)}, 0, 2)
    assert {k: float(v[0, 0]) for k, v in m.items()} == W


def test_k_maxright_argmax_and_ties_to_the_larger_weight():
    rule = KMaxRight(W, ZERO)
    values = {"sft": np.array([1.0, 5 / 3, 0.0, 10.0]), "dpo": np.array([1.0, 1.0, 0.0, 0.0]),
              "extra": np.array([0.0, 0.0, 0.0, 0.0])}  # fmt: skip
    w, _ = rule.choose({}, 0, values)
    assert w["dpo"].tolist() == [1, 1, 1, 0] and w["sft"].tolist() == [0, 0, 0, 1]


def test_k_objective_quadratic_runs_and_its_optima():
    p = problem_from_dict(K3)
    assert p.objectives == ("sft", "dpo", "extra")
    point, value = p.weighted_optimum(W)
    assert np.allclose(sum(w * p.grad(k, point)[0] for k, w in W.items()), 0.0, atol=1e-12)
    cheb, f_cheb = p.chebyshev_optimum(W)
    weighted = [W[k] * p.value(k, cheb)[0] for k in W]
    assert max(weighted) == pytest.approx(f_cheb) and min(weighted) > f_cheb - 1e-9  # all active
    sched = Schedule("constant", 0.2)
    mix = simulate(p, KMix(W), 400, sched, 1)
    assert np.allclose(mix.final[0], point, atol=1e-10)
    assert mix.counters.grad_evals == dict.fromkeys(W, 400)
    exact = simulate(p, KMaxRight(W, ZERO), 300, Schedule("invsqrt", 0.3), 1)
    stale = simulate(p, KStaleMaxRight(W, ZERO, 1), 300, Schedule("invsqrt", 0.3), 1)
    assert np.array_equal(exact.theta, stale.theta)
    assert problem_from_dict(p.to_json()).to_json() == p.to_json()


def test_k_stale_maxright_can_hold_its_gaps_between_refreshes():
    """``hold`` (validation values): the stepped objective's training loss is not taken in."""
    rule = make_weighted_rule("maxright", W, 10, optima=ZERO, refresh_every=3, hold=True)
    assert isinstance(rule, KStaleMaxRight) and rule.hold
    state = rule.init(np.array([0]))
    weights, state = rule.choose(state, 0, {k: np.array([v]) for k, v in W.items()})
    assert weights["dpo"][0] == 1.0  # largest weighted value 0.5 * 0.5
    kept = rule.observe(state, weights, {"dpo": np.array([0.0])})
    assert kept == state
    moved = make_weighted_rule("maxright", W, 10, optima=ZERO, refresh_every=3)
    assert moved.observe(state, weights, {"dpo": np.array([0.0])})["gap_dpo"][0] == 0.0
    two = make_weighted_rule("maxright", {"sft": 0.5, "dpo": 0.5}, 10, optima=ZERO,
                             refresh_every=3, hold=True)  # fmt: skip
    assert isinstance(two, StaleMaxRight) and two.hold


def test_k_objective_format_errors_name_the_field():
    bad = {
        **K3,
        "objectives": {
            **K3["objectives"],
            "extra": {"hessian": [[1, 0], [0, -1]], "center": [0, 0]},
        },
    }
    with pytest.raises(
        ProblemFormatError, match="field 'objectives.extra.hessian': must be positive"
    ):
        problem_from_dict(bad)
    bad = {**K3, "objectives": {**K3["objectives"], "extra": {"hessian": [[1]], "center": [0]}}}
    with pytest.raises(ProblemFormatError, match="'objectives.extra.center': dimension 1 differs"):
        problem_from_dict(bad)
    with pytest.raises(ProblemFormatError, match="two or more"):
        problem_from_dict({**K3, "objectives": {"sft": K3["objectives"]["sft"]}})


def test_a_rule_naming_an_unknown_objective_is_refused():
    p = problem_from_dict(K3)
    with pytest.raises(ValueError, match="no objective"):
        simulate(p, KMix({"sft": 0.5, "nope": 0.5}), 3, Schedule("constant", 0.1), 1)


def test_three_objective_checks_hold():
    from proofs_check.k_objectives import check_k3

    records = check_k3(t_max=2000, seeds=64)
    assert {r.kind for r in records} == {k for k in KINDS if k.startswith("K3")}
    assert all(r.holds for r in records), format_table(records)


@pytest.mark.parametrize("variant", [v for v in k3_variants()], ids=lambda v: v.name)
def test_three_objective_checks_fail_on_their_broken_variants(variant):
    records = variant.run()
    for kind in variant.targets:
        assert any(r.kind == kind and not r.holds for r in records), format_table(records)
    for kind in variant.holds:
        assert all(r.holds for r in records if r.kind == kind), format_table(records)


def docs_example() -> str:
    """The three-objective problem file of docs/toy-problems.md."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "toy-problems.md").read_text("utf-8")
    return re.search(r"cat > three\.json <<'EOF'\n(.*?)\nEOF\n", text, re.S).group(1)


@pytest.mark.parametrize("rule", ["alright", "mix", "maxright", "sequential"])
def test_the_documented_three_objective_example_runs_with_weights_by_name(rule, tmp_path, capsys):
    path = tmp_path / "three.json"
    path.write_text(docs_example(), encoding="utf-8")
    args = ["run", str(path), "--rule", rule, "--weights", "sft=0.3,dpo=0.5,extra=0.2",
            "--steps", "2000", "--seeds", "20", "--lr", "0.3", "--json", "--out", str(tmp_path / "t.json")]  # fmt: skip
    assert toyopt_main(args) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    assert report["weights"] == W and set(report["grad_evals"]) == set(W)
    if rule in ("alright", "mix"):
        assert report["weighted_gap"] < 0.01
    if rule == "maxright":
        assert report["chebyshev_gap"] < 0.01 and set(report["func_evals"]) == set(W)
    if rule == "sequential":
        assert report["weighted_gap"] > 1.0  # the last stage forgets the others


def _fails(args: list[str], capsys) -> str:
    """The one line a refused command prints (argparse's exit, or toyopt's error handler)."""
    try:
        code = toyopt_main(args)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1, err
    return err


def test_weights_on_the_command_line_one_line_errors(tmp_path, capsys):
    path = tmp_path / "three.json"
    path.write_text(docs_example(), encoding="utf-8")
    for weights, words in [("sft=0.5,dpo=0.5", "the problem's objectives"),
                           ("sft=0.3,dpo=0.5,extra=0.3", "sum to 1"), ("sft=a", "NAME=W")]:  # fmt: skip
        err = _fails(
            ["run", str(path), "--rule", "mix", "--weights", weights, "--steps", "5"], capsys
        )
        assert words in err, err
    err = _fails(["run", str(path), "--rule", "sequential-sft-dpo", "--steps", "5"], capsys)
    assert "--rule sequential" in err
    err = _fails(
        ["run", "toy2d", "--rule", "mix", "--weights", "sft=0.5,x=0.5", "--steps", "5"], capsys
    )
    assert "the problem's objectives" in err
    # two objectives: --weights sets lam, the run is the --lam run
    a = toyopt_main(
        [
            "run",
            "toy2d",
            "--rule",
            "alright",
            "--weights",
            "dpo=0.7,sft=0.3",
            "--steps",
            "50",
            "--json",
        ]
    )
    first = json.loads(capsys.readouterr().out)
    b = toyopt_main(
        ["run", "toy2d", "--rule", "alright", "--lam", "0.7", "--steps", "50", "--json"]
    )
    second = json.loads(capsys.readouterr().out)
    assert a == b == 0 and first["f_sft"] == second["f_sft"] and first["lam"] == 0.7


LOGLINEAR = Path(__file__).resolve().parent / "data" / "loglinear_three_sets.json"


def test_loglinear_with_named_sft_and_preference_sets():
    from toyopt.pareto import NamedGeometry
    from toyopt.problems import load_problem

    p = load_problem(LOGLINEAR)
    assert p.objectives == ("chat", "code", "prefs")
    again = problem_from_dict(p.to_json())
    theta = np.array([[0.3, -0.2, 0.1], [1.0, 0.5, -1.0]])
    for k in p.objectives:
        assert np.allclose(again.value(k, theta), p.value(k, theta), rtol=1e-14)
    weights = {"chat": 0.3, "code": 0.3, "prefs": 0.4}
    geometry = NamedGeometry(p)
    star = geometry.weighted(weights)
    grad = sum(w * p.grad(k, star.point)[0] for k, w in weights.items())
    assert np.linalg.norm(grad) < 1e-10
    cheb = geometry.chebyshev(weights)
    gaps = [w * (p.value(k, cheb.point)[0] - geometry.f_star[k]) for k, w in weights.items()]
    at_star = max(w * (p.value(k, star.point)[0] - geometry.f_star[k]) for k, w in weights.items())
    assert max(gaps) == pytest.approx(cheb.value) and cheb.value < at_star


@pytest.mark.parametrize("rule, gap", [("alright", "weighted_gap"), ("mix", "weighted_gap"),
                                       ("maxright", "chebyshev_gap")])  # fmt: skip
def test_loglinear_named_sets_run_from_the_command_line(rule, gap, capsys):
    args = ["run", str(LOGLINEAR), "--rule", rule, "--weights", "chat=0.3,code=0.3,prefs=0.4",
            "--steps", "3000", "--seeds", "8", "--json"]  # fmt: skip
    assert toyopt_main(args) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    assert report[gap] < 0.01 and report["f_prefs_star"] > 0


def test_loglinear_named_sets_format_errors():
    data = json.loads(LOGLINEAR.read_text(encoding="utf-8"))
    data["objectives"]["code"] = {"demos": []}
    with pytest.raises(ProblemFormatError, match="field 'objectives.code': expected"):
        problem_from_dict(data)
    data["objectives"]["code"] = {"sft": [{"prompt": 5, "response": 0}]}
    with pytest.raises(ProblemFormatError, match="'objectives.code.sft\\[0\\].prompt': index 5"):
        problem_from_dict(data)
