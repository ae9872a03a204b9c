"""The figures: every file is written, and the plotted CSV data satisfy the paper's relations
(sequential ends at its last stage's optimum, ALRIGHT and Mix at the λ point, costs as counted);
the LLM reader on synthetic run directories with known numbers, and its format errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from figures import build, k3_tradeoff, rates, style
from figures.__main__ import main
from figures.llm_runs import RunFormatError, read_run, read_runs
from figures.synthetic_runs import MEMORY, OPTIMA, STEP_SECONDS, final_point, write_grid, write_run

TOY_FIGURES = ("toy_contours", "toy_objective_space", "toy_bars")
JOINT = ("alright", "maxright", "mix")
K3_TOL = 0.2  # largest allowed difference of a final objective value from its target's


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    """One quick run of the whole command, LLM figures from a synthetic run directory."""
    root = tmp_path_factory.mktemp("figs")
    runs = write_grid(root / "runs")
    assert (
        main(["--quick", "--out", str(root / "out"), "--no-progress", "--llm-runs", str(runs)]) == 0
    )
    return root / "out"


def rows(path: Path) -> list[dict]:
    return [{k: _num(v) for k, v in r.items()} for r in style.read_csv(path)]


def _num(v: str):
    try:
        return float(v)
    except ValueError:
        return v


def test_every_figure_is_written(out):
    names = (*TOY_FIGURES, "rates", "k3_tradeoff", "llm_objective_space", "llm_bars")
    for name in names:
        for ext in ("png", "pdf", "csv"):
            path = out / f"{name}.{ext}"
            assert path.exists() and path.stat().st_size > 0, path


def test_contours_sequential_ends_at_its_last_stage_optimum(out):
    """Parameter space, λ = ½: DPO→SFT ends nearer θ*_sft, and SFT→DPO nearer the DPO
    minimiser line, than any joint method does; joint methods end at least twice as close to
    θ*_½ as either sequential order (claims C1, C6)."""
    paths, marks = rows(out / "toy_contours.csv"), rows(out / "toy_contours_landmarks.csv")
    final = {}
    for r in paths:
        final[r["rule"]] = np.array([r["theta1"], r["theta2"]])  # rows are in step order
    mark = {
        r["kind"]: np.array([r["theta1"], r["theta2"]]) for r in marks if r["kind"] != "pareto_set"
    }
    line = [np.array([r["theta1"], r["theta2"]]) for r in marks if r["kind"] == "dpo_line"]
    direction = (line[1] - line[0]) / np.linalg.norm(line[1] - line[0])

    def to_line(p):
        v = p - line[0]
        return float(np.linalg.norm(v - (v @ direction) * direction))

    def to(p, q):
        return float(np.linalg.norm(p - q))

    sft_star, mix_star = mark["sft_optimum"], mark["mix_optimum_lam0.5"]
    for rule in JOINT:
        assert to(final["sequential-dpo-sft"], sft_star) < to(final[rule], sft_star)
        assert to_line(final["sequential-sft-dpo"]) < to_line(final[rule])
        seq = min(to(final[s], mix_star) for s in ("sequential-dpo-sft", "sequential-sft-dpo"))
        assert to(final[rule], mix_star) < 0.5 * seq, rule


def test_objective_space_paths_share_the_start_and_end_at_the_bars(out):
    """The stars of the objective-space figure are the seed-0 finals the bars average."""
    paths = rows(out / "toy_objective_space.csv")
    starts = {(r["f_sft"], r["f_dpo"]) for r in paths if r["step"] == 0}
    assert len(starts) == 1
    ideal = {r["kind"]: r for r in rows(out / "toy_objective_space_landmarks.csv")}["ideal"]
    front = rows(out / "toy_objective_space_front.csv")
    assert all(
        p["f_sft"] >= ideal["f_sft"] - 1e-9 and p["f_dpo"] >= ideal["f_dpo"] - 1e-9 for p in front
    )
    # The exact front is non-increasing in f_dpo as f_sft grows (a trade-off curve).
    f = np.array([[p["f_sft"], p["f_dpo"]] for p in front])
    f = f[np.argsort(f[:, 0])]
    assert np.all(np.diff(f[:, 1]) <= 1e-9)


def test_bars_relations(out):
    """Per λ ≥ 0.25: sequential DPO→SFT ends nearer the SFT optimum (smaller SFT gap, larger
    DPO gap) than every joint method; ALRIGHT and Mix reach f_mix gaps at least four times
    smaller than sequential's (their constant-step noise floor is O(step); at λ = 0.01 the
    λ point is 0.02 from θ*_sft and nothing separates the methods). Gradient evaluations per
    step are exactly 1 for sequential, ALRIGHT and MAXRIGHT and 2 for Mix (claim C5)."""
    table = rows(out / "toy_bars.csv")
    by = {(r["lam"], r["rule"]): r for r in table}
    for lam in sorted({r["lam"] for r in table}):
        seq = by[(lam, "sequential-dpo-sft")]
        if lam >= 0.25:
            for rule in JOINT:
                assert seq["gap_sft"] < by[(lam, rule)]["gap_sft"], (lam, rule)
                assert seq["gap_dpo"] > by[(lam, rule)]["gap_dpo"], (lam, rule)
            for rule in ("alright", "mix"):
                assert by[(lam, rule)]["mix_gap"] < 0.25 * seq["mix_gap"], (lam, rule)
        assert by[(lam, "mix")]["grads_per_step"] == 2.0
        assert by[(lam, "mix")]["grad_increase_pct"] == 100.0
        for rule in ("sequential-dpo-sft", "alright", "maxright"):
            assert by[(lam, rule)]["grads_per_step"] == 1.0
        assert by[(lam, "maxright")]["funcs_per_step"] == 2.0
        assert all(by[(lam, r)]["wall_time_s"] > 0 for r in ("sequential-dpo-sft", *JOINT))
    # MAXRIGHT reaches the smallest ideal distance away from the symmetric λ (claim C6; at
    # λ = ½ on toy2d its Chebyshev point and θ*_½ coincide, so it ties with Mix there).
    for lam in (0.25, 0.75):
        ideal = {r: by[(lam, r)]["ideal_distance"] for r in ("sequential-dpo-sft", *JOINT)}
        assert min(ideal, key=ideal.get) == "maxright", ideal


def test_k3_finals_lie_at_their_targets(out):
    """K = 3 trade-off, quick budget: at every weight vector (four, unequal ones among them) the
    mean over seeds of ALRIGHT's final objective values and Mix's final values lie within K3_TOL
    of the weighted optimum's in every objective, MAXRIGHT's within K3_TOL of the Chebyshev
    optimum's; the two optima are more than 3 K3_TOL apart, so a rule that ends at the other
    target fails. Sequential ends at the last objective's optimum, far from both."""
    finals, targets = rows(out / "k3_tradeoff.csv"), rows(out / "k3_tradeoff_targets.csv")
    names = [k[2:] for k in finals[0] if k.startswith("f_")]
    assert names == ["sft", "dpo", "extra"]

    def weights(r):
        return tuple(r[f"w_{k}"] for k in names)

    def mean(rs):
        assert rs
        return np.mean([[r[f"f_{k}"] for k in names] for r in rs], axis=0)

    goal = {(t["kind"], weights(t)): mean([t]) for t in targets}
    grid = {weights(r) for r in finals}
    assert len(grid) == 4 and any(len(set(w)) == 3 for w in grid)
    assert len([r for r in finals if r["rule"] == "alright"]) > len(grid)  # several seeds each
    for w in grid:
        weighted, chebyshev = goal[("weighted", w)], goal[("chebyshev", w)]
        assert np.abs(weighted - chebyshev).max() > 3 * K3_TOL, w
        end = {rule: mean([r for r in finals if r["rule"] == rule and weights(r) == w])
               for rule in ("alright", "mix", "maxright", "sequential")}  # fmt: skip
        for rule, target in (("alright", weighted), ("mix", weighted), ("maxright", chebyshev)):
            assert np.abs(end[rule] - target).max() < K3_TOL, (rule, w, end[rule], target)
        assert end["sequential"][2] < 1e-3 < 3 * K3_TOL < np.abs(end["sequential"] - weighted).max()


def test_k3_figure_from_plain_runs_without_pareto_or_targets(tmp_path):
    """The drawing takes plain final points (e.g. held-out losses of runs on three data
    sources); the Pareto sample and the targets may be unknown."""
    names = ("chat", "code", "prefs")
    finals = [
        k3_tradeoff.Final(rule, w, (1.0 + w[0], 2.0 - w[1], 1.5), seed)
        for rule in ("alright", "mix", "maxright", "sequential")
        for w in ((0.5, 0.3, 0.2), (1 / 3, 1 / 3, 1 / 3))
        for seed in range(2 if rule == "alright" else 1)
    ]
    data = k3_tradeoff.TradeoffData(names, finals, [], np.empty((0, 3)), np.empty((0, 3)))
    paths = k3_tradeoff.render(data, tmp_path, "lm3")
    assert {p.name for p in paths} >= {"lm3.png", "lm3.pdf", "lm3.csv"}
    table = rows(tmp_path / "lm3.csv")
    assert len(table) == len(finals) and table[0]["f_chat"] == pytest.approx(1.5)


def test_rates_figure_shows_plateau_and_bounds(out):
    """Data from proofs_check: sequential's last gap is at its predicted plateau, the joint
    methods' last gaps are below their bounds."""
    table = rows(out / "rates.csv")
    for method in ("sequential-sft-dpo", "sequential-dpo-sft"):
        last = [r for r in table if r["method"] == method][-1]
        assert last["gap"] == pytest.approx(last["plateau"], rel=0.05)
    for method in JOINT:
        last = [r for r in table if r["method"] == method][-1]
        assert last["gap"] <= last["bound"]


def test_rates_on_a_synthetic_table(tmp_path):
    t = np.array([10, 100, 1000])
    data = {
        "sequential-dpo-sft": {
            "T": t,
            "gap": [0.3, 0.2, 0.2],
            "ci_low": [0.3, 0.2, 0.2],
            "ci_high": [0.3, 0.2, 0.2],
            "bound": None,
            "plateau": 0.2,
        },  # fmt: skip
        "alright": {
            "T": t,
            "gap": [0.1, 0.03, 0.0],
            "ci_low": [0.05, 0.02, 0.0],
            "ci_high": [0.2, 0.04, 0.0],
            "bound": [1.0, 0.3, 0.1],
        },  # fmt: skip
    }
    paths = build.rates(tmp_path, data=data).paths
    assert {p.suffix for p in paths} == {".png", ".pdf", ".csv"}
    del data["sequential-dpo-sft"]["plateau"]
    with pytest.raises(ValueError, match="plateau"):
        rates.check(data)


def test_llm_bars_recover_the_synthetic_numbers(out):
    table = rows(out / "llm_bars.csv")
    by = {(r["lam"], r["rule"]): r for r in table}
    for lam in (0.01, 0.5, 0.99):
        for rule in ("sequential-dpo-sft", *JOINT):
            f_sft, f_dpo = final_point(rule, lam)
            row = by[(lam, rule)]
            assert row["gap_sft"] == pytest.approx(f_sft - OPTIMA["sft"])
            assert row["gap_dpo"] == pytest.approx(f_dpo - OPTIMA["dpo"])
        # Mix computes both objectives every step; memory as written.
        seq_seconds = by[(lam, "sequential-dpo-sft")]["train_seconds"]
        assert by[(lam, "mix")]["train_seconds"] == pytest.approx(60 * sum(STEP_SECONDS.values()))
        assert by[(lam, "mix")]["wall_increase_pct"] == pytest.approx(
            100 * (60 * sum(STEP_SECONDS.values()) / seq_seconds - 1))  # fmt: skip
        assert by[(lam, "mix")]["memory_increase_pct"] == pytest.approx(
            100 * (MEMORY["mix"] / 1e9 - 1)
        )
        assert by[(lam, "mix")]["grad_increase_pct"] == pytest.approx(100.0)


def test_llm_figures_without_optima_plot_raw_losses(tmp_path):
    runs = write_grid(tmp_path / "runs", optima=False)
    built = build.llm(tmp_path / "out", runs)
    assert all(b.paths for b in built) and "raw" in built[0].note
    table = rows(tmp_path / "out" / "llm_bars.csv")
    assert "eval_sft" in table[0] and "gap_sft" not in table[0]
    assert not math.isnan(table[0]["eval_dpo"])


def test_an_unfinished_run_is_skipped_and_named(tmp_path):
    runs = write_grid(tmp_path / "runs", steps=12)
    metrics = runs / "mix-0.5-s0" / "metrics.jsonl"
    metrics.write_text("".join(metrics.read_text().splitlines(keepends=True)[:8]))  # killed
    built = build.llm(tmp_path / "out", runs)
    assert all(b.paths for b in built)
    assert "skipped unfinished runs: mix-0.5-s0 (step 4 of 12)" in built[0].note
    assert all(row["rule"] != "mix" or row["lam"] != 0.5 for row in built[1].data)
    for run in runs.iterdir():
        if run.is_dir():
            (run / "metrics.jsonl").write_text(metrics.read_text())
    with pytest.raises(RunFormatError, match="no finished runs"):
        build.llm(tmp_path / "out", runs)


def test_llm_figures_are_skipped_without_runs(tmp_path):
    built = build.llm(tmp_path, None)
    assert all(not b.paths and "skipped" in b.note for b in built)


def test_reader_errors_name_file_and_line(tmp_path):
    runs = write_grid(tmp_path / "runs", steps=12)
    run = runs / "mix-0.5-s0"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines[2] = "{not json"
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(RunFormatError, match=r"metrics.jsonl:3: not valid JSON"):
        read_run(run)
    lines[2] = json.dumps({"step": 1, "objective": "both", "loss_sft": 1.0, "wall_time": 0.1})
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(RunFormatError, match=r"metrics.jsonl:3: field 'objective'"):
        read_run(run)
    cfg = json.loads((run / "config.json").read_text())
    del cfg["lam"]
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunFormatError, match=r"config.json: missing field 'lam'"):
        read_run(run)
    with pytest.raises(RunFormatError, match="no run directories"):
        read_runs(tmp_path)
    args = ["--only", "llm", "--out", str(tmp_path / "o"), "--llm-runs", str(runs), "--no-progress"]
    assert main(args) == 2  # the command reports the format error and exits with status 2


def test_split_is_reported_as_t_dpo_to_t_sft(tmp_path):
    """Both sequential orders report (T_dpo, T_sft): in sixths when exact, else reduced."""
    write_run(tmp_path / "a", "sequential-sft-dpo", 0.25, 60, 0, switch=40)
    write_run(tmp_path / "b", "sequential-dpo-sft", 0.25, 30, 0, switch=8)
    assert read_run(tmp_path / "a").split == (2, 4)
    assert read_run(tmp_path / "b").split == (4, 11)
    write_run(tmp_path / "c", "alright", 0.25, 60, 0, switch=None)
    assert read_run(tmp_path / "c").split is None


def test_k3_tiny_figure_and_table_come_from_the_committed_results(tmp_path):
    """docs/k3-tiny/finals.csv (benchmarks/k3_tiny.py) draws the tiny model's K = 3 figure, and
    the table on docs/k-objectives.md is the report of that file."""
    from benchmarks.k3_tiny import report

    results = Path(__file__).resolve().parent.parent / "docs" / "k3-tiny"
    built = build.k3_llm(tmp_path, results)
    assert {p.suffix for p in built.paths} >= {".png", ".pdf", ".csv"}
    assert len(built.data.finals) == 48 and len(built.data.corners) == 9  # 4 rules x 4 λ x 3 seeds
    page = (results.parent / "k-objectives.md").read_text()
    assert report(results) in page.split("<!-- k3-tiny -->")[1]
