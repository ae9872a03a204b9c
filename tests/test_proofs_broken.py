"""Every check fails on its deliberately broken variant (proofs_check.broken)."""

from __future__ import annotations

import warnings

import pytest

from proofs_check.broken import variants
from proofs_check.record import format_table

VARIANTS = variants(quick=True)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_broken_variant_is_caught(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the divergent variant overflows
        records = VARIANTS[name]()
    assert not all(r.holds for r in records), f"{name} was not caught:\n{format_table(records)}"
