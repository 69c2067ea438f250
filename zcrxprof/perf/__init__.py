"""Linux `perf` in the loop: run `perf stat` / `perf record` beside the load generator, parse their
machine-readable output into the dataset's `perf_counters` and `profile` tables, and draw them.

Modules: `tool` (find perf, what it supports here), `stat` and `profile` (runners + parsers),
`process` (stopping perf children), `collector` (the `record --perf/--profile` plug-in), `flame`
(icicle figure). Their analyses live with the others: `zcrxprof.analysis.profile` (receive-time
breakdown) and `zcrxprof.analysis.cache` (cache effects, counter rates).
"""
