"""The tiny model's pretraining (toyopt.llm.pretrain): the shipped weights are the recipe's, the
corpus teaches copying and nothing of the fine-tuning tasks, and the recipe is deterministic."""

from __future__ import annotations

import pytest
import torch

from toyopt.llm import pretrain
from toyopt.llm.models import ModelError, load_model
from toyopt.llm.synthetic import PREAMBLE, WORDS

torch.set_num_threads(1)


def test_the_corpus_repeats_word_lists_and_never_shows_the_fine_tuning_tasks():
    for i in range(200):
        line = pretrain.copy_line(i)
        sep = next(s for s in pretrain.SEPARATORS if f"{s} " in line)
        first, second = line.split(f"{sep} ", 1)
        assert first.split() == second.split() and 3 <= len(first.split()) <= 8
        assert set(first.split()) <= set(WORDS)
        assert "Repeat" not in line and PREAMBLE not in line and "Assistant" not in line
    assert pretrain.copy_line(5) == pretrain.copy_line(5) != pretrain.copy_line(6)


def test_the_shipped_weights_are_the_pretrained_model_of_this_recipe():
    tiny, tok = load_model("tiny")
    random_, _ = load_model("tiny-random")
    moved = [not torch.equal(a, b) for a, b in zip(tiny.parameters(), random_.parameters())]
    assert all(moved)
    text = "red cat sun | red cat sun"  # the second half is predictable after pretraining only
    ids = tok(text, return_tensors="pt")["input_ids"]
    losses = []
    for model in (random_, tiny):
        with torch.no_grad():
            losses.append(float(model(input_ids=ids, labels=ids).loss))
    assert losses[1] < losses[0] / 2, losses


def test_weights_of_another_recipe_are_refused(monkeypatch):
    monkeypatch.setitem(pretrain.RECIPE, "steps", pretrain.RECIPE["steps"] + 1)
    with pytest.raises(ModelError, match="pretrain-tiny"):
        load_model("tiny")


def test_pretraining_is_deterministic_and_lowers_the_loss():
    ends, losses = [], None
    for _ in range(2):
        model, tok = load_model("tiny-random")
        losses = pretrain.pretrain(model, tok, steps=30)
        ends.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*ends))
    assert sum(losses[-5:]) < sum(losses[:5])
