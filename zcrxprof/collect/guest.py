"""`record --kernel VER`: the whole recording runs inside the kernel lab guest.

The guest shares the host's root filesystem read-only and the project directory read-write, so the
same venv, load generator and probes run there. Inside, ``python -m zcrxprof.collect.guest OPTIONS``
records with the standard-library JSON spool (``spool.SpoolWriter``: loading pandas under TCG takes
minutes) into ``.build/lab-spool/NAME``; ``ZCRXPROF_LAB`` (set by the lab) labels every run
``place = lab`` with the guest's accelerator. Back on the host the spool becomes the parquet dataset,
also when the guest was stopped early (then ``complete: false``). vng does not forward the guest's
console, so its progress lines are shown when it ends.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

from zcrxprof import paths
from zcrxprof.errors import ZcrxprofError

SPOOL_ROOT = paths.build_dir() / "lab-spool"
BOOT_AND_COMPILE_S = 480.0    # TCG boot + Python start + BCC compiles (6–30 s per tool) + margin
PER_RUN_OVERHEAD_S = 30.0


def guest_argv(args: argparse.Namespace, parser: argparse.ArgumentParser, skip: set[str]) -> list[str]:
    """The record flags the user set (those differing from their defaults), minus ``skip`` dests."""
    out: list[str] = []
    for action in parser._actions:
        if not action.option_strings or action.dest in skip or action.dest == "help":
            continue
        value = getattr(args, action.dest, action.default)
        if value == action.default:
            continue
        flag = action.option_strings[-1]
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            out.append(flag)
        elif isinstance(value, (list, tuple)):
            out += [flag, ",".join(map(str, value))]
        else:
            out += [flag, str(value)]
    return out


def record_in_lab(kernel: str, opts, dest: Path, runs: int) -> Path:
    """Record ``opts`` (a RecordOptions; ``runs`` planned) in the lab guest into dataset ``dest``."""
    from zcrxprof import lab
    from zcrxprof.collect.spool import convert
    name = dest.name
    SPOOL_ROOT.mkdir(parents=True, exist_ok=True)
    spool = SPOOL_ROOT / name
    options = SPOOL_ROOT / f"{name}.options.json"
    shutil.rmtree(spool, ignore_errors=True)
    fields = {f.name: getattr(opts, f.name) for f in dataclasses.fields(opts) if f.name != "collectors"}
    options.write_text(json.dumps({**fields, "name": name, "out": str(SPOOL_ROOT)}, default=str))
    timeout = BOOT_AND_COMPILE_S + runs * (opts.duration_s + PER_RUN_OVERHEAD_S)
    print(f"record: booting the kernel lab ({kernel}); the recording runs inside the guest "
          f"(at most {timeout / 60:.0f} min; its progress is shown when it ends)", file=sys.stderr)
    res = None
    try:
        res = lab.run([sys.executable, "-m", "zcrxprof.collect.guest", str(options)], kernel=kernel,
                      timeout=timeout, cwd=paths.lab_share_dir())
    finally:
        # also after Ctrl-C (lab.run has stopped the guest): keep what was measured
        if (spool / "metadata.json").exists():
            convert(spool, dest)
        shutil.rmtree(spool, ignore_errors=True)
        options.unlink(missing_ok=True)
    for line in res.stderr.splitlines():
        if line.strip():
            print(f"  guest: {line.rstrip()}", file=sys.stderr)
    if not (dest / "metadata.json").exists():
        last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ZcrxprofError(f"recording in the lab guest ({res.kernel}, {res.accelerator}) produced no dataset: "
                            f"exit {res.returncode}: {last}")
    if res.timed_out:
        raise ZcrxprofError(f"the lab guest timed out after {timeout:.0f} s; partial dataset in {dest}")
    if res.returncode != 0:
        raise ZcrxprofError(f"record in the lab guest ended with exit {res.returncode}; "
                            f"{'partial ' if res.returncode == 130 else ''}dataset in {dest}")
    return dest


def main(argv: list[str]) -> int:
    """Guest side: record with the options file ``argv[0]`` into the spool."""
    from zcrxprof.collect import record
    from zcrxprof.collect.spool import SpoolWriter
    fields = json.loads(Path(argv[0]).read_text())
    opts = record.RecordOptions(**fields)
    try:
        record.record(opts, writer_class=SpoolWriter)
    except KeyboardInterrupt:
        return 130
    except ZcrxprofError as exc:
        print(f"zcrxprof: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
