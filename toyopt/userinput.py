"""Reading the JSON and YAML files a user gives: a key given twice in one object is refused
(naming the file, the line and the key) instead of silently keeping the last value."""

from __future__ import annotations

import json
from pathlib import Path


class DuplicateKey(ValueError):
    """A key given twice in one JSON object or YAML mapping; the message names file and line."""


def _key_lines(text: str, start: int, key: str) -> list[int]:
    """The lines (1-based) of the keys equal to ``key`` in the object that opens at ``start``."""
    lines, depth, i, n = [], 0, start, len(text)
    while i < n:
        c = text[i]
        if c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                break
        elif c == '"':
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            rest = text[j + 1 :].lstrip()
            if depth == 1 and rest.startswith(":") and json.loads(text[i : j + 1]) == key:
                lines.append(text.count("\n", 0, i) + 1)
            i = j
        i += 1
    return lines


class _Decoder(json.JSONDecoder):
    """The pure-Python scanner with a hook on every object: a repeated key raises DuplicateKey
    with the line of its second occurrence."""

    def __init__(self, source: str) -> None:
        super().__init__()

        def parse_object(s_and_end, strict, scan_once, object_hook, pairs_hook, memo=None):
            s, end = s_and_end
            pairs, after = json.decoder.JSONObject(
                s_and_end, strict, scan_once, None, lambda p: p, memo if memo is not None else {}
            )
            seen: set = set()
            for key, _ in pairs:
                if key in seen:
                    lines = _key_lines(s, end - 1, key)
                    where = f"line {lines[1]}" if len(lines) > 1 else "line ?"
                    first = f" (first on line {lines[0]})" if len(lines) > 1 else ""
                    raise DuplicateKey(f"{source}: {where}: key {key!r} given twice{first}")
                seen.add(key)
            return dict(pairs), after

        self.parse_object = parse_object
        self.scan_once = json.scanner.py_make_scanner(self)


def loads_json(text: str, source: str):
    """``json.loads`` that refuses a key given twice in one object (see :class:`DuplicateKey`)."""
    return _Decoder(source).decode(text)


def refuse_duplicates(pairs: list) -> dict:
    """An ``object_pairs_hook`` for one-line records (a JSONL row): the caller names the line."""
    out = dict(pairs)
    if len(out) < len(pairs):
        seen: set = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise DuplicateKey(f"key {key!r} given twice")
    return out


def load_yaml(text: str, source: str):
    """``yaml.safe_load`` that refuses a key given twice in one mapping, naming its line."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen: dict = {}
                for key_node, _ in node.value:
                    key = self.construct_object(key_node, deep=True)
                    try:
                        first = seen.get(key)
                    except TypeError:  # an unhashable key: the caller refuses it
                        continue
                    line = key_node.start_mark.line + 1
                    if first is not None:
                        raise DuplicateKey(
                            f"{source}: line {line}: key {key!r} given twice (first on line"
                            f" {first})"
                        )
                    seen[key] = line
            return super().construct_mapping(node, deep)

    return yaml.load(text, Loader=Loader)  # noqa: S506 (a SafeLoader subclass)


def is_directory(path: str | Path, what: str) -> None:
    """A ValueError when ``path`` names a directory where a file (``what``) is expected."""
    if Path(path).is_dir():
        raise ValueError(f"{path} is a directory, not {what}")
