"""Probe tools in the kernel lab guest (Debian kernel >= 7.1 under QEMU): everything attaches, and
zcrxstat's counts equal what zcrx-loadgen --backend zcrx-nodev reports.

In the lab guest boot the lab tests share (tests/lab_guest.py; a BCC compile takes 6-30 s under
TCG): the guest attaches all four tools through the API and runs the load generator with their
targets set before it starts.
The commands themselves are tested on the host (same code). Figures from the guest are emulated
(TCG): counts, not speed.
"""
from __future__ import annotations

import json

import pytest

from zcrxprof import lab

pytestmark = [pytest.mark.lab, pytest.mark.root]


@pytest.fixture(scope="module")
def guest(lab_guest):
    """The probes part of the shared lab guest boot (tests/lab_guest.py: PROBES)."""
    part = lab_guest.part("probes")
    res = lab_guest.result
    rc = int((part / "rc").read_text())
    assert rc == 0, (rc, (part / "err").read_text()[-2000:])
    data = json.loads((part / "out").read_text().strip().splitlines()[-1])
    data["accelerator"], data["kernel"] = res.accelerator, res.kernel
    print(f"\nguest {res.kernel} ({res.accelerator}): compile s per tool "
          + ", ".join(f"{k} {v:.1f}" for k, v in data["compile_s"].items()))
    return data


def _val(rows, tid, metric):
    return sum(r["value"] for r in rows if r["tid"] == tid and r["metric"] == metric)


def test_everything_attaches_in_the_guest_with_its_own_headers(guest, lab_kernel):
    assert guest["headers"]["path"] == str(lab.headers_dir(lab_kernel.version))   # BCC compiled against them
    assert guest["place"] == {"where": "lab", "kernel": guest["kernel"],
                              "emulated_timing": guest["accelerator"] == "tcg"}
    assert guest["headers"]["matches"] and guest["kernel"] in guest["headers"]["label"]
    for name, report in guest["report"].items():
        for r in report:
            assert r["status"] == "attached", r
    methods = {r["target"]: r["method"] for r in guest["report"]["zcrxstat"]}
    assert methods["io_zcrx_queue_cqe"] in ("fentry", "kprobe")
    assert methods["io_zcrx_recv"] in ("fexit", "kretprobe")


def test_ladder_falls_back_to_a_kprobe_on_the_clone_when_btf_lacks_the_function(guest):
    flush = next(r for r in guest["report"]["zcrxstat"] if r["target"] == "zcrx_flush_rq")
    facts = guest["flush_rq"]
    assert facts["symbols"] and not any(".cold" in s or ".part" in s for s in facts["symbols"])
    if facts["btf"]:
        assert flush["method"] == "fentry" and flush["symbol"] == "zcrx_flush_rq"
    else:   # Debian 7.x: only zcrx_flush_rq.isra.0 exists
        assert flush["method"] == "kprobe" and flush["symbol"] == ",".join(facts["symbols"])
        assert "not in vmlinux BTF" in flush["reason"]


def _summary(guest):
    assert guest["loadgen_status"] == 0, guest["loadgen"]
    summary = [l for l in guest["loadgen"] if l["type"] == "summary"][-1]
    assert summary["backend"] == "zcrx-nodev" and summary["status"] == "ok"
    return summary


def test_zcrxstat_cqes_and_bytes_equal_the_load_generators(guest):
    summary = _summary(guest)
    rx = [t for t in summary["threads"] if t["role"] == "rx"]
    rows = guest["rows"]["zcrxstat"]
    for t in rx:
        assert t["completions"] > 0
        assert _val(rows, t["tid"], "cqes") == t["completions"]      # one io_zcrx_queue_cqe per data CQE
        assert _val(rows, t["tid"], "cqe_bytes") == t["bytes"]
    assert sum(t["bytes"] for t in rx) == summary["bytes_received"]
    # NODEV is all copy path: every byte went through io_zcrx_copy_chunk, no page pool refill ran
    total = lambda m: sum(r["value"] for r in rows if r["metric"] == m)
    assert total("copy_bytes") == summary["bytes_received"]
    stats = [l for l in guest["loadgen"] if l["type"] == "event" and l.get("event") == "stats"]
    if stats:   # 7.2+ zcrx_stats: the kernel's own copy counters, read by the load generator as it
        # ends, may trail the copies the probe saw return by what was in flight (seen: 5,633 of 5,634)
        kernel = stats[-1]
        assert 0.999 * total("copy_chunks") <= kernel["count"] <= total("copy_chunks"), kernel
        assert 0.999 * total("copy_bytes") <= kernel["bytes"] <= total("copy_bytes"), kernel
    assert total("refill_calls") == 0
    # every io_zcrx_recv call that returned bytes is in the bytes-per-call histogram
    hist = sum(h["count"] for h in guest["hist"]["zcrxstat"] if h["metric"] == "recv_bytes")
    assert hist == total("recv_calls") - total("recv_nodata") > 0


def test_uringwork_sees_the_zcrx_registration_and_flushes(guest):
    summary = _summary(guest)
    regs = guest["registrations"]
    ifqs = [l for l in guest["loadgen"] if l["type"] == "registration"]
    assert sum(r["count"] for r in regs if r["opcode"] == 32 and r["ret"] == 0) == len(ifqs) >= 1
    ctrl = sum(r["count"] for r in regs if r["opcode"] == 36 and r["ret"] == 0)   # flush, arm event
    flushes = sum(r["value"] for r in guest["rows"]["zcrxstat"] if r["metric"] == "flushes")
    assert 0 < flushes <= ctrl
    rx = {t["tid"] for t in summary["threads"] if t["role"] == "rx"}
    assert sum(r["value"] for r in guest["rows"]["uringwork"] if r["tid"] in rx and r["metric"] == "local_runs") > 0


def test_ringsched_counts_at_least_the_switches_proc_reported(guest):
    summary = _summary(guest)
    rows = guest["rows"]["ringsched"]
    for t in summary["threads"]:
        got = _val(rows, t["tid"], "switch_voluntary") + _val(rows, t["tid"], "switch_preempted")
        assert got >= t["nvcsw"] + t["nivcsw"], t["thread"]
        assert _val(rows, t["tid"], "switch_voluntary") >= t["nvcsw"]


def test_pagepool_runs_in_the_guest(guest):
    rows = guest["rows"]["pagepool"]
    polls = sum(r["value"] for r in rows if r["metric"] == "polls")   # loopback backlog NAPI
    assert polls > 0
    assert sum(h["count"] for h in guest["hist"]["pagepool"]) == polls
