"""The JSON problem format: round trips, and one clear error per kind of mistake."""

import copy
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toyopt.problems import (
    BUILTINS,
    ProblemFormatError,
    load_problem,
    problem_from_dict,
    random_loglinear,
    save_problem,
)
from toyopt.problems.builtin import QUAD2D, TOY2D


@pytest.mark.parametrize("name", list(BUILTINS))
def test_round_trip_through_a_file(name, tmp_path):
    problem = BUILTINS[name][1]()
    save_problem(problem, tmp_path / "p.json")
    back = load_problem(tmp_path / "p.json")
    theta = np.random.default_rng(0).normal(size=(4, problem.dim))
    for k in ("sft", "dpo"):
        np.testing.assert_allclose(back.value(k, theta), problem.value(k, theta), rtol=1e-14)
    np.testing.assert_array_equal(back.start, problem.start)


def test_ragged_response_sets():
    data = copy.deepcopy(TOY2D)
    data["features"].append([[0.5, 0.5], [1.0, 1.0]])
    data["sft"].append({"prompt": 1, "response": 1, "weight": 0.2})
    problem = problem_from_dict(data)
    logp = problem.log_policy(np.array([[0.3, -0.2]]))
    assert np.exp(logp[0, 1, :2]).sum() == pytest.approx(1.0)
    assert np.isneginf(logp[0, 1, 2])
    assert problem_from_dict(problem.to_json()).to_json() == problem.to_json()


def edit(base, path, value):
    data = copy.deepcopy(base)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


def rename(base, path, old, new):
    data = copy.deepcopy(base)
    node = data
    for key in path:
        node = node[key]
    node[new] = node.pop(old)
    return data


BAD = [
    (edit(TOY2D, ["kind"], "cubic"), "field 'kind'"),
    (edit(TOY2D, ["beta"], KeyError), "field 'beta': missing"),
    (edit(TOY2D, ["beta"], -1), "field 'beta': must be >= 0"),
    (edit(TOY2D, ["beta"], "one"), "field 'beta': expected a number"),
    (edit(TOY2D, ["theta_ref"], [0, float("nan")]), "field 'theta_ref': contains a non-finite"),
    (edit(TOY2D, ["features", 0], [[1, 0], [0, 1, 2]]), "field 'features\\[0\\]'"),
    (edit(TOY2D, ["features", 0], [[1, 0, 0], [0, 1, 0]]), "needs 2 numbers"),
    (edit(TOY2D, ["sft", 1, "weight"], -0.3), "field 'sft\\[1\\].weight': must be >= 0"),
    (edit(TOY2D, ["sft", 2, "response"], 3), "field 'sft\\[2\\].response': index 3 out of range"),
    (edit(TOY2D, ["sft", 0, "prompt"], 1), "field 'sft\\[0\\].prompt': index 1 out of range"),
    (edit(TOY2D, ["sft", 0, "prompt"], 0.5), "expected an integer index"),
    (edit(TOY2D, ["preferences", 0, "rejected"], 1), "chosen and rejected responses are the same"),
    (edit(TOY2D, ["preferences"], []), "field 'preferences': expected a non-empty list"),
    (
        rename(TOY2D, ["preferences", 0], "chosen", "choosen"),
        "preferences\\[0\\].chosen': missing \\(found 'choosen'",
    ),
    (edit(TOY2D, ["start"], [1, 2, 3]), "field 'start': expected 2 numbers"),
    (edit(QUAD2D, ["sft", "hessian"], [[1, 0], [0, -1]]), "positive semi-definite"),
    (edit(QUAD2D, ["sft", "hessian"], [[1, 2], [0, 1]]), "must be symmetric"),
    (edit(QUAD2D, ["dpo", "hessian"], [[1, 0, 0]]), "expected shape \\(2, 2\\)"),
    (edit(QUAD2D, ["dpo", "center"], [1, 2, 3]), "expected shape \\(3, 3\\)"),
    (edit(QUAD2D, ["sft"], KeyError), "field 'sft': missing"),
    ([1, 2], "expected an object"),
]


@pytest.mark.parametrize("data, message", BAD)
def test_each_mistake_gets_one_clear_error_naming_the_file_and_field(data, message, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ProblemFormatError, match=message) as info:
        load_problem(path)
    text = str(info.value)
    assert text.startswith(str(path)) and "\n" not in text


@pytest.mark.parametrize(
    "content, message",
    [(b"{not json", "line 1: invalid JSON"), (b"\xff\xfe{}", "not UTF-8"), (b"", "invalid JSON")],
)
def test_unreadable_files(content, message, tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(ProblemFormatError, match=message):
        load_problem(path)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=True)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=30,
)


def mutate(base: dict, draw_value, keys: list[str]):
    data = copy.deepcopy(base)
    for key in keys:
        data[key] = draw_value
    return data


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([TOY2D, QUAD2D, random_loglinear(np.random.default_rng(3)).to_json()]),
    st.lists(
        st.sampled_from(
            ["kind", "beta", "theta_ref", "features", "sft", "preferences", "dpo", "start"]
        ),
        max_size=2,
    ),
    json_values,
)
def test_fuzzed_problems_load_or_raise_the_documented_error(base, keys, value):
    try:
        problem_from_dict(mutate(base, value, keys), "fuzz.json")
    except ProblemFormatError as e:
        assert str(e).startswith("fuzz.json: ")
