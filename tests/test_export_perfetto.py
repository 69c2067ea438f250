"""`zcrxprof export --perfetto`: every run on one Perfetto timeline, read back with Perfetto's protos."""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field

import pandas as pd
import pytest
from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace, TrackEvent

from inprocess import zcrxprof
from zcrxprof import dataset, schema
from zcrxprof.errors import UsageError, ZcrxprofError
from zcrxprof.export.perfetto_trace import build_trace, export_command, write_trace

HOST = dataset.resolve("host-copy-4topo")   # perf counters, probes, system samples
LAB = dataset.resolve("lab-nodev-4topo-kprobes")   # zcrxstat probes, no perf counters
NS = 1_000_000_000


@dataclass
class Track:
    """One track of a trace read back: its descriptor's facts and its events in file order."""

    uuid: int
    parent: int
    name: str
    kind: str   # process | thread | counter | group
    pid: int = 0
    tid: int = 0
    unit: str = ""
    times: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    slices: list[tuple[int, int, str, dict]] = field(default_factory=list)


def read_back(data: bytes) -> dict[int, Track]:
    """The tracks of a serialized trace, with their counter samples and slices."""
    trace = Trace()
    trace.ParseFromString(data)
    tracks: dict[int, Track] = {}
    open_slices: dict[int, tuple[int, str, dict]] = {}
    for packet in trace.packet:
        if packet.HasField("track_descriptor"):
            d = packet.track_descriptor
            if d.HasField("process"):
                t = Track(d.uuid, d.parent_uuid, d.process.process_name, "process", pid=d.process.pid)
            elif d.HasField("thread"):
                t = Track(d.uuid, d.parent_uuid, d.thread.thread_name, "thread", pid=d.thread.pid, tid=d.thread.tid)
            elif d.HasField("counter"):
                t = Track(d.uuid, d.parent_uuid, d.name, "counter", unit=d.counter.unit_name)
            else:
                t = Track(d.uuid, d.parent_uuid, d.name, "group")
            assert t.uuid not in tracks
            tracks[t.uuid] = t
        elif packet.HasField("track_event"):
            e = packet.track_event
            track = tracks[e.track_uuid]   # descriptors come before their events
            track.times.append(packet.timestamp)
            if e.type == TrackEvent.Type.TYPE_COUNTER:
                track.values.append(e.double_counter_value)
            elif e.type == TrackEvent.Type.TYPE_SLICE_BEGIN:
                args = {a.name: getattr(a, a.WhichOneof("value")) for a in e.debug_annotations}
                open_slices[e.track_uuid] = (packet.timestamp, e.name, args)
            elif e.type == TrackEvent.Type.TYPE_SLICE_END:
                begin, name, args = open_slices.pop(e.track_uuid)
                track.slices.append((begin, packet.timestamp, name, args))
    assert not open_slices
    return tracks


def children(tracks: dict[int, Track], parent: int, kind: str | None = None) -> list[Track]:
    return [t for t in tracks.values() if t.parent == parent and (kind is None or t.kind == kind)]


def by_name(tracks: list[Track]) -> dict[str, Track]:
    out = {t.name: t for t in tracks}
    assert len(out) == len(tracks), "track names repeat"
    return out


@pytest.fixture(scope="module")
def host():
    return dataset.load(HOST)


@pytest.fixture(scope="module")
def host_trace(host, tmp_path_factory):
    out = tmp_path_factory.mktemp("perfetto") / "host.pftrace"
    summary = write_trace(host, out)
    assert summary.runs == len(host.runs) and summary.samples > 0
    return read_back(out.read_bytes())


def run_processes(tracks: dict[int, Track]) -> dict[int, Track]:
    """run_id -> its process track (the run's slice names its run_id)."""
    out = {}
    for t in tracks.values():
        if t.kind == "process":
            assert len(t.slices) == 1
            out[t.slices[0][3]["run_id"]] = t
    return out


def started_ns(run: pd.Series) -> int:
    return run["started_at"].as_unit("ns").value


def test_one_process_per_run_holding_the_run_as_one_slice(host, host_trace):
    procs = run_processes(host_trace)
    assert sorted(procs) == sorted(host.runs["run_id"])
    assert len({p.pid for p in procs.values()}) == len(procs)
    assert sum(t.kind == "process" for t in host_trace.values()) == len(host.runs)
    for _, run in host.runs.iterrows():
        p = procs[run["run_id"]]
        begin, end, name, args = p.slices[0]
        assert name == p.name and f"run {run['run_id']}: {run['topology']}, {run['backend']}" in name
        assert begin == started_ns(run) and "emulated" not in name
        assert end == begin + round(run["elapsed_s"] * NS)
        assert args["topology"] == run["topology"] and args["gbit_s"] == pytest.approx(run["gbit_s"])
        assert args["status"] == "ok" and args["zero_copy"] is False and args["usable"] is True


def test_every_load_generator_thread_has_a_thread_track_with_its_tid(host, host_trace):
    procs = run_processes(host_trace)
    for run_id, rows in host.intervals.groupby("run_id"):
        threads = {t.name: t for t in children(host_trace, procs[run_id].uuid, "thread")}
        for name, tid in set(zip(rows["thread"], rows["tid"])):
            assert threads[name].tid == tid and threads[name].pid == procs[run_id].pid
            (slice_,) = threads[name].slices
            assert slice_[3]["tid"] == tid


# Each interval counter, computed here from the dataset's columns (the trace must hold exactly these).
EXPECTED = {
    "Gbit/s": lambda r: r["bytes"] * 8 / r["interval_s"] / 1e9,
    "CPU user (ms)": lambda r: r["utime_ns"] / 1e6,
    "CPU sys (ms)": lambda r: r["stime_ns"] / 1e6,
    "voluntary switches": lambda r: r["nvcsw"],
    "involuntary switches": lambda r: r["nivcsw"],
    "work (ms)": lambda r: r["work_ns"] / 1e6,
    "buffers returned": lambda r: r["bufs_returned"],
    "refill backlog": lambda r: r["refill_backlog"],
    "ENOBUFS": lambda r: r["enobufs"],
    "re-arms": lambda r: r["rearms"],
}
ROLE_COUNTERS = {"rx": set(EXPECTED), "worker": set(EXPECTED) - {"ENOBUFS", "re-arms"},
                 "tx": {"Gbit/s", "CPU user (ms)", "CPU sys (ms)", "voluntary switches", "involuntary switches"}}


def test_interval_counters_equal_the_dataset_at_the_start_of_each_interval(host, host_trace):
    procs = run_processes(host_trace)
    runs = host.runs.set_index("run_id")
    checked = 0
    for (run_id, thread), rows in host.intervals.groupby(["run_id", "thread"]):
        rows = rows.sort_values("t")
        origin = started_ns(runs.loc[run_id])
        (track,) = [t for t in children(host_trace, procs[run_id].uuid, "thread") if t.name == thread]
        counters = by_name(children(host_trace, track.uuid, "counter"))
        role = rows["role"].iloc[0]
        interval_labels = {n[len(thread) + 1:] for n in counters} & set(EXPECTED)
        assert interval_labels == ROLE_COUNTERS[role], (run_id, thread)
        for label in ROLE_COUNTERS[role]:
            c = counters[f"{thread} {label}"]
            want = [float(EXPECTED[label](r)) for _, r in rows.iterrows()]
            assert c.values == pytest.approx([*want, 0.0], rel=1e-12), (run_id, thread, label)
            starts = [origin + round((r["t"] - r["interval_s"]) * NS) for _, r in rows.iterrows()]
            assert c.times[0] == starts[0] and c.times[-1] == origin + round(rows["t"].iloc[-1] * NS)
            assert all(abs(a - b) <= 1000 for a, b in zip(c.times, starts))   # equal, but kept increasing
            checked += 1
    assert checked > 100


def test_probe_counters_are_differences_between_samples(host, host_trace):
    procs = run_processes(host_trace)
    runs = host.runs.set_index("run_id")
    probes = host.probes
    rows = probes[(probes["run_id"] == 2) & (probes["probe"] == "ringsched:sched_switch")
                  & (probes["metric"] == "oncpu_ns")]
    tids = host.threads[host.threads["run_id"] == 2].set_index("tid")["thread"]
    checked = 0
    for tid, samples in rows.groupby("tid"):
        if tid not in tids.index:
            continue
        samples = samples.sort_values("t")
        (thread,) = [t for t in children(host_trace, procs[2].uuid, "thread") if t.tid == tid]
        c = by_name(children(host_trace, thread.uuid, "counter"))[f"{tids[tid]} ringsched:sched_switch oncpu (ms)"]
        assert c.unit == "ms"
        assert c.values == pytest.approx([*(samples["value"].diff().dropna() / 1e6), 0.0])
        origin = started_ns(runs.loc[2])
        assert c.times == [origin + round(t * NS) for t in samples["t"]]
        checked += 1
    assert checked == len(tids)


def test_perf_counters_where_counted(host, host_trace):
    procs = run_processes(host_trace)
    perf = host.perf_counters
    rows = perf[(perf["run_id"] == 0) & (perf["thread"] == "rx0") & (perf["event"] == "task-clock")].sort_values("t")
    (thread,) = [t for t in children(host_trace, procs[0].uuid, "thread") if t.name == "rx0"]
    counters = by_name(children(host_trace, thread.uuid, "counter"))
    assert counters["rx0 task-clock (ms)"].values == pytest.approx([*rows["value"], 0.0])
    assert "rx0 cycles" not in counters   # not supported here (no PMU): no track


def test_softirq_per_cpu_across_all_runs(host, host_trace):
    (group,) = [t for t in host_trace.values() if t.kind == "group" and t.name == "system"]
    tracks = by_name(children(host_trace, group.uuid))
    stat = host.system[(host.system["source"] == "stat") & (host.system["metric"] == "softirq")]
    cpus = sorted(e for e in set(stat["entity"]) if e != "cpu")
    assert {f"{cpu} softirq (% CPU)" for cpu in cpus} <= set(tracks)
    want = []
    for _, rows in stat[stat["entity"] == "cpu0"].groupby("run_id"):
        rows = rows.sort_values("t")
        want += list(100 * rows["value"].diff().dropna() / rows["t"].diff().dropna())
    assert tracks["cpu0 softirq (% CPU)"].values == pytest.approx([*want, 0.0])
    assert tracks["cpu0 softirq (% CPU)"].unit == "%"


def test_timestamps_strictly_increase_on_every_track(host_trace):
    for track in host_trace.values():
        assert all(a < b for a, b in zip(track.times, track.times[1:])), track.name
    assert sum(len(t.values) for t in host_trace.values()) > 10_000


def test_lab_dataset_has_zcrx_probe_tracks_and_no_perf_tracks():
    lab = dataset.load(LAB)
    tracks = read_back(build_trace(lab).SerializeToString())
    names = [t.name for t in tracks.values() if t.kind == "counter"]
    assert any("zcrxstat:io_zcrx_recv recv (bytes)" in n for n in names)
    assert not any("task-clock" in n for n in names)
    assert len(run_processes(tracks)) == len(lab.runs)
    assert all(p.name.endswith(", timing emulated (TCG)") for p in run_processes(tracks).values())


def test_run_selection_and_unknown_run(host):
    tracks = read_back(build_trace(host, [5, 2, 5]).SerializeToString())
    assert sorted(run_processes(tracks)) == [2, 5]
    with pytest.raises(UsageError, match="unknown run id 99"):
        build_trace(host, [2, 99])


def one_run_copy(host, **changes) -> dataset.Dataset:
    """Run 0 of the host dataset alone, with ``changes`` (table -> function of the frame) applied."""
    tables = {t: f[f["run_id"] == 0].reset_index(drop=True) if "run_id" in f else f for t, f in host.tables.items()}
    for table, change in changes.items():
        tables[table] = change(tables[table].copy())
    return dataset.Dataset(tables, host.metadata_by_name, host.paths)


def test_odd_names_are_escaped_and_otherwise_kept(host):
    odd = 'rx"0\n☃ ünï\x07'
    escaped = 'rx"0\\n☃ ünï\\x07'

    def rename(frame):
        frame.loc[frame["thread"] == "rx0", "thread"] = odd
        return frame

    def topology(frame):
        frame["topology"] = 'single "q"\nnext'
        return frame

    ds = one_run_copy(host, intervals=rename, threads=rename, perf_counters=rename, runs=topology)
    tracks = read_back(build_trace(ds).SerializeToString())
    (proc,) = run_processes(tracks).values()
    assert 'single "q"\\nnext' in proc.name and "\n" not in proc.name
    thread = next(t for t in tracks.values() if t.kind == "thread" and t.name == escaped)
    assert f"{escaped} Gbit/s" in by_name(children(tracks, thread.uuid, "counter"))


def test_partial_dataset_gives_a_trace_of_what_exists(host):
    empty = {t: (lambda f, t=t: f.iloc[0:0]) for t in schema.TABLES if t != "runs"}
    tracks = read_back(build_trace(one_run_copy(host, **empty)).SerializeToString())
    assert len(run_processes(tracks)) == 1 and not [t for t in tracks.values() if t.kind == "counter"]

    def unstarted(frame):   # run 1 never got a start time: it follows run 0; runs 1 and 2 are not usable
        frame.loc[frame["run_id"] == 1, ["started_at", "status"]] = [pd.NaT, "interrupted"]
        frame.loc[frame["run_id"] == 2, "verify_errors"] = 3
        return frame

    tables = dict(host.tables, runs=unstarted(host.runs.copy()))
    procs = run_processes(read_back(build_trace(dataset.Dataset(tables)).SerializeToString()))
    (_, end0, _, _), (begin1, _, _, _) = procs[0].slices[0], procs[1].slices[0]
    assert begin1 == end0 + NS
    assert procs[1].name.endswith(" [interrupted]") and procs[1].slices[0][3]["usable"] is False
    assert procs[2].name.endswith(" [not usable: 3 verification errors]")
    assert procs[0].slices[0][3]["usable"] is True and "[" not in procs[0].name


def test_a_dataset_without_runs_is_refused_in_one_line(host):
    tables = {t: f.iloc[0:0] for t, f in host.tables.items()}
    with pytest.raises(ZcrxprofError, match="no runs") as err:
        build_trace(dataset.Dataset(tables))
    assert "\n" not in str(err.value) and not isinstance(err.value, UsageError)


def test_export_command_names_the_run():
    assert export_command("host-copy-4topo", 3) == \
        "zcrxprof export --perfetto run-3.pftrace host-copy-4topo --run 3"


def cli(*args: str) -> subprocess.CompletedProcess:
    return zcrxprof("export", *args)


def test_cli_writes_the_trace_of_the_runs_asked_for(tmp_path):
    out = tmp_path / "run-3.pftrace"
    proc = cli("--perfetto", str(out), str(HOST), "--run", "3", "--run", "7")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{out}: 2 runs, ") and len(proc.stdout.splitlines()) == 1
    assert sorted(run_processes(read_back(out.read_bytes()))) == [3, 7]


def one_line_error(proc: subprocess.CompletedProcess, code: int, words: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_bad_input_is_one_line(tmp_path):
    out = str(tmp_path / "x.pftrace")
    one_line_error(cli("--perfetto", out, str(HOST), "--run", "99"), 2, "unknown run id 99 (the dataset has runs 0-20)")
    one_line_error(cli("--perfetto", out, str(HOST), "--run", "x"), 2, "invalid int value")
    one_line_error(cli("--perfetto", out, "--pyperf", str(tmp_path / "a.json"), str(HOST)), 2, "not allowed with")
    one_line_error(cli("--pyperf", str(tmp_path / "a.json"), str(HOST), "--run", "1"), 2, "--run goes with --perfetto")
    one_line_error(cli(str(HOST)), 2, "--perfetto")
    one_line_error(cli("--perfetto", str(tmp_path / "no" / "x.pftrace"), str(HOST)), 1, "x.pftrace")
    assert not list(tmp_path.iterdir())


def test_cli_dataset_without_runs_is_one_line_exit_1(tmp_path):
    empty = tmp_path / "empty"
    shutil.copytree(HOST, empty)
    schema.empty_frame("runs").to_parquet(empty / "runs.parquet", index=False)
    one_line_error(cli("--perfetto", str(tmp_path / "x.pftrace"), str(empty)), 1, "no runs, nothing to put on a timeline")
    assert not (tmp_path / "x.pftrace").exists()


def test_the_report_gives_the_command_that_makes_a_runs_timeline():
    from zcrxprof.report import render

    html = render.build(dataset.load(LAB))
    assert "zcrxprof export --perfetto run-N.pftrace lab-nodev-4topo-kprobes --run N" in html
