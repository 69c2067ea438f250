"""Linux `perf` in the loop: run `perf stat` / `perf record` beside the load generator, parse their
machine-readable output into the dataset's `perf_counters` and `profile` tables, and analyse them.

Modules: `tool` (find perf, what it supports here), `stat` and `profile` (runners + parsers),
`process` (stopping perf children), `collector` (the `record --perf/--profile` plug-in),
`analysis` (receive-time breakdown, cache effects), `flame` (icicle figure).
"""
