"""Reading SFT and preference data: local JSONL (or Hugging Face datasets on request).

Accepted row formats (one JSON object per line):

- SFT: ``{"prompt", "completion"}``, ``{"instruction", "output"}`` (an optional ``"input"`` is
  appended to the instruction on a new line), or chat ``{"messages": [{"role", "content"}, ...]}``
  whose last message is the assistant's answer and whose earlier messages form the prompt.
- Preference: ``{"prompt", "chosen", "rejected"}`` (all strings).

A row holding the fields of two formats (``prompt``/``completion`` and ``messages``, say) is
ambiguous, as is a key given twice in one row: both are refused, not resolved by a guess.

A bad row stops the load with a :class:`DataError` naming file, line and field; with
``skip_bad=True`` bad rows are skipped and counted instead. Nothing is dropped silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from toyopt.userinput import refuse_duplicates


class DataError(ValueError):
    """A user data problem; the message names the file, the line and the field."""


@dataclass(frozen=True)
class SFTExample:
    """``prompt`` is either a string or a list of chat messages (the conversation so far)."""

    prompt: str | tuple[tuple[str, str], ...]
    completion: str
    where: str = field(default="", compare=False)  # FILE:LINE of the row, for later errors


@dataclass(frozen=True)
class PrefExample:
    prompt: str | tuple[tuple[str, str], ...]
    chosen: str
    rejected: str
    where: str = field(default="", compare=False)


@dataclass
class Loaded:
    """Parsed examples plus the count (and first messages) of the bad rows that were skipped."""

    examples: list
    skipped: int = 0
    skip_messages: list[str] = field(default_factory=list)


def _text(row: dict, key: str) -> str:
    if key not in row:
        raise KeyError(key)
    value = row[key]
    if not isinstance(value, str):
        raise TypeError(f"field {key!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"field {key!r} is empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # JSON may escape a lone surrogate, which is no text at all
        raise ValueError(f"field {key!r} holds invalid Unicode (a lone surrogate)") from None
    return value


def _messages(row: dict) -> SFTExample:
    msgs = row["messages"]
    if not isinstance(msgs, list) or len(msgs) < 2:
        raise TypeError("field 'messages' must be a list of at least two messages")
    pairs = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise TypeError(f"field 'messages[{i}]' must be an object")
        pairs.append((_text(m, "role"), _text(m, "content")))
    if pairs[-1][0] != "assistant":
        raise ValueError("field 'messages': the last message must have role 'assistant'")
    return SFTExample(prompt=tuple(pairs[:-1]), completion=pairs[-1][1])


FORMATS = {
    "messages": ("messages",),
    "instruction/output": ("instruction", "output", "input"),
    "prompt/completion": ("prompt", "completion"),
    "prompt/chosen/rejected": ("chosen", "rejected"),
}


def one_format(row: dict, kind: str) -> None:
    """A ValueError when the row holds the fields of two formats (one would be ignored)."""
    found = [name for name, keys in FORMATS.items() if any(k in row for k in keys)]
    if kind == "pref" and "completion" not in row and "prompt/completion" in found:
        found.remove("prompt/completion")  # 'prompt' alone is the pair's own prompt
    if len(found) > 1:
        raise ValueError(
            f"the row holds two formats, {found[0]} and {found[1]}: keep the fields of one"
        )


def parse_sft(row: dict) -> SFTExample:
    """One SFT row in any accepted format (see the module docstring)."""
    one_format(row, "sft")
    if "messages" in row:
        return _messages(row)
    if "instruction" in row:
        prompt = _text(row, "instruction")
        extra = row.get("input", "")
        if not isinstance(extra, str):
            raise TypeError(f"field 'input' must be a string, got {type(extra).__name__}")
        if extra.strip():
            prompt = f"{prompt}\n{extra}"
        return SFTExample(prompt, _text(row, "output"))
    if "prompt" not in row:
        raise KeyError("prompt' (or 'instruction' or 'messages'")
    return SFTExample(_text(row, "prompt"), _text(row, "completion"))


def parse_pref(row: dict) -> PrefExample:
    """One preference row; chosen and rejected must differ (else the DPO loss is constant)."""
    one_format(row, "pref")
    ex = PrefExample(_text(row, "prompt"), _text(row, "chosen"), _text(row, "rejected"))
    if ex.chosen == ex.rejected:
        raise ValueError("fields 'chosen' and 'rejected' are identical")
    return ex


PARSERS = {"sft": parse_sft, "pref": parse_pref}


def _row_error(path: Path, line_no: int, err: Exception) -> str:
    if isinstance(err, KeyError):
        return f"{path}:{line_no}: missing field '{err.args[0]}'"
    if isinstance(err, json.JSONDecodeError):
        return f"{path}:{line_no}: invalid JSON ({err.msg} at column {err.colno})"
    if isinstance(err, UnicodeDecodeError):
        return f"{path}:{line_no}: not UTF-8 text ({err.reason} at byte {err.start} of the line)"
    if isinstance(err, RecursionError):
        return f"{path}:{line_no}: the row is nested too deeply to be a data row"
    return f"{path}:{line_no}: {err}"


def load_jsonl(path: str | Path, kind: str, skip_bad: bool = False) -> Loaded:
    """Read ``path`` as JSONL of ``kind`` ("sft" or "pref") rows; blank lines are ignored."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a JSONL file")
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    parse = PARSERS[kind]
    out = Loaded(examples=[])
    for line_no, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"), object_pairs_hook=refuse_duplicates)
            if not isinstance(row, dict):
                raise TypeError(f"a row must be a JSON object, got {type(row).__name__}")
            out.examples.append(replace(parse(row), where=f"{path}:{line_no}"))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, RecursionError) as err:
            message = _row_error(path, line_no, err)
            if not skip_bad:
                raise DataError(message) from None
            out.skipped += 1
            out.skip_messages.append(message)
    if not out.examples:
        raise DataError(f"{path}: no usable {kind} rows")
    return out


def load_hub(name: str, kind: str, split: str = "train", skip_bad: bool = False) -> Loaded:
    """A Hugging Face dataset by name (needs the optional ``datasets`` package and a network or
    a local cache). Rows are validated exactly like JSONL rows; ``name:split`` selects a split.
    Errors read ``NAME[SPLIT]:I: ...`` with I the dataset's 0-based row index."""
    try:
        import datasets  # optional: only when the user asks for a hub dataset
    except ImportError:
        raise DataError(
            f"{name}: reading hub datasets needs `pip install datasets` (or a local JSONL file)"
        ) from None
    if ":" in name:
        name, split = name.rsplit(":", 1)
    try:
        rows = datasets.load_dataset(name, split=split)
    except Exception as err:  # offline, unknown name, bad split: datasets raises many kinds
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{name}[{split}]: cannot load the hub dataset ({first})") from None
    parse = PARSERS[kind]
    out = Loaded(examples=[])
    for i, row in enumerate(rows):
        try:
            out.examples.append(replace(parse(dict(row)), where=f"{name}[{split}]:{i}"))
        except (KeyError, TypeError, ValueError) as err:
            message = _row_error(Path(f"{name}[{split}]"), i, err)
            if not skip_bad:
                raise DataError(message) from None
            out.skipped += 1
            out.skip_messages.append(message)
    return out


def load_data(source: str, kind: str, skip_bad: bool = False) -> Loaded:
    """A local JSONL path, or ``hf:NAME[:SPLIT]`` for a Hugging Face dataset."""
    if source.startswith("hf:"):
        return load_hub(source[3:], kind, skip_bad=skip_bad)
    return load_jsonl(source, kind, skip_bad=skip_bad)
