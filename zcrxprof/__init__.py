"""zcrxprof: measure io_uring zero-copy receive (zcrx) topologies — loadgen → probes → collector →
dataset → analysis → plots → notebooks/report.

In a notebook: ``r = zcrxprof.open("host-copy-4topo")``, then ``r.df_*()`` and ``r.plot_*()``.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``zcrxprof.open`` and ``zcrxprof.Results``, imported on first use so that ``import zcrxprof``
    stays light (no pandas, no matplotlib)."""
    if name in ("open", "Results"):
        from zcrxprof import results
        return getattr(results, name)
    raise AttributeError(f"module 'zcrxprof' has no attribute {name!r}")
