"""The files a run's result depends on besides its config and data: the base model's weights,
config and tokenizer (``--model``) and the reference model's (``--ref-model``), each by sha256.

Every checkpoint's manifest records them (:mod:`toyopt.llm.checkpoint`) and ``--resume`` compares
them with the files as they are now: a LoRA run whose base weights changed, or a run with
``--no-precompute-ref`` whose reference model changed (its log-probs are computed per batch from
it), is refused in one line naming the file. Built-in models are fingerprinted by the file they
load from (``tiny``: the shipped pretrained weights; ``smollm2``: the GGUF file; ``tiny-random``
is built by code alone; a hub name: the files of its snapshot in the local cache).

Files are hashed in 1 MiB blocks, once per process for a given path, size and mtime (a 270 MB
GGUF file is read once per run, not once per checkpoint).
"""

from __future__ import annotations

import os
from pathlib import Path

from toyopt.llm.checkpoint import sha256_file

# the files of a model directory that what it computes depends on (weights, config, tokenizer)
SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".json", ".txt", ".model",
            ".tiktoken")  # fmt: skip
_CACHE: dict[tuple, str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of ``path``, cached by (real path, size, mtime) within the process."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if key not in _CACHE:
        _CACHE[key] = sha256_file(Path(path))
    return _CACHE[key]


def model_files(name: str) -> dict[str, Path] | None:
    """{name shown: path} of the files model ``name`` loads from; None for a hub name."""
    if name == "tiny":
        from toyopt.llm.pretrain import WEIGHTS

        return {WEIGHTS.name: WEIGHTS}
    if name == "tiny-random":
        return {}
    if name == "smollm2":
        from toyopt.llm.models import SMOLLM2_GGUF, smollm2_dir

        path = smollm2_dir() / SMOLLM2_GGUF
        return {path.name: path}
    folder = Path(name)
    if not folder.is_dir():
        folder = cached_snapshot(name)
        if folder is None:
            return None
    return {
        p.name: p
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith(".") and p.suffix in SUFFIXES
    }


def cached_snapshot(name: str) -> Path | None:
    """The local Hugging Face cache's snapshot folder of hub model ``name`` (None if none)."""
    if "/" not in name or name.startswith((".", "/")):
        return None  # a local path (load_model refuses it when it does not exist)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception:  # not a hub id, not cached, or no huggingface_hub
        return None


def model_fingerprint(name: str) -> dict | None:
    """{file: sha256} of model ``name`` (see :func:`model_files`), None for a hub name."""
    found = model_files(name)
    if found is None:
        return None
    return {shown: file_sha256(path) for shown, path in found.items()}


def inputs(cfg) -> dict:
    """What a checkpoint's manifest records of the models a run depends on."""
    out = {"model": {"name": cfg.model, "files": model_fingerprint(cfg.model)}}
    if cfg.ref_model:
        out["ref_model"] = {"name": cfg.ref_model, "files": model_fingerprint(cfg.ref_model)}
    return out


def changes(old: dict, new: dict) -> list[str]:
    """What changed between two :func:`inputs` records, as ``--model DIR: FILE changed since
    the run started`` (a record without the entry, from an older checkpoint, is not compared)."""
    out = []
    for key, now in new.items():
        was = old.get(key)
        if was is None or was.get("files") is None or now.get("files") is None:
            continue
        option = "--" + key.replace("_", "-")
        a, b = was["files"], now["files"]
        for f in sorted(set(a) | set(b)):
            if f not in b:
                out.append(f"{option} {now['name']}: {f} was removed since the run started")
            elif f not in a:
                out.append(f"{option} {now['name']}: {f} was added since the run started")
            elif a[f] != b[f]:
                out.append(f"{option} {now['name']}: {f} changed since the run started")
    return out
