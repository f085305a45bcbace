"""Benchmarks of the outbox against naive baselines, and the chaos run (``make bench``, ``make chaos``)."""
