"""Numerical checks of the paper's claims C1–C6 with explicit constants, and of its
language-model claims L1–L6 on the tiny model (:mod:`proofs_check.llm`).

One module per claim (``c1_sequential`` … ``c6_tradeoff``); each check returns
:class:`proofs_check.record.Record` objects. ``python -m proofs_check`` runs them all.
``proofs_check.rates.rate_data`` gives the gap-versus-budget series for the rate figure.
"""

from proofs_check.record import Record, format_table

__all__ = ["Record", "format_table"]
