"""The offered load of the test suite's recordings that test behaviour, not speed.

An unpaced copy-backend run keeps both cores busy for its whole duration (the sender sends as fast
as it can, the receiver does its work per KiB on all of it): the suite's recordings used about five
times the CPU they need to show what they test, and on a 2-core machine beside a busy neighbour
that CPU is the suite's running time. Paced at 0.5 Gbit/s, a run still carries hundreds of MB
through every topology, every interval has bytes, and the receiver sleeps between completions.
Tests about throughput, CPU per byte or profiles (test_compare.py's work pair, test_perf_record.py)
and the load generator's own tests stay unpaced.
"""
RATE_GBIT = "0.5"
PACED = ["--rate", RATE_GBIT]    # `zcrxprof record` and `zcrx-loadgen` spell it the same
