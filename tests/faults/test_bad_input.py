"""Bad input, tried systematically: every flag of every `zcrxprof` subcommand (found by walking
``zcrxprof.cli.build_parser()``, so new flags are covered without touching this file) and of
`zcrx-loadgen` (found in its --help) with wrong types, ranges and combinations. Each must be
answered with one line on stderr and a non-zero exit; a traceback or a crash fails the test.

`zcrxprof` runs in-process (``cli.main``) with the expensive ends replaced by a sentinel —
``record.Progress`` (the host recording starts there, after its last check), ``lab.boot._boot_once`` (booting the guest) and the
Debian archive (``lab.debarchive``: a fixed kernel list, no download) — so a value that passes validation is
seen as *accepted* without recording, booting or downloading anything. Everything in front of them
(parsing, list checks, backend/kernel checks, lab kernel lookup) runs for real. The report's HTML is
a stub page (``report.render.build``): the values under test decide where it is written, not what
it says (test_report.py covers that).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zcrxprof import cli, netns
from tally import count, has_traceback

ROOT = Path(__file__).resolve().parents[2]
LOADGEN = ROOT / "loadgen" / "zcrx-loadgen"
ARCHIVE_KERNEL = "9.9.1+deb99-amd64"     # the one kernel the stubbed archive offers (never prepared)


class Accepted(Exception):
    """The command got past validation to the point where it would start measuring."""


# values every option of that kind must refuse ("certain"), and values it may refuse ("maybe")
BAD = {
    int: (["x", "1.5", "", "0x10", "-1", "99999999999999999999999", "--"], ["0", "2147483648"]),
    float: (["x", "", "1,5", "-1", "nan", "inf", "-inf", "1e999", "--"], ["0", "1e-9", "1e9"]),
    "LIST": (["", ",", "nan", "inf", "-1", "x", "1,,-2", "1e999", "--"], ["0", "1, 2", "1,1"]),
    "choice": (["", "bogus", "ALL", "--"], []),
    str: ([], ["", "-1", "nan", "x" * 300, "../../x", "/nonexistent/dir/x", "a b", "é", ",", "\t"]),
}


def walk(parser: argparse.ArgumentParser, path: list[str]):
    """Every (subcommand path, parser) below ``parser``."""
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield from walk(sub, path + [name])
    if path:
        yield path, parser


def kind(a: argparse.Action):
    """int | float | "choice" | "LIST" | str: which bad values apply to an option."""
    if a.choices:
        return "choice"
    if a.type in (int, float):
        return a.type
    if a.metavar == "LIST":
        return "LIST"
    return str


@pytest.fixture
def sandbox(monkeypatch, tmp_path, small_dataset):
    """Stubs for the expensive ends, a scratch directory as working directory and datasets root."""
    from zcrxprof.collect import record
    from zcrxprof.lab import boot, debarchive
    from zcrxprof.report import render

    def accepted(*a, **kw):
        raise Accepted
    monkeypatch.setattr(record, "Progress", accepted)     # record() has checked everything by then
    # reaping dead recordings' namespaces is not this test's business, and it runs beside the
    # system tests (scripts/test.sh): the kill -9 tests expect their next record to do the reaping
    monkeypatch.setattr(netns, "remove_stale", lambda: [])
    monkeypatch.setattr(boot, "_boot_once", accepted)
    monkeypatch.setattr(render, "build", lambda ds: "<!doctype html><title>stub</title>\n")
    # `lab prepare` asks Debian's archive which kernels exist: answer from a fixed list, never download
    monkeypatch.setattr(debarchive, "update", lambda *a, **kw: None)
    monkeypatch.setattr(debarchive, "search", lambda pattern: [f"linux-binary-{ARCHIVE_KERNEL}"])
    monkeypatch.setattr(debarchive, "download", accepted)
    monkeypatch.setenv("ZCRXPROF_DATASETS", str(tmp_path / "datasets"))
    monkeypatch.delenv("ZCRXPROF_LAB", raising=False)
    monkeypatch.chdir(tmp_path)
    return small_dataset


def attempt(argv: list[str], capsys) -> tuple[int | None, list[str]]:
    """Run ``zcrxprof ARGV`` in-process: (exit status or None if accepted, stderr lines)."""
    capsys.readouterr()
    try:
        rc = cli.main(argv)
    except Accepted:
        rc = None
    except SystemExit as exc:          # argparse --help/--version only; nothing here asks for them
        rc = exc.code if isinstance(exc.code, int) else 1
    err = capsys.readouterr().err
    assert not has_traceback(err), err
    return rc, [l for l in err.splitlines() if l.strip()]


def placeholders(path: list[str], parser: argparse.ArgumentParser, dataset: Path) -> list[str]:
    """Valid values for the required arguments of a subcommand (so the option under test decides)."""
    out: list[str] = []
    for a in parser._actions:
        if a.option_strings and a.required:
            out += [a.option_strings[0], str(dataset.parent / "out.json")]
    for a in parser._actions:
        if not a.option_strings and a.nargs != argparse.PARSER and not isinstance(a, argparse._SubParsersAction):
            out += ["--", "true"] if a.nargs == argparse.REMAINDER else [str(dataset)]
    return out


def cases(dataset: Path):
    """(argv, certain) for every option of every subcommand: missing values, wrong types, ranges."""
    for path, parser in walk(cli.build_parser(), []):
        tail = placeholders(path, parser, dataset)
        for a in parser._actions:
            if not a.option_strings or isinstance(a, (argparse._HelpAction, argparse._VersionAction)):
                continue
            flag = next(o for o in a.option_strings if o.startswith("--"))
            if a.nargs == 0:
                yield path + [f"{flag}=yes"] + tail, True           # a switch given a value
                continue
            if "--" in tail:                                         # value missing
                yield path + [flag] + tail, True
            else:
                yield path + tail + [flag], True
            certain, maybe = BAD[kind(a)]
            for v in certain:
                yield path + [f"{flag}={v}"] + tail, True
            for v in maybe:
                yield path + [f"{flag}={v}"] + tail, False
        yield path + ["--no-such-flag"] + tail, True
        if "--" not in tail:                                         # after `--` it is the command's
            yield path + tail + ["--no-such-flag=1"], True


def test_every_flag_of_every_subcommand_refuses_bad_values(sandbox, capsys):
    accepted_bad, wrong, n = [], [], 0
    for argv, certain in cases(sandbox):
        rc, lines = attempt(argv, capsys)
        n += 1
        if rc is None:
            if certain:
                accepted_bad.append(argv)
            continue
        if rc == 0 and certain:
            accepted_bad.append(argv)
        elif rc != 0 and len(lines) != 1:
            wrong.append((argv, rc, lines))
    count("bad inputs tried: zcrxprof flags", n)
    assert n > 150
    from zcrxprof import lab
    assert not list(lab.lab_dir().glob(".*.tmp")), "a refused `lab prepare` left a half-made kernel tree"
    assert not accepted_bad, f"accepted: {accepted_bad}"
    assert not wrong, f"not one line: {wrong}"


COMBINATIONS = [
    (["record", "--ifname", "eth0"], 2, "--queue"),
    (["record", "--queue", "0"], 2, "--ifname"),
    (["record", "--backend", "zcrx"], 2, "remote sender"),
    (["record", "--backend", "zcrx", "--ifname", "lo", "--queues", "1", "--topology", "ifq-per-ring", "--rings", "2",
      "--peer", "h"], 2, "--queues gives 1"),
    (["record", "--backend", "zcrx", "--ifname", "lo", "--queue", "0", "--queues", "1,2", "--topology", "single",
      "--peer", "h"], 2, "no ifq-per-ring"),
    (["record", "--queues", "1,2"], 2, "--queue"),
    (["record", "--ifname", "eth0"], 2, "--queue"),
    (["record", "--backend", "zcrx", "--ifname", "lo", "--queue", "0"], 2, "--peer HOST"),
    (["record", "--backend", "copy", "--setup-nic"], 2, "--backend zcrx"),
    (["record", "--duration", "0"], 2, "--duration"),
    (["record", "--probes", "everything"], 2, "--probes"),
    (["record", "--backend", "copy", "--port", "5"], 2, "--backend zcrx"),
    (["record", "--backend", "copy", "--ifname", "eth0", "--queue", "0"], 2, "--backend zcrx"),
    (["record", "--backend", "zcrx-nodev"], 2, "7.1"),
    (["record", "--topology", "single,single,bogus"], 2, "--topology"),
    (["record", "--probes", "all,none"], 2, "--probes"),
    (["record", "--rings", "2", "--rings", "0"], 2, "--rings"),
    (["record", "--name", "../escape"], 2, "--name"),
    (["record", "--name", ".hidden"], 2, "--name"),
    (["record", "--kernel", "0.0.1-no-such-kernel"], 1, "not prepared"),
    (["record", "--kernel", "0.0.1-no-such-kernel", "--backend", "copy", "--ifname", "x"], 2, "--queue"),
    (["lab", "run", "--kernel", "0.0.1-no-such-kernel", "--", "true"], 1, "not prepared"),
    (["lab", "run", "--rwdir", "/nonexistent/dir", "--", "true"], None, "rwdir"),
    (["lab", "run", "--memory", "lots", "--", "true"], 2, "--memory"),
    (["lab", "run"], 2, "command"),
    (["show", "no-such-dataset"], 2, "no dataset"),
    (["report", "no-such-dataset"], 2, "no dataset"),
    (["export", "--pyperf", "x.json", "no-such-dataset"], 2, "no dataset"),
    (["export", "--perfetto", "x.pftrace", "no-such-dataset"], 2, "no dataset"),
    (["export", "--perfetto", "x.pftrace", "--pyperf", "x.json", "no-such-dataset"], 2, "not allowed"),
    (["ls", "--root", "/nonexistent/dir"], None, None),
]


@pytest.mark.parametrize("argv, code, words", COMBINATIONS, ids=[" ".join(c[0]) for c in COMBINATIONS])
def test_bad_combinations_are_one_line(argv, code, words, sandbox, capsys, tmp_path):
    rc, lines = attempt(argv, capsys)
    count("bad inputs tried: combinations")
    if code is None and rc == 0:        # allowed to succeed (e.g. ls of an empty place), but cleanly
        return
    assert rc is not None, f"accepted: {argv}"
    assert rc == code if code is not None else rc != 0, (rc, lines)
    assert len(lines) == 1, lines
    assert words is None or words in lines[0], lines
    assert not any((tmp_path / "datasets").glob("*")), "a refused command wrote a dataset"


def test_record_inside_the_lab_refuses_another_kernel(sandbox, capsys, monkeypatch):
    monkeypatch.setenv("ZCRXPROF_LAB", "7.2.13+deb14-amd64")
    rc, lines = attempt(["record", "--kernel", "7.2.13+deb14-amd64"], capsys)
    count("bad inputs tried: combinations")
    assert rc == 2 and len(lines) == 1 and "already inside" in lines[0], lines


# ---- a lab kernel that is prepared but unusable ------------------------------------------------
# Made in the lab's own layout (lab.lab_dir()/<version>/ready.json, usr/lib/modules/<version>/{vmlinuz,
# config}) under a scratch directory: lab.catalogue.RUNS_DIR is the one place lab.lab_dir() derives from.

NEW_KERNEL = "7.9.1+deb99-amd64"        # fake versions, never in Debian's archive
OLD_KERNEL = "6.1.0-99-amd64"           # has no zcrx at all (NODEV needs 7.1)
ZCRX_CONFIG = "CONFIG_IO_URING=y\nCONFIG_IO_URING_ZCRX=y\nCONFIG_KPROBES=y\n"


def bzimage() -> bytes:
    """The start of an x86 kernel image: boot sector signature and the "HdrS" setup header, padded."""
    img = bytearray(64 * 1024)
    img[0:2], img[0x1FE:0x200], img[0x202:0x206] = b"MZ", b"\x55\xaa", b"HdrS"
    return bytes(img)


@pytest.fixture
def fake_lab(sandbox, monkeypatch, tmp_path):
    """make(version, vmlinuz=bytes | None, config=str, ready=str | None): a prepared kernel in a
    scratch lab directory (ready=None: the ready.json `lab prepare` writes)."""
    from zcrxprof import lab
    from zcrxprof.collect import guest
    from zcrxprof.lab import catalogue
    monkeypatch.setattr(catalogue, "RUNS_DIR", tmp_path / "lab")
    monkeypatch.setattr(guest, "SPOOL_ROOT", tmp_path / "lab-spool")

    def make(version: str, vmlinuz: bytes | None = None, config: str = ZCRX_CONFIG, ready: str | None = None):
        moddir = lab.lab_dir() / version / "usr" / "lib" / "modules" / version
        moddir.mkdir(parents=True)
        if vmlinuz is not None:
            (moddir / "vmlinuz").write_bytes(vmlinuz)
        (moddir / "config").write_text(config)
        (moddir.parents[3] / "ready.json").write_text(
            ready if ready is not None else json.dumps({"version": version, "packages": {}}))
    return make


def lab_commands(version: str) -> list[list[str]]:
    return [["lab", "run", "--kernel", version, "--", "true"], ["record", "--kernel", version]]


def test_a_prepared_fake_kernel_is_used(fake_lab, capsys):
    """The control for the unusable kernels below: made the same way but whole, it gets to the boot."""
    fake_lab(NEW_KERNEL, vmlinuz=bzimage())
    for argv in lab_commands(NEW_KERNEL):
        rc, lines = attempt(argv, capsys)
        assert rc is None, (argv, rc, lines)          # accepted: it would boot now
    capsys.readouterr()
    assert cli.main(["lab", "status"]) == 0
    assert NEW_KERNEL in capsys.readouterr().out


UNUSABLE = {   # what: (how the kernel is made, the file the refusal names)
    "vmlinuz missing": (dict(vmlinuz=None), "vmlinuz"),
    "vmlinuz empty": (dict(vmlinuz=b""), "vmlinuz"),
    "vmlinuz garbage": (dict(vmlinuz=b"not a kernel image\n" * 100), "vmlinuz"),
    "ready.json not JSON": (dict(vmlinuz=bzimage(), ready="{half written"), "ready.json"),
    "ready.json a list": (dict(vmlinuz=bzimage(), ready="[1, 2]"), "ready.json"),
    "ready.json without version": (dict(vmlinuz=bzimage(), ready='{"packages": {}}'), "ready.json"),
}


@pytest.mark.parametrize("what", list(UNUSABLE))
def test_an_unusable_prepared_kernel_is_refused_in_one_line(what, fake_lab, capsys):
    """Refused before booting (and, for record, before it says it boots), naming the file and the fix;
    `lab status` lists the kernel as damaged with the same reason."""
    made, file = UNUSABLE[what]
    fake_lab(NEW_KERNEL, **made)
    fix = f"zcrxprof lab prepare --kernel {NEW_KERNEL}"
    for argv in lab_commands(NEW_KERNEL) + [["record", "--kernel", NEW_KERNEL, "--backend", "copy"]]:
        rc, lines = attempt(argv, capsys)
        count("bad inputs tried: unusable lab kernels")
        assert rc is not None, f"accepted (would boot): {argv}"
        assert rc == 1 and len(lines) == 1 and NEW_KERNEL in lines[0], (argv, rc, lines)
        assert file in lines[0] and fix in lines[0], lines
    rc, lines = attempt(["lab", "run", "--", "true"], capsys)      # the default kernel: the only one is damaged
    assert rc == 1 and len(lines) == 1 and file in lines[0] and fix in lines[0], (rc, lines)
    capsys.readouterr()
    assert cli.main(["lab", "status"]) == 0
    out = capsys.readouterr().out
    listed = [l for l in out.splitlines() if NEW_KERNEL in l]
    assert len(listed) == 1 and "DAMAGED" in listed[0] and file in listed[0], out
    assert cli.main(["lab", "status", "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["kernels"] == [] and [d["version"] for d in st["damaged"]] == [NEW_KERNEL]


@pytest.mark.parametrize("what", ["ready.json not JSON", "vmlinuz garbage"])
def test_prepare_replaces_a_damaged_kernel(what, fake_lab, monkeypatch, capsys):
    """`lab prepare` (with --quiet-if-ready too) takes a damaged kernel for not prepared and goes on
    to download it again (the stubbed download stops it there), instead of crashing or keeping it."""
    from zcrxprof.lab import debarchive
    monkeypatch.setattr(debarchive, "search", lambda pattern: [f"linux-binary-{NEW_KERNEL}"])
    monkeypatch.setattr(debarchive, "versions", lambda package: ["1"])
    fake_lab(NEW_KERNEL, **UNUSABLE[what][0])
    for argv in (["lab", "prepare", "--quiet-if-ready"], ["lab", "prepare", "--kernel", NEW_KERNEL],
                 ["lab", "prepare", "--kernel", NEW_KERNEL, "--quiet-if-ready"]):
        rc, lines = attempt(argv, capsys)
        assert rc is None, (argv, rc, lines)          # accepted: it was downloading the kernel again


def test_record_refuses_a_lab_kernel_too_old_for_zcrx_nodev(fake_lab, capsys):
    """Refused in one line, before `record: booting the kernel lab` (rc 2: the combination is wrong)."""
    fake_lab(OLD_KERNEL, vmlinuz=bzimage(), config="CONFIG_IO_URING=y\n")
    for argv in (["record", "--kernel", OLD_KERNEL], ["record", "--kernel", OLD_KERNEL, "--backend", "zcrx-nodev"]):
        rc, lines = attempt(argv, capsys)
        count("bad inputs tried: unusable lab kernels")
        assert rc == 2 and len(lines) == 1 and "7.1" in lines[0] and OLD_KERNEL in lines[0], (argv, rc, lines)


def test_record_refuses_a_new_lab_kernel_without_zcrx_for_zcrx_nodev(fake_lab, capsys):
    fake_lab(NEW_KERNEL, vmlinuz=bzimage(), config="CONFIG_IO_URING=y\n# CONFIG_IO_URING_ZCRX is not set\n")
    rc, lines = attempt(["record", "--kernel", NEW_KERNEL], capsys)
    count("bad inputs tried: unusable lab kernels")
    assert rc == 2 and len(lines) == 1 and "CONFIG_IO_URING_ZCRX" in lines[0], (rc, lines)


def test_an_old_lab_kernel_still_runs_what_it_can(fake_lab, capsys):
    """The control for the refusal above: the copy backend and `lab run` need no zcrx."""
    fake_lab(OLD_KERNEL, vmlinuz=bzimage(), config="CONFIG_IO_URING=y\n")
    for argv in (["record", "--kernel", OLD_KERNEL, "--backend", "copy"], lab_commands(OLD_KERNEL)[0]):
        rc, lines = attempt(argv, capsys)
        assert rc is None, (argv, rc, lines)


list_text = st.text(alphabet=st.sampled_from(list("0123456789,.-+eEinfaNx _/")), max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flag=st.sampled_from(["--rings", "--work-ns-per-kib", "--rate", "--topology", "--probes",
                             "--duration", "--repeat", "--interval", "--perf-interval", "--queue"]),
       value=list_text)
def test_record_values_never_crash(flag, value, sandbox, capsys):
    """Any value of a record option: accepted, or refused with one line — never a traceback."""
    rc, lines = attempt(["record", f"{flag}={value}"], capsys)
    count("bad inputs tried: hypothesis record values")
    if rc is not None and rc != 0:
        assert len(lines) == 1, lines


def test_record_refuses_non_finite_and_negative_list_values(sandbox, capsys):
    """A run cannot last NaN seconds or be offered infinite load: every such value is refused."""
    for flag in ("--rate", "--work-ns-per-kib", "--rings"):
        for v in ("nan", "inf", "-inf", "-1", "1e999"):
            rc, lines = attempt(["record", f"{flag}={v}"], capsys)
            count("bad inputs tried: non-finite values")
            assert rc == 2 and len(lines) == 1 and flag in lines[0], (flag, v, rc, lines)


# ---- zcrx-loadgen -------------------------------------------------------------------------------

def loadgen_options() -> list[tuple[str, str | None]]:
    """(flag, metavar or None) from `zcrx-loadgen --help`."""
    text = subprocess.run([str(LOADGEN), "--help"], capture_output=True, text=True, timeout=10).stdout
    opts = {}
    for m in re.finditer(r"^\s+(--[a-z][a-z0-9-]*)(?: ([A-Z][A-Z:]*))?", text, re.M):
        opts.setdefault(m.group(1), m.group(2))
    return sorted(opts.items())


LOADGEN_BAD = ["", "x", "-1", "nan", "1e999", "99999999999999999999", "1,,2", "0x", "1.5.5", "-"]


def run_loadgen(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(LOADGEN), *argv], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)


def test_loadgen_refuses_bad_values_of_every_flag():
    opts = loadgen_options()
    assert len(opts) > 15, opts
    crashed, accepted, wrong, n = [], [], [], 0
    for flag, metavar in opts:
        if flag in ("--help", "--json", "--verify", "--no-verify", "--setup-nic"):
            continue
        values = LOADGEN_BAD if metavar else ["=1"]
        for v in values:
            argv = ["--duration", "0.2", "--json", f"{flag}{v}" if metavar is None else flag, *([v] if metavar else [])]
            p = run_loadgen(argv)
            n += 1
            if p.returncode < 0:
                crashed.append((argv, p.returncode))
            elif p.returncode == 0:
                accepted.append(argv)
            elif len([l for l in p.stderr.splitlines() if l.strip()]) != 1:
                wrong.append((argv, p.returncode, p.stderr[-300:]))
        p = run_loadgen(["--json", flag])                 # value missing at the end
        n += 1
        if metavar and (p.returncode != 2 or len(p.stderr.strip().splitlines()) != 1):
            wrong.append(([flag], p.returncode, p.stderr[-300:]))
    count("bad inputs tried: zcrx-loadgen flags", n)
    assert not crashed, crashed
    assert not accepted, accepted
    assert not wrong, wrong


@pytest.mark.parametrize("argv, words", [
    (["--listen", "127.0.0.1:0", "--connect", "127.0.0.1:1"], "--listen"),
    (["--backend", "zcrx"], "--ifname"),
    (["--ifname", "lo", "--queue", "0"], "--backend zcrx"),
    (["--setup-nic"], "--backend zcrx"),
    (["--queues", "0,1"], "--backend zcrx"),
    (["--preflight"], "--listen"),
    (["--ports", "2"], "--connect"),
    (["--nic-transcript", "t.jsonl"], "--backend zcrx"),
    (["--backend", "zcrx", "--ifname", "lo", "--queue", "0", "--nic-model", "m.json"], "--preflight only"),
    (["--backend", "zcrx", "--ifname", "lo", "--queue", "0", "--listen", "127.0.0.1:1", "--preflight",
      "--nic-model", "/nonexistent/m.json"], "--nic-model"),
    (["--backend", "zcrx", "--ifname", "lo", "--queues", "0", "--topology", "ifq-per-ring", "--rings", "2"],
     "one per ring"),
    (["--backend", "zcrx", "--ifname", "lo", "--queues", "0,1", "--topology", "shared-ifq"], "use --queue"),
    (["--topology", "single", "--rings", "4"], "1 ring"),
    (["--rx-cpus", "4096"], "cpu"),
    (["--tx-cpus", "3-1"], "cpu"),
    (["--send-size", "0"], "--send-size"),
    (["--buf-size", "1"], "--buf-size"),
    (["--bufs", "0"], "--bufs"),
    (["--topology", "shared-ifq", "--reuse", "lifo"], "--reuse lifo"),
    (["--backend", "zcrx-nodev", "--reuse", "fifo"], "--reuse goes with --backend copy"),
    (["--connect", "not-an-address"], "address"),
    (["--listen", "300.1.1.1:1"], "resolve"),
])
def test_loadgen_bad_combinations_are_one_line_exit_2(argv, words):
    p = run_loadgen(["--duration", "0.2", *argv])
    count("bad inputs tried: zcrx-loadgen combinations")
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert len(lines) == 1 and words.lower() in lines[0].lower(), lines
