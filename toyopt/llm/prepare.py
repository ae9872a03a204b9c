"""Data for a run: resolve the sources, load and validate them, hold out eval rows, tokenize.

Missing sources fall back to the synthetic tasks (:mod:`toyopt.llm.synthetic`), written into the
run directory so the run is self-contained. Without an eval file, a fixed share of the training
rows is held out: row i goes to eval when uniform(0, i, SPLIT_STREAM) < eval_fraction, the same
rows for every run and seed. Everything skipped or truncated is counted and reported.

A preference pair whose chosen and rejected sequences are the same tokens after truncation to
``max_length`` gives DPO a constant loss (ln 2) and no gradient: it is refused (naming its file
and line), or skipped and counted with ``skip_bad_rows``; a split of only such pairs is refused
either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from toyopt.llm.checkpoint import sha256_file
from toyopt.llm.data import DataError, load_data
from toyopt.llm.encode import Encoded, encode_pref, encode_sft
from toyopt.llm.synthetic import make_data
from toyopt.rng import uniform

SPLIT_STREAM = 99
Rows = list[tuple[list[int], list[int]]]


@dataclass
class Prepared:
    sft_train: Rows
    sft_eval: Rows
    pref_train: Rows
    pref_eval: Rows
    notes: list[str] = field(default_factory=list)
    fingerprint: dict = field(default_factory=dict)  # per split: source, sha256, rows


def sources(cfg, run: Path) -> dict[str, str]:
    """{split: source} for sft_train, sft_eval, pref_train, pref_eval ('' = split off train)."""
    synthetic = None
    if not cfg.sft_data or not cfg.pref_data:
        synthetic = make_data(run / "data", root=run)
    out = {}
    for kind, train, held in (
        ("sft", cfg.sft_data, cfg.sft_eval),
        ("pref", cfg.pref_data, cfg.pref_eval),
    ):
        if train:
            out[f"{kind}_train"], out[f"{kind}_eval"] = train, held
        else:
            if held:
                raise DataError(f"--{kind}-eval given without --{kind}-data")
            out[f"{kind}_train"] = str(synthetic[f"{kind}_train"])
            out[f"{kind}_eval"] = str(synthetic[f"{kind}_eval"])
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


def load(source: str, kind: str, cfg):
    """Load one source; ``max_rows`` keeps its first rows (counted and reported)."""
    loaded = load_data(source, kind, cfg.skip_bad_rows)
    if cfg.max_rows:
        loaded.examples = loaded.examples[: cfg.max_rows]
    return loaded


def check_sources(cfg) -> None:
    """Read and validate the local data files named by ``cfg`` (a DataError naming file, line
    and field), before a run directory is made or a model loaded; prepare reads them again."""
    for kind, names in (("sft", ("sft_data", "sft_eval")), ("pref", ("pref_data", "pref_eval"))):
        for name in names:
            source = getattr(cfg, name)
            if source and not source.startswith("hf:"):
                load_data(source, kind, cfg.skip_bad_rows)


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
    """Load, validate, split and tokenize the four data sets named by ``cfg``."""
    src = sources(cfg, run)
    notes: list[str] = []
    examples = {}
    for kind in ("sft", "pref"):
        loaded = load(src[f"{kind}_train"], kind, cfg)
        parts = [(f"{kind}_train", loaded)]
        if src[f"{kind}_eval"]:
            parts.append((f"{kind}_eval", load(src[f"{kind}_eval"], kind, cfg)))
            examples[f"{kind}_train"] = loaded.examples
            examples[f"{kind}_eval"] = parts[1][1].examples
        else:
            examples[f"{kind}_train"], examples[f"{kind}_eval"] = hold_out(
                loaded.examples, cfg.eval_fraction
            )
        for name, part in parts:
            if part.skipped:
                notes.append(
                    f"{name}: skipped {part.skipped} bad rows (first: {part.skip_messages[0]})"
                )
    encoded = {}
    for name, exs in list(examples.items()):
        encode = encode_sft if name.startswith("sft") else encode_pref
        enc = encode(tokenizer, exs, cfg.max_length)
        if name.startswith("pref"):
            examples[name], enc = drop_vacuous(name, exs, enc, cfg, notes)
        if enc.truncated:
            notes.append(
                f"{name}: truncated {enc.truncated} of {len(exs)} rows to {cfg.max_length} tokens"
            )
        encoded[name] = enc.rows
    if cfg.max_rows:
        notes.append(f"max_rows: each data file cut to its first {cfg.max_rows} rows")
    held = {f"{k}_eval": f"held out of {k}_train" for k in ("sft", "pref")}
    prints = {name: fingerprint(src[name] or held[name], exs) for name, exs in examples.items()}
    return Prepared(**encoded, notes=notes, fingerprint=prints)
