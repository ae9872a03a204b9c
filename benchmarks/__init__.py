"""Benchmarks of the trainer and the toy job: ``python -m benchmarks`` regenerates BENCHMARKS.md.

Each module measures one thing and prints its table; measurements of compared variants are
interleaved and repeated in fresh processes, so machine load hits every variant alike.
"""
