"""Fuzzed files for the LLM trainer's loaders: a JSONL data file or a YAML config either loads or
raises the documented error (:class:`DataError` / ``ValueError``) in one line naming the file,
never anything else. Rows are drawn near the accepted formats (valid rows with fields dropped,
renamed or replaced by any JSON value) and far from them (any text, any bytes)."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from toyopt.llm.config import FIELDS, from_sources
from toyopt.llm.data import DataError, load_jsonl

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
GOOD = {
    "sft": [
        {"prompt": "a", "completion": "b"},
        {"instruction": "a", "input": "x", "output": "b"},
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
    ],
    "pref": [{"prompt": "a", "chosen": "b", "rejected": "c"}],
}
KEYS = ["prompt", "completion", "chosen", "rejected", "instruction", "input", "output", "messages"]


@st.composite
def row(draw, kind: str) -> bytes:
    """One line: a mutated good row, any JSON value, any text or any bytes."""
    how = draw(st.sampled_from(["mutate", "mutate", "json", "text", "bytes"]))
    if how == "mutate":
        data = dict(draw(st.sampled_from(GOOD[kind])))
        for key in draw(st.lists(st.sampled_from(KEYS), max_size=2)):
            action = draw(st.sampled_from(["drop", "replace", "rename"]))
            if action == "drop":
                data.pop(key, None)
            elif action == "replace":
                data[key] = draw(json_values)
            elif key in data:
                data[key + draw(st.sampled_from(["s", "_", "X"]))] = data.pop(key)
        return json.dumps(data).encode()
    if how == "json":
        return json.dumps(draw(json_values)).encode()
    if how == "text":
        return draw(st.text(max_size=30)).encode("utf-8", "surrogatepass")
    return draw(st.binary(max_size=30))


@st.composite
def jsonl_file(draw) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["sft", "pref"]))
    lines = draw(st.lists(row(kind), max_size=5))
    return kind, b"\n".join(lines) + draw(st.sampled_from([b"", b"\n", b"\r\n"]))


@given(jsonl_file(), st.booleans())
def test_fuzzed_jsonl_loads_or_raises_the_documented_error(case, skip_bad):
    kind, content = case
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "data.jsonl"
        path.write_bytes(content)
        try:
            loaded = load_jsonl(path, kind, skip_bad=skip_bad)
        except DataError as err:
            message = str(err)
            assert message.startswith(f"{path}:") and "\n" not in message, message
            return
    assert loaded.examples
    assert len(loaded.examples) + loaded.skipped <= len(content.splitlines())
    assert skip_bad or loaded.skipped == 0


config_values = st.dictionaries(
    st.sampled_from(sorted(FIELDS) + ["stpes", "lamda"]), json_values, max_size=3
)


@given(config_values | json_values)
def test_fuzzed_yaml_config_loads_or_raises_a_one_line_value_error(data):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.yaml"
        path.write_text(yaml.safe_dump(data))
        try:
            cfg = from_sources(argparse.Namespace(config=str(path)))
        except ValueError as err:
            assert "\n" not in str(err), str(err)
            return
    assert 0 <= cfg.lam <= 1 and cfg.steps > 0
