"""zcrxprof: measure io_uring zero-copy receive (zcrx) topologies — loadgen → probes → collector →
dataset → analysis → plots → notebooks/report."""

__version__ = "0.1.0"
