"""Joint SFT + DPO training of Hugging Face causal language models with the toy rules.

The trainer drives :func:`toyopt.loop.train` with the rule objects of :mod:`toyopt.rules` and a
language-model backend (:mod:`toyopt.llm.backend`), so sequential, ALRIGHT, MAXRIGHT and Mix are
exactly the rules whose behaviour the toy checks verify. Entry point: ``python -m toyopt.llm``.
torch is imported only inside this subpackage (and :mod:`toyopt.torch_backend`).
"""
