"""`zcrxprof lab prepare|run|status`: the kernel lab (a Debian kernel >= 7.1 under virtme-ng/QEMU)."""
from __future__ import annotations

import argparse
import json
import sys

from zcrxprof.errors import UsageError

EPILOG = """\
examples:
  zcrxprof lab prepare                       # newest Debian kernel >= LAB_KERNEL_MIN, cached
  zcrxprof lab prepare --kernel 7.2.13+deb14-amd64
  zcrxprof lab run -- uname -r               # boot it, run the command as root, return its status
  zcrxprof lab run --cpus 2 --memory 4G -- loadgen/zcrx-loadgen --backend zcrx-nodev --json
  zcrxprof lab run --kernel ~/src/linux -- loadgen/zcrx-loadgen --kernel-features
                                             # your own build tree (or bzImage) instead
  zcrxprof lab run --wire -- loadgen/zcrx-loadgen --backend zcrx-nodev --listen 10.199.0.2:9999
                                             # the receiver behind a virtio-net NIC; senders on the
                                             # host: ip netns exec zcxp-<pid>-lab zcrx-loadgen --connect …
  zcrxprof lab status                        # cached kernels, zcrx features, accelerator
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `lab` subcommand and its three actions."""
    p = subparsers.add_parser("lab", help="the kernel lab: prepare, run a command in, status",
                              description=__doc__, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="lab_action", metavar="ACTION", parser_class=type(p))
    pr = sub.add_parser("prepare", help="download and prepare the lab kernel (idempotent)")
    pr.add_argument("--kernel", metavar="VERSION", help="e.g. 7.2.13+deb14-amd64 (default: newest, or LAB_KERNEL)")
    pr.add_argument("--quiet-if-ready", action="store_true",
                    help="print nothing and skip the archive check when a kernel is already prepared")
    pr.set_defaults(func=_prepare)
    ru = sub.add_parser("run", help="boot the lab kernel and run CMD as root in the guest")
    ru.add_argument("--kernel", metavar="VERSION|PATH",
                    help="a prepared kernel's version, or your own kernel build tree or bzImage (a path)")
    ru.add_argument("--cpus", type=int, help="the guest's CPUs (default 2 with KVM, 1 under TCG, where a second "
                    "emulated CPU costs two to three times the host CPU time)")
    ru.add_argument("--memory", default="4G")
    ru.add_argument("--timeout", type=float, default=600.0, help="seconds before the guest is killed (default 600)")
    ru.add_argument("--rwdir", action="append", default=[], metavar="DIR",
                    help="another directory writable in the guest (the project directory always is)")
    ru.add_argument("--wire", action="store_true",
                    help="give the guest a virtio-net NIC (10.199.0.2) wired to a tap (10.199.0.1) in the network "
                         "namespace zcxp-<pid>-lab, where the host side of the traffic runs (root)")
    ru.add_argument("--json", action="store_true", help="print the result (status, output, accelerator) as JSON")
    ru.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD…")
    ru.set_defaults(func=_run)
    st = sub.add_parser("status", help="cached kernels, their zcrx features, the accelerator that works here")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=_status)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _prepare(args: argparse.Namespace) -> int:
    from zcrxprof import lab
    k = lab.prepare(args.kernel, check_archive=not args.quiet_if_ready)
    if not args.quiet_if_ready:
        print(f"{k.version}\t{k.root}\tfeatures: {', '.join(k.features()) or 'none'}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from zcrxprof import lab
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise UsageError("lab run: give the command after `--`, e.g. zcrxprof lab run -- uname -r")
    if args.kernel and isinstance(kernel := lab.kernel_for(args.kernel), lab.UserKernel):
        ident = kernel.identity()
        print(f"zcrxprof lab: {args.kernel}: {ident['kind']} of {ident['release']}"
              f"{', ' + ident['git_describe'] if ident['git_describe'] else ''}; zcrx features by version "
              f"and config: {', '.join(ident['features']) or 'none'}", file=sys.stderr)
    res = lab.run(cmd, kernel=args.kernel, cpus=args.cpus, memory=args.memory, timeout=args.timeout,
                  rwdirs=args.rwdir, wire=args.wire)
    if args.json:
        print(json.dumps(lab.result_dict(res)))
    else:
        sys.stdout.write(res.stdout)
        sys.stderr.write(res.stderr)
        label = f"{'emulated (TCG)' if res.emulated_timing else 'KVM'}, {res.cpus} CPU{'s' if res.cpus > 1 else ''}"
        note = f"; killed after {args.timeout:.0f} s" if res.timed_out else ""
        print(f"zcrxprof lab: {res.kernel}, {label}, boot {res.boot_s:.1f} s, command {res.command_s:.1f} s, "
              f"exit {res.returncode}{note}", file=sys.stderr)
    return res.returncode


def _status(args: argparse.Namespace) -> int:
    from zcrxprof import lab
    st = lab.status()
    if args.json:
        print(json.dumps(st, indent=1))
        return 0
    print(f"prepared kernels in: {st['cache']}")
    print(f"kernel choice: {st['pinned'] or 'newest >= ' + st['minimum']} (scripts/versions.env)")
    print(f"accelerator: {st['accelerator']}")
    if not st["kernels"]:
        print("kernels: none prepared (run `zcrxprof lab prepare`)")
    for k in st["kernels"]:
        extra = "".join(f"; {x}" for x, on in (("kprobes", k["kprobes"]), ("BTF", k["btf"])) if on)
        print(f"  {k['version']}: zcrx features: {', '.join(k['features']) or 'none'}{extra}; headers {k['headers']}")
    for k in st["damaged"]:
        print(f"  {k['version']}: DAMAGED, cannot be used: {k['problem']}")
    return 0
