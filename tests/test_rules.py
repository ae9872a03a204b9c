"""Invariants of the update rules, independent of any backend."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from toyopt.rules import (
    AlRight,
    MaxRight,
    Mix,
    Sequential,
    StaleMaxRight,
    make_rule,
    state_from_json,
    state_to_json,
)

lams = st.floats(0, 1)
SEEDS = np.arange(64)


def run_choices(rule, steps, values_fn=None, seeds=SEEDS):
    """Drive a rule alone (no problem): values, when asked, come from values_fn(step)."""
    state = rule.init(seeds)
    out = []
    for t in range(steps):
        values = values_fn(t) if rule.wants_values(state, t) else None
        weights, state = rule.choose(state, t, values)
        out.append(weights)
        losses = values_fn(t) if values_fn else {}
        state = rule.observe(state, weights, losses)
    return out


@given(lams, st.integers(0, 50))
def test_weights_are_nonnegative_and_one_hot_or_convex(lam, step):
    values = {"sft": np.linspace(1, 2, 64), "dpo": np.linspace(2, 1, 64)}
    optima = {"sft": 0.5, "dpo": 0.1}
    for rule in [Sequential("sft", 10), AlRight(lam), MaxRight(lam, optima), Mix(lam)]:
        weights, _ = rule.choose(rule.init(SEEDS), step, values)
        w = np.stack([weights["sft"], weights["dpo"]])
        assert np.all(w >= 0) and np.all(w <= 1)
        np.testing.assert_allclose(w.sum(axis=0), 1.0)
        if not isinstance(rule, Mix):
            assert set(np.unique(w)) <= {0.0, 1.0}


def test_sequential_switches_once_at_the_switch_step():
    taken = [w["dpo"][0] for w in run_choices(Sequential("sft", 7), 20)]
    assert taken == [0.0] * 7 + [1.0] * 13
    taken = [w["dpo"][0] for w in run_choices(Sequential("dpo", 3), 5)]
    assert taken == [1.0] * 3 + [0.0] * 2


@pytest.mark.parametrize("lam", [0.1, 0.5, 0.9])
def test_alright_chooses_dpo_with_probability_lam(lam):
    steps = 400
    frac = np.mean([w["dpo"] for w in run_choices(AlRight(lam), steps)])
    n = steps * len(SEEDS)
    assert abs(frac - lam) < 4 * np.sqrt(lam * (1 - lam) / n)  # 4 binomial standard errors


def test_alright_choice_depends_only_on_seed_and_step():
    rule = AlRight(0.5)
    full, _ = rule.choose(rule.init(np.array([3, 9, 4])), 11, None)
    alone, _ = rule.choose(rule.init(np.array([9])), 11, None)
    assert full["dpo"][1] == alone["dpo"][0]
    different_steps = [
        rule.choose(rule.init(np.array([9])), t, None)[0]["dpo"][0] for t in range(40)
    ]
    assert 0 < sum(different_steps) < 40


def test_maxright_steps_on_the_larger_weighted_gap():
    rule = MaxRight(0.25, {"sft": 1.0, "dpo": 0.0})
    values = {"sft": np.array([1.5, 1.1]), "dpo": np.array([1.0, 1.0])}
    # weighted gaps: dpo 0.25*1.0 = 0.25; sft 0.75*0.5 = 0.375 and 0.75*0.1 = 0.075
    weights, _ = rule.choose(rule.init(np.array([0, 1])), 0, values)
    assert weights["sft"].tolist() == [1.0, 0.0]


def test_maxright_ties_go_to_the_heavier_objective():
    values = {"sft": np.array([0.0]), "dpo": np.array([0.0])}
    for lam, expected in [(1.0, "dpo"), (0.0, "sft"), (0.7, "dpo"), (0.3, "sft")]:
        rule = MaxRight(lam, {"sft": 0.0, "dpo": 0.0})
        weights, _ = rule.choose(rule.init(np.array([0])), 0, values)
        assert weights[expected][0] == 1.0


@given(lams, st.integers(1, 400))
def test_stale_maxright_with_k1_equals_exact_maxright(lam, seed):
    rng = np.random.default_rng(seed)
    table = {k: rng.uniform(0, 2, size=(30, 8)) for k in ("sft", "dpo")}

    def values(t):
        return {k: v[t] for k, v in table.items()}

    optima = {"sft": 0.3, "dpo": 0.2}
    exact = run_choices(MaxRight(lam, optima), 30, values, np.arange(8))
    stale = run_choices(StaleMaxRight(lam, optima, 1), 30, values, np.arange(8))
    for a, b in zip(exact, stale):
        for k in ("sft", "dpo"):
            np.testing.assert_array_equal(a[k], b[k])


def test_stale_maxright_refreshes_every_k_steps_and_tracks_the_stepped_loss():
    rule = StaleMaxRight(0.5, {"sft": 0.0, "dpo": 0.0}, refresh_every=3)
    asked = [t for t in range(10) if rule.wants_values(rule.init(SEEDS[:1]), t)]
    assert asked == [0, 3, 6, 9]
    state = rule.init(np.array([0]))
    weights, state = rule.choose(state, 0, {"sft": np.array([4.0]), "dpo": np.array([2.0])})
    assert weights["sft"][0] == 1.0  # 0.5*4 > 0.5*2
    state = rule.observe(state, weights, {"sft": np.array([1.0])})  # the step's own loss
    assert state["gap_sft"][0] == 0.5 and state["gap_dpo"][0] == 1.0  # DPO's gap is stale
    weights, _ = rule.choose(state, 1, None)
    assert weights["dpo"][0] == 1.0


def test_stale_maxright_holding_its_gaps_steps_on_one_objective_until_the_refresh():
    """``hold`` (values of a validation split): the step's training loss never enters a gap."""
    rule = StaleMaxRight(0.5, {"sft": 0.0, "dpo": 0.0}, refresh_every=3, hold=True)
    state = rule.init(np.array([0]))
    weights, state = rule.choose(state, 0, {"sft": np.array([4.0]), "dpo": np.array([2.0])})
    for t in (1, 2):  # a loss that would flip the choice without ``hold``
        state = rule.observe(state, weights, {"sft": np.array([1.0])})
        assert state["gap_sft"][0] == 2.0 and state["gap_dpo"][0] == 1.0
        weights, state = rule.choose(state, t, None)
        assert weights["sft"][0] == 1.0
    weights, _ = rule.choose(state, 3, {"sft": np.array([1.0]), "dpo": np.array([2.0])})
    assert weights["dpo"][0] == 1.0  # the refresh decides again


def test_state_survives_a_json_round_trip():
    rule = StaleMaxRight(0.4, {"sft": 0.1, "dpo": 0.2}, 5)
    state = rule.init(np.array([1, 2]))
    _, state = rule.choose(state, 0, {"sft": np.array([1.0, 2.0]), "dpo": np.array([3.0, 0.5])})
    back = state_from_json(json.loads(json.dumps(state_to_json(state))))
    for k in state:
        np.testing.assert_array_equal(back[k], state[k])
        assert back[k].dtype == state[k].dtype


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "alright", "lam": 1.5, "steps": 10}, "lam"),
        ({"name": "alright", "lam": 0.5, "steps": 0}, "steps"),
        ({"name": "sgd", "lam": 0.5, "steps": 10}, "unknown rule"),
        ({"name": "maxright", "lam": 0.5, "steps": 10}, "optima"),
        ({"name": "sequential-sft-dpo", "lam": 0.5, "steps": 10, "switch": 11}, "switch"),
        ({"name": "maxright", "lam": 0.5, "steps": 10, "optima": {"sft": 0}}, "dpo"),
        (
            {
                "name": "maxright",
                "lam": 0.5,
                "steps": 9,
                "optima": {"sft": 0, "dpo": 0},
                "refresh_every": 0,
            },
            "refresh_every",
        ),
    ],
)
def test_make_rule_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_rule(**kwargs)


def test_make_rule_defaults():
    assert make_rule("sequential-dpo-sft", 0.5, 11) == Sequential("dpo", 5)
    assert isinstance(make_rule("maxright", 0.5, 9, optima={"sft": 0, "dpo": 0}), MaxRight)
    stale = make_rule("maxright", 0.5, 9, optima={"sft": 0, "dpo": 0}, refresh_every=10)
    assert isinstance(stale, StaleMaxRight) and stale.refresh_every == 10
