"""Data for a run: resolve the sources, load and validate them, hold out eval rows, tokenize.

Missing sources fall back to the synthetic tasks (:mod:`toyopt.llm.synthetic`), written into the
run directory so the run is self-contained. Without an eval file, a fixed share of the training
rows is held out: row i goes to eval when uniform(0, i, SPLIT_STREAM) < eval_fraction, the same
rows for every run and seed. With ``validation_rows`` N, N more rows (pairs) of each objective's
training data become its validation split (what MAXRIGHT then compares): the N rows with the
smallest uniform(0, i, VALIDATION_STREAM), again the same for every run and seed. Everything
skipped or truncated is counted and reported.

A preference pair whose chosen and rejected sequences are the same tokens after truncation to
``max_length`` gives DPO a constant loss (ln 2) and no gradient: it is refused (naming its file
and line), or skipped and counted with ``skip_bad_rows``; a split of only such pairs is refused
either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from toyopt.llm import objectives
from toyopt.llm.checkpoint import sha256_file
from toyopt.llm.data import DataError, load_data
from toyopt.llm.encode import Encoded, encode_pref, encode_sft
from toyopt.llm.synthetic import make_data
from toyopt.rng import uniform

SPLIT_STREAM = 99
VALIDATION_STREAM = 98
Rows = list[tuple[list[int], list[int]]]


@dataclass
class Prepared:
    """Tokenized rows by objective name (see :mod:`toyopt.llm.objectives`)."""

    train: dict[str, Rows]
    eval: dict[str, Rows]
    kinds: dict[str, str]  # objective name -> kind (sft or a preference loss)
    notes: list[str] = field(default_factory=list)
    fingerprint: dict = field(default_factory=dict)  # per split: source, sha256, rows
    val: dict[str, Rows] = field(default_factory=dict)  # validation rows (empty: none)

    # the two objectives' rows under their usual names
    sft_train = property(lambda self: self.train["sft"])
    sft_eval = property(lambda self: self.eval["sft"])
    pref_train = property(lambda self: self.train["dpo"])
    pref_eval = property(lambda self: self.eval["dpo"])


def sources(cfg, run: Path) -> dict[str, str]:
    """{split: source} for each objective's ``{split}_train`` and ``{split}_eval`` ('' = split
    off train); sft and dpo without files get the synthetic data."""
    synthetic = None
    out = {}
    for src in objectives.sources(cfg):
        if src.data:
            out[f"{src.split}_train"], out[f"{src.split}_eval"] = src.data, src.eval
            continue
        if src.eval:
            raise DataError(f"--{src.split}-eval given without --{src.split}-data")
        synthetic = synthetic or make_data(run / "data", root=run)
        out[f"{src.split}_train"] = str(synthetic[f"{src.split}_train"])
        out[f"{src.split}_eval"] = str(synthetic[f"{src.split}_eval"])
    return out


def hold_out(examples: list, fraction: float) -> tuple[list, list]:
    """(train, eval) by the fixed counter-based split (see the module docstring)."""
    held = uniform(0, np.arange(len(examples)), SPLIT_STREAM) < fraction
    train = [e for e, h in zip(examples, held) if not h]
    evals = [e for e, h in zip(examples, held) if h]
    if not train or not evals:
        raise DataError(
            f"cannot hold out {fraction:.0%} of {len(examples)} rows: give an eval file"
        )
    return train, evals


def split_validation(examples: list, n: int, name: str) -> tuple[list, list]:
    """(train, validation): ``n`` rows of ``examples`` by the fixed counter-based choice (see the
    module docstring), both in their original order."""
    if n >= len(examples):
        raise DataError(
            f"--validation-rows {n}: {name} has only {len(examples)} training rows after the"
            " held-out split; give fewer validation rows"
        )
    picked = set(np.argsort(uniform(0, np.arange(len(examples)), VALIDATION_STREAM))[:n].tolist())
    train = [e for i, e in enumerate(examples) if i not in picked]
    return train, [e for i, e in enumerate(examples) if i in picked]


def load(source: str, kind: str, cfg):
    """Load one source; ``max_rows`` keeps its first rows (counted and reported)."""
    loaded = load_data(source, kind, cfg.skip_bad_rows)
    if cfg.max_rows:
        loaded.examples = loaded.examples[: cfg.max_rows]
    return loaded


def check_sources(cfg) -> None:
    """Read and validate the local data files named by ``cfg`` (a DataError naming file, line
    and field), before a run directory is made or a model loaded; prepare reads them again."""
    for src in objectives.sources(cfg):
        for source in (src.data, src.eval):
            if source and not source.startswith("hf:"):
                load_data(source, src.rows, cfg.skip_bad_rows)


def fingerprint(source: str, examples: list) -> dict:
    """What a resumed run must find unchanged: the file's sha256 (None for hub data or a
    held-out split) and the number of rows used."""
    path = Path(source)
    return {"source": source, "sha256": sha256_file(path) if path.is_file() else None,
            "rows": len(examples)}  # fmt: skip


def drop_vacuous(name: str, examples: list, enc: Encoded, cfg, notes: list[str]):
    """(examples, encoded) without the pairs whose chosen and rejected tokens are identical
    (a DataError naming the first, unless ``cfg.skip_bad_rows``; then they are counted)."""
    same = [i for i in range(len(examples)) if enc.rows[2 * i][1] == enc.rows[2 * i + 1][1]]
    if not same:
        return examples, enc
    where = examples[same[0]].where or f"{name}, pair {same[0] + 1}"
    why = f"identical after truncation to --max-length {cfg.max_length} tokens"
    if len(same) == len(examples):
        raise DataError(
            f"{where}: every pair of {name} has chosen and rejected {why}, so DPO has nothing to"
            " learn: raise --max-length"
        )
    if not cfg.skip_bad_rows:
        raise DataError(
            f"{where}: chosen and rejected are {why} (DPO would get no gradient from the pair):"
            " raise --max-length or drop the row (or --skip-bad-rows)"
        )
    notes.append(
        f"{name}: skipped {len(same)} pairs with chosen and rejected {why} (first: {where})"
    )
    keep = [i for i in range(len(examples)) if i not in set(same)]
    rows = [row for i in keep for row in enc.rows[2 * i : 2 * i + 2]]
    return [examples[i] for i in keep], Encoded(rows, enc.truncated)


def prepare(cfg, tokenizer, run: Path) -> Prepared:
    """Load, validate, split and tokenize the training and held-out rows of every objective."""
    src = sources(cfg, run)
    notes: list[str] = []
    examples, rows = {}, {}
    every = objectives.sources(cfg)
    for obj in every:
        name, kind = obj.split, obj.rows
        loaded = load(src[f"{name}_train"], kind, cfg)
        parts = [(f"{name}_train", loaded)]
        if src[f"{name}_eval"]:
            parts.append((f"{name}_eval", load(src[f"{name}_eval"], kind, cfg)))
            examples[f"{name}_train"] = loaded.examples
            examples[f"{name}_eval"] = parts[1][1].examples
        else:
            examples[f"{name}_train"], examples[f"{name}_eval"] = hold_out(
                loaded.examples, cfg.eval_fraction
            )
        if cfg.validation_rows:
            examples[f"{name}_train"], examples[f"{name}_val"] = split_validation(
                examples[f"{name}_train"], cfg.validation_rows, f"{name}_train"
            )
        for split, part in parts:
            if part.skipped:
                notes.append(
                    f"{split}: skipped {part.skipped} bad rows (first: {part.skip_messages[0]})"
                )
        for split in splits(cfg):
            key, exs = f"{name}_{split}", examples[f"{name}_{split}"]
            enc = (encode_pref if obj.preference else encode_sft)(tokenizer, exs, cfg.max_length)
            if obj.preference:
                examples[key], enc = drop_vacuous(key, exs, enc, cfg, notes)
            if enc.truncated:
                notes.append(
                    f"{key}: truncated {enc.truncated} of {len(exs)} rows to {cfg.max_length} tokens"
                )
            rows[obj.name, split] = enc.rows
    if cfg.max_rows:
        notes.append(f"max_rows: each data file cut to its first {cfg.max_rows} rows")
    prints = {key: fingerprint(src.get(key) or f"held out of {key.rpartition('_')[0]}_train", exs)
              for key, exs in examples.items()}  # fmt: skip
    by = {split: {o.name: rows[o.name, split] for o in every} for split in splits(cfg)}
    kinds = {o.name: o.kind for o in every}
    return Prepared(by["train"], by["eval"], kinds, notes=notes, fingerprint=prints,
                    val=by.get("val", {}))  # fmt: skip


def splits(cfg) -> tuple[str, ...]:
    """The splits a run has: train and its held-out splits (:func:`held_out_splits`)."""
    return ("train", *held_out_splits(cfg))


def held_out_splits(cfg) -> tuple[str, ...]:
    """The splits an evaluation scores: eval, and val with ``validation_rows``."""
    return ("eval", "val") if cfg.validation_rows else ("eval",)
