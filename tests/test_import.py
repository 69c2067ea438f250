"""`zcrxprof import`: real iperf3, neper and kperf outputs (tests/fixtures/, commands in its README)
become datasets whose numbers are the tool's own, labelled as that tool and never as zero copy;
show, report and compare work on them; damaged inputs are refused in one line, exit 2."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from zcrxprof import dataset
from zcrxprof.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
IPERF3 = FIXTURES / "iperf3"
NEPER = FIXTURES / "neper"
KPERF = FIXTURES / "kperf"
SHIPPED = Path(__file__).resolve().parents[1] / "datasets" / "host-copy-4topo"


def _import(root: Path, name: str, *source: str, capsys=None) -> dataset.Dataset:
    assert main(["import", *source, "--name", name, "--root", str(root)]) == 0
    assert dataset.validate(root / name) == []
    return dataset.load(root / name)


def _received(doc: dict) -> dict:
    return doc["end"]["sum_received"]


def test_iperf3_json_and_json_stream_import_as_measured(tmp_path):
    """3.12 -J (client sending, and reverse: client receiving) and 3.22 --json-stream."""
    sending = json.loads((IPERF3 / "iperf3-3.12-P2.json").read_text())
    ds = _import(tmp_path, "p2", "--iperf3", str(IPERF3 / "iperf3-3.12-P2.json"))
    run = ds.runs.iloc[0]
    assert (run.backend, bool(run.zero_copy), run.topology, run.rings, run.connections) == ("copy", False, "single", 1, 2)
    assert run.gbit_s == pytest.approx(_received(sending)["bits_per_second"] / 1e9)
    assert run.bytes_received == _received(sending)["bytes"]
    assert run.bytes_sent == sending["end"]["sum_sent"]["bytes"]
    assert run.kernel == sending["start"]["system_info"].split()[2] and run.sender == "loopback"
    assert set(ds.intervals["role"]) == {"tx"} and set(ds.intervals["thread"]) == {"stream0", "stream1"}
    assert ds.intervals["bytes"].sum() == sum(s["bytes"] for i in sending["intervals"] for s in i["streams"])
    meta = ds.metadata
    assert meta["source"]["tool"] == "iperf3" and meta["source"]["version"] == "3.12"
    assert {"runs.verify_errors", "intervals.utime_ns", "threads table", "probes table"} <= set(meta["not_measured"])
    assert "runs.gbit_s" not in meta["not_measured"] and "intervals.bytes" not in meta["not_measured"]

    # two files: two repetitions of one configuration; reverse mode: the client's intervals receive
    ds = _import(tmp_path, "r", "--iperf3", str(IPERF3 / "iperf3-3.12-R.json"), str(IPERF3 / "iperf3-3.12-R.json"))
    assert list(ds.runs["repetition"]) == [0, 1] and set(ds.intervals["role"]) == {"rx"}
    assert len(ds.intervals) == 2 * 4

    stream = [json.loads(line) for line in (IPERF3 / "iperf3-3.22-stream-R-P2.jsonl").read_text().splitlines()]
    end = next(e["data"] for e in stream if e["event"] == "end")
    ds = _import(tmp_path, "s", "--iperf3", str(IPERF3 / "iperf3-3.22-stream-R-P2.jsonl"), "--label", "3.22 stream")
    run = ds.runs.iloc[0]
    assert run.gbit_s == pytest.approx(end["sum_received"]["bits_per_second"] / 1e9)
    # 3.22 receives with a thread per stream: two receiving threads, filed as ifq-per-ring by default
    assert (run.topology, run.rings, ds.metadata["source"]["version"]) == ("ifq-per-ring", 2, "3.22")
    assert len(ds.intervals) == 2 * sum(e["event"] == "interval" for e in stream)
    assert ds.metadata["source"]["label"] == "3.22 stream"


def test_neper_and_kperf_import_as_measured(tmp_path):
    rows = list(csv.DictReader((NEPER / "tcp_stream-F2" / "server-samples.csv").open()))
    last = {r["flow_id"]: int(r["bytes_read"]) for r in rows}        # cumulative: the last row per flow
    ds = _import(tmp_path, "n", "--neper", str(NEPER / "tcp_stream-F2"))
    run = ds.runs.iloc[0]
    assert (run.backend, bool(run.zero_copy), run.connections) == ("copy", False, 2)
    assert run.gbit_s == pytest.approx(16569161775 / 1e9)             # server.txt local_throughput
    assert run.bytes_received == sum(last.values())
    assert ds.intervals["bytes"].sum() == sum(last.values())          # the first round read nothing
    assert (ds.intervals["interval_s"] > 0).all() and len(ds.intervals) == len(rows) // 2 - 1
    thread = ds.threads.iloc[0]
    assert thread.stime_ns == round(float(rows[-1]["stime"]) * 1e9) and thread.nvcsw == int(rows[-1]["nvcsw"])
    assert run.rate_gbit_s == 0.0 and "runs.rate_gbit_s" not in ds.metadata["not_measured"]   # client.txt: no pacing

    ds = _import(tmp_path, "k", "--kperf", str(KPERF / "kperf-1conn-hdr.csv"), "--topology", "single")
    run = ds.runs.iloc[0]
    assert (run.backend, bool(run.zero_copy), run.connections, run.gbit_s) == ("copy", False, 1, 20.082)
    assert ds.intervals.empty and "intervals table" in ds.metadata["not_measured"]
    assert any("receive mode" in n for n in ds.metadata["notes"])
    ds = _import(tmp_path, "k2", "--kperf", str(KPERF / "kperf-2conn.csv"))
    assert (ds.runs.iloc[0].connections, ds.runs.iloc[0].gbit_s) == (-1, 22.082)


def test_show_report_and_compare_put_an_import_beside_zcrxprof_runs(tmp_path, capsys):
    _import(tmp_path, "ip", "--iperf3", str(IPERF3 / "iperf3-3.12-R.json"), str(IPERF3 / "iperf3-3.12-R.json"))
    capsys.readouterr()
    assert main(["show", "ip", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "backend copy (not zero-copy)" in out and "imported from iperf3 3.12" in out
    assert "note: iperf3 does not measure (left empty): runs.cpus_available, runs.rings_share_cores, " \
        "runs.elapsed_s" in out

    assert main(["compare", str(SHIPPED), str(tmp_path / "ip")]) == 0
    out = capsys.readouterr().out
    assert "warning: tool differs: A zcrxprof, B iperf3" in out
    assert "single" in out and "zero-copy)" in out and "(zero-copy)" not in out

    html = tmp_path / "ip.html"
    assert main(["report", str(tmp_path / "ip"), "-o", str(html)]) == 0
    text = html.read_text()
    assert "imported from iperf3 3.12" in text and "does not measure" in text


DAMAGED = [
    (["--iperf3", str(IPERF3 / "damaged-truncated.json")], "not iperf3 -J or --json-stream output"),
    (["--iperf3", str(IPERF3 / "damaged-truncated-stream.jsonl")], "line 2: not JSON"),
    (["--iperf3", str(IPERF3 / "damaged-wrong-keys.json")], "no 'end' object"),
    (["--iperf3", str(IPERF3)], "a directory, not a file"),
    (["--kperf", str(KPERF / "damaged-empty.csv")], "no result lines"),
    (["--kperf", str(IPERF3 / "iperf3-3.12-R.json")], "fields; kperf --out-csv lines have"),
    (["--neper", str(NEPER / "damaged-empty-samples")], "empty samples file"),
    (["--neper", str(KPERF / "kperf-1conn.csv")], "not a directory"),
    (["--neper", str(KPERF)], "no neper receiver output"),
    (["--iperf3", str(IPERF3 / "iperf3-3.12-R.json"), "--topology", "single", "--rings", "2"], "takes one ring"),
    (["--kperf", str(KPERF / "kperf-1conn.csv"), "--name", "../up"], "--name"),
]


@pytest.mark.parametrize("argv, words", DAMAGED, ids=[" ".join(Path(a).name for a in d[0]) for d in DAMAGED])
def test_damaged_input_is_one_line_and_exit_2(argv, words, tmp_path, capsys):
    name = [] if "--name" in argv else ["--name", "bad"]
    assert main(["import", *argv, *name, "--root", str(tmp_path)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and words in err[0], err
    assert not list(tmp_path.iterdir())          # nothing half-written
