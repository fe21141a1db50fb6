"""voxgate's benchmarks: ``python -m bench`` (``make bench``), ``--full`` for the whole sweep.

Suites are modules listed in ``bench.__main__.SUITES``; shared parts: :mod:`bench.procs`
(child processes, their CPU and memory), :mod:`bench.stats` (samples, percentiles, rows),
:mod:`bench.loadgen` (the load generator process), :mod:`bench.report` (tables and plots).
"""
