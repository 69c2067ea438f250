"""--setup-nic's order and its restore, step by step, without a zcrx NIC.

zcrx-loadgen writes every operation on the NIC to a transcript (--nic-transcript FILE, one JSON line
each: op, ifname, answered_by, write, read, result). A modelled NIC (--nic-model FILE, with --preflight
only: loadgen/nic_model.h) answers those operations instead of the kernel, so the whole set-up and its
restore run here against NICs that need every fix, none, or fail part-way. The same transcript of a
real veth in a namespace shows what the kernel itself answers (it refuses the ring parameters, RSS
and ntuple, so nothing is set).
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
LOADGEN = PROJECT / "loadgen" / "zcrx-loadgen"
VETH_TRANSCRIPT = PROJECT / "tests" / "fixtures" / "nic-transcripts" / "veth-setup-nic.jsonl"

SETS = {"ETHTOOL_MSG_RINGS_SET", "ETHTOOL_SRXFHINDIR", "ETHTOOL_SFLAGS", "ETHTOOL_SRXCLSRLINS",
        "ETHTOOL_SRXCLSRLDEL"}
PORT = 9000
# a bnxt-like NIC needing every fix: split off, hds-thresh 256, the default RSS spread (over every
# queue), ntuple off, and one rule of someone else's (ssh to queue 1) that must survive
NEEDS_ALL = {"ifname": "eth2", "ifindex": 7, "driver": "bnxt_en", "rx_queues": 8, "tcp_data_split": "off",
             "hds_thresh": 256, "ntuple": False, "rules": [{"location": 3, "dst_port": 22, "queue": 1}]}


@pytest.fixture(scope="module", autouse=True)
def build():
    subprocess.run(["make", "-s", "-C", str(PROJECT / "loadgen")], check=True)


def preflight(tmp: Path, model: dict | None, queues: list[int], *extra: str, netns: str | None = None,
              ifname: str = "eth2", address: str = "192.0.2.1") -> tuple[subprocess.CompletedProcess, list, list]:
    """`--preflight --setup-nic` on queues (ifq-per-ring when several); (process, records, transcript)."""
    tmp.mkdir(parents=True, exist_ok=True)
    transcript = tmp / "transcript.jsonl"
    argv = [str(LOADGEN), "--backend", "zcrx", "--ifname", ifname, "--listen", f"{address}:{PORT}",
            "--preflight", "--json", "--nic-transcript", str(transcript), *extra]
    if len(queues) > 1:
        argv += ["--topology", "ifq-per-ring", "--rings", str(len(queues)),
                 "--queues", ",".join(map(str, queues))]
    else:
        argv += ["--queue", str(queues[0])]
    if model is not None:
        (tmp / "model.json").write_text(json.dumps(model))
        argv += ["--nic-model", str(tmp / "model.json")]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    records = [json.loads(line) for line in p.stdout.splitlines()]
    lines = [json.loads(line) for line in transcript.read_text().splitlines()] if transcript.exists() else []
    return p, records, lines


def sets(lines: list[dict]) -> list[tuple]:
    """The set operations, in order: (op, what was written, result)."""
    return [(l["op"], l.get("write"), l["result"]) for l in lines if l["op"] in SETS]


def nic_states(records: list[dict]) -> tuple[dict, dict]:
    before, after = [r for r in records if r.get("event") == "nic_state"]
    assert (before["phase"], after["phase"]) == ("before", "after")
    return before, after


def same_state(before: dict, after: dict) -> bool:
    drop = {"phase", "t", "changed"}
    return {k: v for k, v in before.items() if k not in drop} == {k: v for k, v in after.items() if k not in drop}


def snapshot_reads(lines: list[dict]) -> tuple[list, list]:
    """The reads of the `nic_state` "before" snapshot (after the identification) and of the "after" one
    (everything after the last set operation): (op, write, read, result) each."""
    key = lambda l: (l["op"], l.get("write"), l.get("read"), l["result"])
    last_set = max((i for i, l in enumerate(lines) if l["op"] in SETS), default=len(lines) - 1)
    after = [key(l) for l in lines[last_set + 1:]]
    first = next(i for i, l in enumerate(lines) if l["op"] == "ETHTOOL_MSG_RINGS_GET")
    return [key(l) for l in lines[first:first + len(after)]], after


def rss_without(queues: list[int], n: int = 8, size: int = 128) -> list[int]:
    """The table --setup-nic writes: every queue but zcrx's in turn."""
    others = [q for q in range(n) if q not in queues]
    return [others[i % len(others)] for i in range(size)]


@pytest.mark.parametrize("queues", [[7], [6, 7]], ids=["single", "ifq-per-ring"])
def test_setup_nic_applies_every_fix_in_order_and_restores_each_in_reverse(tmp_path, queues):
    p, records, lines = preflight(tmp_path, NEEDS_ALL, queues, "--setup-nic")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    rules = [(PORT + i, q, 1023 - i) for i, q in enumerate(queues)]      # ethtool's slot: the last free one
    setup = [("ETHTOOL_MSG_RINGS_SET", {"tcp_data_split": "off"}, "ok"),   # the shown value: auto or not?
             ("ETHTOOL_MSG_RINGS_SET", {"tcp_data_split": "on"}, "ok"),
             ("ETHTOOL_MSG_RINGS_SET", {"hds_thresh": 0}, "ok"),
             ("ETHTOOL_SRXFHINDIR", {"size": 128, "table": rss_without(queues)}, "ok"),
             ("ETHTOOL_SFLAGS", {"flags": 1 << 27, "ntuple": True}, "ok"),
             *[("ETHTOOL_SRXCLSRLINS", {"location": loc, "flow_type": "tcp4", "dst_port": port, "queue": q}, "ok")
               for port, q, loc in rules]]
    restore = [*[("ETHTOOL_SRXCLSRLDEL", {"location": loc}, "ok") for _, _, loc in reversed(rules)],
               ("ETHTOOL_SFLAGS", {"flags": 0, "ntuple": False}, "ok"),
               ("ETHTOOL_SRXFHINDIR", {"size": 0}, "ok"),            # it was the default spread: reset
               ("ETHTOOL_MSG_RINGS_SET", {"hds_thresh": 256}, "ok"),
               ("ETHTOOL_MSG_RINGS_SET", {"tcp_data_split": "off"}, "ok")]
    assert sets(lines) == setup + restore
    # each restore undoes one change, in the reverse order of the changes
    kind = lambda op, w: "rule" if "CLSRL" in op else "rss" if "FHINDIR" in op else "ntuple" if "FLAGS" in op \
        else "hds" if "hds_thresh" in w else "split"
    changes = [kind(op, w) for op, w, _ in setup[1:]]
    assert [kind(op, w) for op, w, _ in restore] == changes[::-1]
    # every value back: the reads after the restore are the reads before the set-up, the other rule kept
    before_reads, after_reads = snapshot_reads(lines)
    assert after_reads == before_reads and len(after_reads) >= 7
    assert ("ETHTOOL_GRXCLSRULE", {"location": 3}, {"location": 3, "flow_type": "tcp4", "dst_port": 22,
                                                     "queue": 1}, "ok") in after_reads
    before, after = nic_states(records)
    assert same_state(before, after) and before["queues"] == queues and before["rss_entries_on_queue"] == 16 * len(queues)
    assert after["changed"] == ["tcp-data-split", "hds-thresh", "rss", "ntuple", "rule"]
    # nothing measured, and every record and every transcript line says the NIC is modelled
    assert [r["status"] for r in records if r.get("event") == "preflight"] == ["modelled"]
    assert not [r for r in records if r["type"] in ("interval", "summary", "registration")]
    assert all(r["nic_model"].endswith("model.json") for r in records)
    assert {l["answered_by"] for l in lines} == {"model"} and [l["seq"] for l in lines] == list(range(1, len(lines) + 1))


def test_a_nic_already_right_gets_no_set_operation(tmp_path):
    """tcp-data-split on, hds-thresh 0, RSS off queue 7, ntuple on and the very rule steering the port
    to it: nothing is changed and so nothing restored. The one write --setup-nic makes is the shown
    tcp-data-split written back, which the device reports as no change (only its change notification
    tells an explicit "on" from the driver's automatic one); without --setup-nic nothing is written."""
    right = {**NEEDS_ALL, "tcp_data_split": "on", "hds_thresh": 0, "ntuple": True, "rss": rss_without([7]),
             "rules": [{"location": 5, "dst_port": PORT, "queue": 7}]}
    for extra, written in [(("--setup-nic",), [("ETHTOOL_MSG_RINGS_SET", {"tcp_data_split": "on"}, "ok")]),
                           ((), [])]:
        p, records, lines = preflight(tmp_path / str(len(extra)), right, [7], *extra)
        assert p.returncode == 0 and p.stderr == "", p.stderr
        assert sets(lines) == written, sets(lines)
        assert not [l for l in lines if l.get("notified")]
        before, after = nic_states(records)
        assert same_state(before, after) and after["changed"] == [] and before["ntuple_rules_to_queue"] == 1
    # the shown "on" that is the driver's automatic choice: the kernel notifies the explicit "on",
    # so the restore puts "auto" back (and nothing else was touched)
    p, records, lines = preflight(tmp_path / "auto", {**right, "tcp_data_split": "auto"}, [7], "--setup-nic")
    assert p.returncode == 0, p.stderr
    assert sets(lines) == [("ETHTOOL_MSG_RINGS_SET", {"tcp_data_split": "on"}, "ok"),
                           ("ETHTOOL_MSG_RINGS_SET", {"tcp_data_split": "auto"}, "ok")]
    assert [l["notified"] for l in lines if l["op"] == "ETHTOOL_MSG_RINGS_SET"] == [True, True]
    assert nic_states(records)[1]["changed"] == ["tcp-data-split"]


def test_a_step_failing_midway_undoes_the_steps_before_it_in_reverse(tmp_path):
    failing = {**NEEDS_ALL, "fail": [{"op": "ETHTOOL_SRXFHINDIR", "errno": "EOPNOTSUPP"}]}
    p, records, lines = preflight(tmp_path / "rss", failing, [7], "--setup-nic")
    assert p.returncode == 1
    err = p.stderr.strip().splitlines()
    assert err == ["zcrx-loadgen: error: --setup-nic: eth2 (bnxt_en): moving RSS off queue 7 failed: "
                   "ETHTOOL_SRXFHINDIR failed: EOPNOTSUPP (Operation not supported) "
                   f"[NIC modelled by {tmp_path / 'rss' / 'model.json'}]"], err
    assert [(op, w) for op, w, _ in sets(lines)] == [
        ("ETHTOOL_MSG_RINGS_SET", {"tcp_data_split": "off"}),
        ("ETHTOOL_MSG_RINGS_SET", {"tcp_data_split": "on"}),
        ("ETHTOOL_MSG_RINGS_SET", {"hds_thresh": 0}),
        ("ETHTOOL_SRXFHINDIR", {"size": 128, "table": rss_without([7])}),      # refused: nothing to undo
        ("ETHTOOL_MSG_RINGS_SET", {"hds_thresh": 256}),
        ("ETHTOOL_MSG_RINGS_SET", {"tcp_data_split": "off"})]
    assert [r for _, _, r in sets(lines)] == ["ok", "ok", "ok", "EOPNOTSUPP", "ok", "ok"]
    before, after = nic_states(records)
    assert same_state(before, after) and after["changed"] == ["tcp-data-split", "hds-thresh"]
    assert [r["errno"] for r in records if r["type"] == "error"] == ["EOPNOTSUPP"]
    assert all("nic_model" in r for r in records)
    # a restore step the device refuses for a moment (the kernel releasing the queue) is retried
    busy = {**NEEDS_ALL, "fail": [{"op": "ETHTOOL_SRXCLSRLDEL", "errno": "EBUSY", "times": 2}]}
    p, records, lines = preflight(tmp_path / "busy", busy, [7], "--setup-nic")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert [r for op, _, r in sets(lines) if op == "ETHTOOL_SRXCLSRLDEL"] == ["EBUSY", "EBUSY", "ok"]
    assert same_state(*nic_states(records))


def test_a_modelled_nic_never_measures_and_a_bad_model_is_one_line(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps(NEEDS_ALL))
    base = [str(LOADGEN), "--backend", "zcrx", "--ifname", "eth2", "--queue", "7", "--nic-model",
            str(tmp_path / "m.json")]
    for argv, words in [
            (base + ["--listen", f"192.0.2.1:{PORT}", "--duration", "1"], "--preflight only"),
            (base + ["--duration", "1"], "--preflight only"),
            ([str(LOADGEN), "--nic-model", str(tmp_path / "m.json"), "--preflight", "--listen", "192.0.2.1:1"],
             "--backend zcrx")]:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        assert p.returncode == 2 and len(p.stderr.splitlines()) == 1 and words in p.stderr, (argv, p.stderr)
    (tmp_path / "m.json").write_text(json.dumps({**NEEDS_ALL, "rx_queue": 8}))
    p = subprocess.run(base + ["--listen", f"192.0.2.1:{PORT}", "--preflight"], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1 and 'unknown key "rx_queue"' in p.stderr


def test_the_kernel_transcript_of_a_veth(tmp_path, veth_netns):
    """The real kernel's answers: veth has no ring parameters, no RSS table, no ntuple rules, so
    --setup-nic reads, sets nothing, and the registration is refused; the operations and their results
    are those recorded in tests/fixtures/nic-transcripts/ (the values read are this kernel's)."""
    p, records, lines = preflight(tmp_path, None, [0], "--setup-nic", netns=veth_netns, ifname="zv0",
                                  address="127.0.0.1")
    assert p.returncode == 1 and "zv0 (veth) queue 0 cannot host zcrx" in p.stderr
    assert {l["answered_by"] for l in lines} == {"kernel"} and sets(lines) == []
    assert not [r for r in records if "nic_model" in r]
    recorded = [json.loads(line) for line in VETH_TRANSCRIPT.read_text().splitlines()]
    assert [(l["op"], l["result"]) for l in lines] == [(l["op"], l["result"]) for l in recorded]
    assert lines[1]["read"] == {"driver": "veth"}
    assert ("io_uring_register(ZCRX_IFQ)", "EOPNOTSUPP") in [(l["op"], l["result"]) for l in lines]
