"""Every record kind has a broken variant that makes a record of that kind fail, while the kinds
the variant does not touch still hold (proofs_check.broken)."""

from __future__ import annotations

import warnings

import pytest

from proofs_check.broken import variants
from proofs_check.record import KINDS, format_table

VARIANTS = {v.name: v for v in variants()}


def test_every_record_kind_has_a_variant_that_targets_it():
    targeted = {kind for v in VARIANTS.values() for kind in v.targets}
    assert targeted == set(KINDS), f"no broken variant for {set(KINDS) - targeted}"


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_broken_variant_fails_its_target_and_spares_the_rest(name):
    variant = VARIANTS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the divergent variant overflows
        records = variant.run()
    table = format_table(records)
    for kind in variant.targets:
        assert any(r.kind == kind and not r.holds for r in records), f"{kind} held:\n{table}"
    for kind in variant.holds:
        mine = [r for r in records if r.kind == kind]
        assert mine and all(r.holds for r in mine), f"{kind} should hold:\n{table}"
