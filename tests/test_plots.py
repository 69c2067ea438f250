"""Every figure renders from the committed host dataset and names backend, kernel, machine and
whether timings were emulated."""
from __future__ import annotations

import io

import matplotlib
import pytest
from matplotlib.figure import Figure

matplotlib.use("Agg")

from zcrxprof import plots  # noqa: E402
from zcrxprof.analysis import cache, capacity, label, per_run, saturation  # noqa: E402
from zcrxprof.dataset import load  # noqa: E402


@pytest.fixture(scope="module")
def ctx():
    frames = load("host-copy-4topo")  # the committed four-topology recording (datasets/README.md)
    return frames, per_run(frames), label(frames)


def _figures(frames, runs, lab):
    cores = frames.metadata["machine"]["cores"]
    costs = capacity.measure_costs(runs[runs["work_ns_per_kib"] == runs["work_ns_per_kib"].iloc[0]])
    yield "throughput", plots.throughput(saturation.throughput(runs), lab)
    sweep = per_run(load("host-copy-rate-sweep"))
    yield "saturation", plots.saturation_curve(saturation.offered_vs_achieved(sweep), lab)
    yield "scaling", plots.scaling(saturation.scaling(runs), lab)
    yield "ring_share", plots.ring_share(saturation.ring_share(frames), lab)
    yield "costs", plots.costs_per_gb(runs, lab)
    yield "hot_cold", plots.hot_vs_cold(cache.work_cost(runs), lab)
    yield "validation", plots.capacity_validation(capacity.validate(runs, cores), lab)
    yield "extrapolation", plots.extrapolation(
        capacity.extrapolate(costs, 64, 200.0, 8, [1, 2, 4, 8, 16]), lab)


def test_every_figure_is_labelled_and_renders(ctx):
    frames, runs, lab = ctx
    backends, kernels = set(runs["backend"]), set(runs["kernel"])
    cores = str(frames.metadata["machine"]["cores"])
    names = []
    for name, fig in _figures(frames, runs, lab):
        names.append(name)
        assert isinstance(fig, Figure), name
        title = fig.get_suptitle().replace("\n", " ")
        for needle in (*backends, *kernels, f"{cores} cores", "timing"):
            assert needle in title, f"{name}: {needle!r} missing from title"
        assert any(ax.has_data() for ax in fig.axes), f"{name}: empty axes"
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=40)
        assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(names) == 8


def test_throughput_bars_are_the_medians(ctx):
    _, runs, lab = ctx
    tp = saturation.throughput(runs)
    fig = plots.throughput(tp, lab)
    heights = sorted(round(p.get_height(), 9) for ax in fig.axes for p in ax.patches)
    assert heights == sorted(round(v, 9) for v in tp["median"])


def test_extrapolation_says_it_is_not_a_measurement(ctx):
    _, runs, lab = ctx
    costs = capacity.measure_costs(runs[runs["work_ns_per_kib"] == runs["work_ns_per_kib"].iloc[0]])
    fig = plots.extrapolation(capacity.extrapolate(costs, 64, 200.0, 8, [1, 2, 4]), lab)
    assert "EXTRAPOLATION" in fig.get_suptitle() and "not measured" in fig.get_suptitle()
