"""`zcrxprof record`: run the topology matrix under the load generator and write a dataset.

Modules: ``plan`` (the run matrix), ``samplers`` (/proc and /sys per interval), ``progress`` (stderr
bar), ``plugins`` (per-run extra collectors such as perf), ``runner`` (one run), ``record`` (the
whole recording, signals and clean-up), ``guest`` (the recording inside the kernel lab). The
command line is :mod:`zcrxprof.cli.record`.
"""
