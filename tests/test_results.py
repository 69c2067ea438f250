"""`zcrxprof.open`: one object with the frames, the per-run table, the label, and every analysis
(`df_*`, a DataFrame) and figure (`plot_*`, a Figure) as a method — on the shipped datasets."""
from __future__ import annotations

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import zcrxprof  # noqa: E402
from zcrxprof import dataset  # noqa: E402
from zcrxprof.analysis import per_run, profile  # noqa: E402

HOST, SWEEP, LAB = "host-copy-4topo", "host-copy-rate-sweep", "lab-nodev-4topo-kprobes"
# methods that need arguments, with the arguments a notebook gives them
ARGS = {"df_ratio_to_single": ("shared-ifq",), "df_against_loadgen": ("copy_bytes", "bytes"),
        "df_probe_metric_total": ("refill_calls",), "df_compare": (zcrxprof.open(HOST),)}


@pytest.fixture(scope="module")
def host():
    return zcrxprof.open(HOST)


def _methods(prefix: str) -> list[str]:
    return sorted(m for m in dir(zcrxprof.Results) if m.startswith(prefix))


def test_import_zcrxprof_stays_light():
    code = "import sys, zcrxprof; print(sorted({'pandas', 'matplotlib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_open_holds_the_dataset_the_per_run_table_and_the_label(host):
    ds = dataset.load(HOST)
    assert host.names == [HOST]
    assert host.tables.keys() == ds.tables.keys()
    pd.testing.assert_frame_equal(host.runs, per_run(ds))
    assert "backend copy" in host.label and "cores" in host.label
    assert len(host.runs) == len(ds.usable_runs())


@pytest.mark.parametrize("name", _methods("df_"))
def test_every_df_method_returns_a_frame(host, name):
    out = getattr(host, name)(*ARGS.get(name, ()))
    assert isinstance(out, pd.DataFrame), name
    if len(out.columns) and "dataset" in out.columns:
        assert set(out["dataset"]) <= {HOST}


def test_df_methods_have_the_expected_rows(host):
    topologies = {"single", "workers", "ifq-per-ring", "shared-ifq"}
    assert set(host.df_throughput()["topology"]) == topologies
    assert len(host.df_throughput()) == host.runs.groupby(["topology", "rings", "workers"]).ngroups
    budget = host.df_queue_budget().set_index(["topology", "rings"])["queues"]
    assert budget[("ifq-per-ring", 2)] == 2 and budget[("shared-ifq", 2)] == 1
    assert host.df_queue_budget()["as_designed"].all()
    sleeps = host.df_receiver_sleeps().query("topology == 'single'")
    assert len(sleeps) == 1 and sleeps["runs"].iloc[0] == (host.runs["topology"] == "single").sum()
    assert len(host.df_verdict()) >= 1 and len(host.df_shared_over_per_ring()) == 1
    assert host.df_capacity_error()["predictions"].iloc[0] == (host.df_capacity_validation()["topology"] != "single").sum()


@pytest.mark.parametrize("name", _methods("plot_"))
def test_every_plot_method_returns_a_figure(host, name):
    fig = getattr(host, name)()
    assert isinstance(fig, Figure), name
    assert fig.get_axes()


def test_two_datasets_keep_their_identity():
    both = zcrxprof.open([HOST, SWEEP])
    host, sweep = dataset.load(HOST), dataset.load(SWEEP)
    assert both.names == [HOST, SWEEP]
    assert both.runs.groupby("dataset").size().to_dict() == {HOST: len(host.usable_runs()),
                                                             SWEEP: len(sweep.usable_runs())}
    assert set(both.df_throughput()["dataset"]) == {HOST, SWEEP}
    assert len(both.label.split(" | ")) == 2
    # run ids overlap between the two (both start at 0): a profile joined on run_id alone would
    # label the host's samples with the sweep's runs too
    assert set(host.runs["run_id"]) & set(sweep.runs["run_id"])
    pd.testing.assert_frame_equal(both.df_receive_breakdown(), zcrxprof.open(HOST).df_receive_breakdown())
    pd.testing.assert_frame_equal(both.df_handoff_share(), zcrxprof.open(HOST).df_handoff_share())


def test_a_profile_joins_its_runs_on_dataset_and_run_id():
    both = dataset.load([HOST, SWEEP])
    out = profile.labelled(both.profile, both.runs)
    assert len(out) == len(both.profile[both.profile["dataset"] == HOST])
    host_runs = both.runs[both.runs["dataset"] == HOST].set_index("run_id")["topology"]
    assert (out["topology"] == out["run_id"].map(host_runs)).all()


def test_an_empty_name_opens_the_newest_dataset_of_a_kind():
    assert zcrxprof.open("", where="lab", with_probes=True).names == [LAB]
