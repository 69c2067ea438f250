"""One kernel lab guest boot shared by the lab tests that only need commands run in a guest.

A TCG boot costs 15-40 s here, so test_lab.py, test_probes_lab.py and test_zcrx.py do not boot
one each: the session fixture ``lab_guest`` (conftest.py) boots once and runs one script of
parts, each writing into its own directory, a part's failure leaving the others to run:

- ``basics`` (test_lab.py): ``uname -r`` on stdout, a line on stderr, the kernel release into a
  file of the project directory (writable in the guest); the script then exits 7, so the guest
  command's own status and output come back through ``lab.run``;
- ``bcc`` (test_lab.py): a BCC program compiled against ``lab.headers_dir()``;
- ``probes`` (test_probes_lab.py): the four probe tools attached through the API while the load
  generator (zcrx-nodev) runs with their targets set before it starts (PROBES below);
- ``zcrx`` (test_zcrx.py): every topology on zcrx-nodev over loopback (ZCRX_TOPOLOGIES).

The commands that boot a guest of their own (`record --kernel`, the fault suite's SIGKILL of QEMU,
the signals sent to `zcrxprof lab run` while QEMU starts) cannot share it.
"""
from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from zcrxprof import lab

ROOT = Path(__file__).resolve().parents[1]
LOADGEN = ROOT / "loadgen" / "zcrx-loadgen"
EXIT_STATUS = 7                    # the script's own status, which must come back (not vng's 255)
TIMEOUT_S = 840.0                  # boot + every part under TCG, with room for a busy host
ZCRX_TOPOLOGIES = {"single": 1, "workers": 1, "ifq-per-ring": 2, "shared-ifq": 2, "shared-ifq-3": 3}

BCC_PROGRAM = ("from bcc import BPF; b = BPF(text='int probe(void *ctx) { return 0; }'); "
               "print(b.load_func('probe', BPF.KPROBE).fd > 0)")

# run by the venv's Python in the guest (cwd: the project); prints one JSON object
PROBES = r"""
import json, subprocess, sys
from zcrxprof.probes import TOOLS, tool_class
from zcrxprof.probes.ladder import btf_arity, kallsyms_matching
from zcrxprof.probes.tool import place
out = {"place": place(), "report": {}, "rows": {}, "hist": {}, "compile_s": {},
       "flush_rq": {"btf": btf_arity("zcrx_flush_rq") is not None, "symbols": kallsyms_matching("zcrx_flush_rq")}}
tools = {}
try:
    for name in TOOLS:
        tools[name] = tool_class(name)(pids=[])
        tools[name].attach()
        out["report"][name] = tools[name].report_dicts()
        out["compile_s"][name] = tools[name].compile_s
        out["headers"] = {"label": tools[name].headers.label, "matches": tools[name].headers.matches_kernel}
    lg = subprocess.Popen(["sh", "-c", 'read _; exec "$0" "$@"', "loadgen/zcrx-loadgen", "--backend",
                           "zcrx-nodev", "--topology", "single", "--duration", "2", "--json"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    for tool in tools.values():
        tool.set_targets([lg.pid])
    lg.stdin.write("go\n"); lg.stdin.flush()
    text, _ = lg.communicate(timeout=300)
    out["loadgen_status"] = lg.returncode
    out["loadgen"] = [json.loads(l) for l in text.splitlines() if l.startswith("{") and '"interval"' not in l]
    for name, tool in tools.items():
        tool.set_targets([])    # stop counting: the reads below agree with each other
        out["rows"][name] = tool.snapshot(0.0)
        out["hist"][name] = tool.histograms()
    out["registrations"] = tools["uringwork"].registrations()
finally:
    for tool in tools.values():
        tool.detach()
print(json.dumps(out))
"""


@dataclass
class SharedBoot:
    """The shared boot's result and the directory holding each part's files."""

    result: lab.LabResult
    out: Path

    def part(self, name: str) -> Path:
        """The directory of one part (basics, bcc, probes, zcrx)."""
        return self.out / name


def _script(k: lab.LabKernel, out: Path) -> str:
    q = lambda p: shlex.quote(str(p))
    lines = [f"mkdir -p {q(out / 'basics')} {q(out / 'bcc')} {q(out / 'probes')} {q(out / 'zcrx')}",
             # basics: stdout and stderr of the guest command itself
             f"uname -r; cat /proc/sys/kernel/osrelease > {q(out / 'basics' / 'osrelease')}; echo to-stderr >&2",
             # bcc
             f"BCC_KERNEL_SOURCE={q(lab.headers_dir(k.version))} /usr/bin/python3 -c {q(BCC_PROGRAM)} "
             f"> {q(out / 'bcc' / 'out')} 2> {q(out / 'bcc' / 'err')}",
             # probes
             f"PYTHONPATH={q(ROOT)} {q(sys.executable)} {q(out / 'probes.py')} > {q(out / 'probes' / 'out')} 2> {q(out / 'probes' / 'err')}; "
             f"echo $? > {q(out / 'probes' / 'rc')}"]
    for name, rings in ZCRX_TOPOLOGIES.items():
        topo = name.removesuffix("-3")
        extra = f"--rings {rings}" if topo in ("ifq-per-ring", "shared-ifq") else ""
        d = out / "zcrx"
        lines.append(f"{q(LOADGEN)} --backend zcrx-nodev --topology {topo} {extra} --duration 1.5 --interval 0.5 "
                     f"--json > {q(d / (name + '.json'))} 2> {q(d / (name + '.err'))}; echo $? > {q(d / (name + '.rc'))}")
    lines.append(f"exit {EXIT_STATUS}")
    return "\n".join(lines) + "\n"


def boot_shared_guest(k: lab.LabKernel) -> SharedBoot:
    """Boot ``k`` once and run every part; the caller removes ``out`` (see conftest.py)."""
    out = Path(lab.RUNS_DIR) / f"test-shared-{time.time_ns()}"
    out.mkdir(parents=True)
    (out / "probes.py").write_text(PROBES)
    (out / "guest.sh").write_text(_script(k, out))
    res = lab.run(["sh", str(out / "guest.sh")], kernel=k.version, cwd=ROOT, timeout=TIMEOUT_S)
    print(f"\nshared lab guest {res.kernel} ({res.accelerator}): boot {res.boot_s:.0f} s, "
          f"command {res.command_s:.0f} s, status {res.returncode}")
    return SharedBoot(res, out)


def records(text: str) -> list[dict]:
    """The JSON records of a load generator's output."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]
