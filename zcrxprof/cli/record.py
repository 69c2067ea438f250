"""`zcrxprof record`: the command users type to measure the four topologies into a dataset."""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from zcrxprof import vocab
from zcrxprof.collect import plugins
from zcrxprof.collect.plan import BACKEND_CHOICES, DEFAULT_WORK_NS_PER_KIB, parse_list, parse_topologies
from zcrxprof.errors import UsageError

DESCRIPTION = """\
Record the four receive topologies under the load generator into a dataset
(datasets/<name>/: metadata.json + parquet tables, see docs/dataset.md).

Runs are interleaved (A B C D A B C D ...) so drift hits every topology alike. The sender runs
in its own network namespace joined by veth (created and always removed). Every run keeps the
load generator's JSON records, kernel probe counters and /proc samples per interval.
Ctrl-C or SIGTERM: what was measured stays on disk, marked complete: false."""

EPILOG = """\
examples:
  zcrxprof record --rings 4                         # all topologies, 3 x 10 s each
  zcrxprof record --topology single,shared-ifq --rings 2,4 --duration 5
  zcrxprof record --rate 2,4,8 --topology single    # offered-load sweep (saturation curve)
  zcrxprof record --kernel 7.3.4+deb13-amd64 --rings 2   # inside the kernel lab: zcrx-nodev + kprobes
  zcrxprof record --kernel ~/src/linux --name patched     # your build tree (a patch series applied)
  zcrxprof record --probes none --repeat 1 --name quick-look
  zcrxprof record --backend zcrx --ifname eth1 --queue 8 --queues 8,9,10,11 --rings 4 --setup-nic \\
      --peer client1 --peer client2                 # a zcrx NIC, senders on two hosts (docs/hardware.md)
"""

NODEV = vocab.BACKEND_NEEDS["zcrx-nodev"]             # the zcrx feature --backend zcrx-nodev needs
NODEV_KERNEL = vocab.version_text(vocab.ZCRX_FEATURES[NODEV])


def register(subparsers) -> None:
    """Add the `record` subcommand (and the flags of collector plug-ins)."""
    p = subparsers.add_parser("record", help="record topologies into a dataset", description=DESCRIPTION,
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--topology", default="all", metavar="LIST",
                   help=f"topologies: {','.join(vocab.TOPOLOGIES)} or all (default all)")
    p.add_argument("--rings", default="2", metavar="LIST",
                   help="rings (workers for `workers`) per run; a list sweeps (default 2)")
    p.add_argument("--work-ns-per-kib", default=f"{DEFAULT_WORK_NS_PER_KIB:g}", metavar="LIST",
                   help="busy work per KiB received on top of the checksum; a list sweeps "
                        f"(default {DEFAULT_WORK_NS_PER_KIB:g}: one ring saturates)")
    p.add_argument("--rate", default="0", metavar="LIST",
                   help="offered load in Gbit/s (0 = unpaced); a list sweeps (default 0)")
    p.add_argument("--duration", type=float, default=10.0, metavar="S", help="seconds per run (default 10)")
    p.add_argument("--repeat", type=int, default=3, metavar="N", help="repetitions of every run (default 3)")
    p.add_argument("--interval", type=float, default=1.0, metavar="S",
                   help="sampling interval of loadgen, probes and /proc (default 1)")
    p.add_argument("--backend", default="auto", choices=BACKEND_CHOICES,
                   help="auto: zcrx-nodev in the kernel lab, copy on the host (default auto)")
    p.add_argument("--ifname", help="zcrx backend: the NIC")
    p.add_argument("--queue", type=int, help="zcrx backend: the NIC's RX queue (single, shared-ifq, workers)")
    p.add_argument("--queues", metavar="Q1,Q2,…",
                   help="zcrx backend, ifq-per-ring: one RX queue per ring (ring i on Qi, listening on PORT+i), "
                        "at least as many as the largest --rings")
    p.add_argument("--setup-nic", action="store_true",
                   help="zcrx backend: let the load generator set tcp-data-split, hds-thresh, RSS, ntuple and one "
                        "flow rule per listening port for each run, and restore them after it (docs/hardware.md)")
    p.add_argument("--port", type=int, metavar="P",
                   help="zcrx backend: the receiver's port on the NIC's address (ifq-per-ring: ring i on P+i; "
                        "default: free ports picked at the start)")
    p.add_argument("--kernel", metavar="VER|PATH",
                   help="run the whole recording inside the kernel lab guest booting VER (`zcrxprof lab status`), "
                        "or your own kernel: a build tree or a bzImage (its release, git describe, config "
                        "hash and zcrx features go into the dataset)")
    p.add_argument("--probes", default="auto", metavar="LIST",
                   help="kernel probe tools: ringsched,uringwork,zcrxstat,pagepool, all, none or auto "
                        "(default auto: zcrxstat where kernel-function probes work, pagepool with --backend zcrx)")
    p.add_argument("--sender", default="netns", choices=("netns", "local"),
                   help="sender in its own namespace over veth (default) or in this one over loopback")
    p.add_argument("--peer", action="append", default=[], metavar="[USER@]HOST[:PORT]",
                   help="run the senders on this host over ssh (repeatable; docs/peers.md)")
    p.add_argument("--peers", metavar="PEER,…", help="comma-separated peers, like repeated --peer")
    p.add_argument("--peer-dir", metavar="DIR",
                   help="directory on the peers for the recording's temporary directory (default $TMPDIR or /tmp)")
    p.add_argument("--ssh-config", metavar="FILE", help="ssh configuration file for the peers (ssh -F; "
                   "default: the user's ~/.ssh/config)")
    p.add_argument("--name", help="dataset name (default: UTC timestamp, backend and place)")
    p.add_argument("--out", type=Path, help="datasets directory (default datasets/)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    for mod in plugins.plugin_modules():
        mod.add_arguments(p)
    p.set_defaults(func=cmd_record, record_parser=p)


def resolve_backend(args: argparse.Namespace, in_lab: bool) -> str:
    """The backend to record with; UsageError for combinations this place cannot run."""
    backend = args.backend
    if backend == "auto":
        backend = "zcrx-nodev" if in_lab else ("zcrx" if args.ifname is not None else "copy")
    if (args.ifname is None) != (args.queue is None and args.queues is None):
        raise UsageError("--ifname and --queue go together (the NIC and its RX queue)")
    if backend == "zcrx":
        if not args.peer and args.peers is None:
            raise UsageError("record --backend zcrx: a NIC queue receives only flows from another host, so the "
                             "senders must be remote senders: add --peer HOST (docs/peers.md)")
        return backend
    if args.ifname is not None:
        raise UsageError(f"--ifname/--queue only apply to --backend zcrx (not {backend})")
    if args.queues is not None or args.setup_nic or args.port is not None:
        raise UsageError(f"--queues/--setup-nic/--port only apply to --backend zcrx (not {backend})")
    if backend == "zcrx-nodev" and not args.kernel and not vocab.kernel_has(os.uname().release, NODEV):
        raise UsageError(f"--backend zcrx-nodev needs kernel >= {NODEV_KERNEL} (ZCRX_REG_NODEV); this host runs "
                         f"{os.uname().release}: add --kernel VER to record in the kernel lab")
    return backend


def nic_plan(args: argparse.Namespace, topologies: list[str], rings: list[int]):
    """``--backend zcrx``: the NIC, the queue of each kind of run, --setup-nic and --port, checked
    against the plan (UsageError); the address and a default port are found when recording starts."""
    from zcrxprof.collect.runner import NicPlan
    queues = parse_list(args.queues, int, "--queues", 0) if args.queues is not None else []
    for q in ([args.queue] if args.queue is not None else []) + queues:
        if not 0 <= q <= 4095:
            raise UsageError(f"--queue/--queues: {q} is not an RX queue number (0..4095)")
    if len(set(queues)) != len(queues):
        raise UsageError(f"--queues {args.queues}: a queue given twice (one ring per queue)")
    per_ring = "ifq-per-ring" in topologies and max(rings) > 1
    if queues and "ifq-per-ring" not in topologies:
        raise UsageError("--queues gives each ring of ifq-per-ring its own queue, and --topology has no "
                         "ifq-per-ring: use --queue Q")
    if per_ring and len(queues) < max(rings):
        raise UsageError(f"ifq-per-ring with {max(rings)} rings on a NIC needs one queue per ring: "
                         + (f"--queues gives {len(queues)}" if queues else f"--queues Q1,…,Q{max(rings)}"))
    if args.queue is None and [t for t in topologies if t != "ifq-per-ring"]:
        raise UsageError("--queue Q: the NIC queue of single, shared-ifq and workers (--queues is ifq-per-ring's)")
    ports = max(rings) if per_ring else 1
    if args.port is not None and not 1 <= args.port <= 65536 - ports:
        raise UsageError(f"--port {args.port}: a TCP port 1..{65536 - ports}"
                         + (f" (ring i listens on P+i, up to P+{ports - 1})" if ports > 1 else ""))
    return NicPlan(args.ifname, args.queue, tuple(queues), args.setup_nic, "", args.port or 0)


def parse_peer_flags(args: argparse.Namespace) -> list:
    """--peer/--peers as addresses; --peer-dir and --ssh-config checked (UsageError otherwise)."""
    from zcrxprof.collect.peers import parse_peers
    peers = parse_peers(list(args.peer) + ([args.peers] if args.peers is not None else []))
    if args.peers is not None and not peers:
        raise UsageError("--peers: give at least one [USER@]HOST[:PORT]")
    if not peers and (args.peer_dir is not None or args.ssh_config is not None):
        raise UsageError("--peer-dir and --ssh-config apply to --peer only")
    if args.peer_dir is not None and not args.peer_dir.startswith("/"):
        raise UsageError(f"--peer-dir {args.peer_dir!r}: an absolute path on the peers")
    if args.ssh_config is not None and not os.path.isfile(args.ssh_config):
        raise UsageError(f"--ssh-config {args.ssh_config}: no such file")
    if peers and args.kernel:
        raise UsageError("--peer: remote senders do not run with --kernel (the lab guest has no route to them)")
    return peers


def cmd_record(args: argparse.Namespace) -> int:
    """Validate the flags, then record on the host or inside the kernel lab."""
    from zcrxprof import dataset
    from zcrxprof.collect import guest, record
    from zcrxprof.collect.plan import build_plan
    from zcrxprof.collect.probeset import parse_probes
    in_lab = vocab.in_lab()
    topologies = parse_topologies(args.topology)
    rings = parse_list(args.rings, int, "--rings", 1)
    works = parse_list(args.work_ns_per_kib, int, "--work-ns-per-kib", 0)
    rates = parse_list(args.rate, float, "--rate", 0)
    probes = parse_probes(args.probes)
    if not math.isfinite(args.interval) or args.interval <= 0:
        raise UsageError("--interval must be a finite number > 0")
    backend = resolve_backend(args, in_lab or bool(args.kernel))
    peers = parse_peer_flags(args)
    nic = nic_plan(args, topologies, rings) if backend == "zcrx" else None
    specs = build_plan(topologies, rings, works, rates, args.duration, args.repeat)
    typed = guest.guest_argv(args, args.record_parser, {"record_parser", "func"})
    opts = record.RecordOptions(
        topologies=topologies, rings=rings, works=works, rates=rates, duration_s=args.duration,
        repeat=args.repeat, backend=backend, probes=probes, name=args.name, out=args.out,
        sender=args.sender, interval_s=args.interval, command_line=record.command_line(["record", *typed]),
        quiet=args.quiet, peers=peers, ssh_config=args.ssh_config, peer_dir=args.peer_dir, nic=nic)
    if peers:
        opts.sender = "peers"
    if args.kernel:
        if in_lab:
            raise UsageError("--kernel: already inside the kernel lab guest")
        if any(mod.make_collectors(args) for mod in plugins.plugin_modules()):
            opts.notes.append("plug-in collectors (perf) do not run inside the lab guest")
        from zcrxprof import lab
        kernel = lab.kernel_for(args.kernel)   # not prepared, damaged, not a kernel: one line naming the fix
        user = isinstance(kernel, lab.UserKernel)
        config = kernel.config()       # empty when the kernel ships no config: then the version decides
        why = ("is older" if not vocab.kernel_has(kernel.version, NODEV) else
               "lacks it" if config and config.get("CONFIG_IO_URING_ZCRX") != "y" else None)
        if backend == "zcrx-nodev" and why:   # refused here, before the guest boots
            named = f"{args.kernel} ({kernel.version})" if user else kernel.version
            fix = "build it from a newer tree" if user else "prepare a newer one (`zcrxprof lab prepare`)"
            raise UsageError(f"record --kernel {named}: --backend zcrx-nodev needs a kernel >= {NODEV_KERNEL} "
                             f"built with CONFIG_IO_URING_ZCRX (ZCRX_REG_NODEV) and this one {why}; {fix} "
                             f"or record with --backend copy")
        if user:
            opts.kernel_build = kernel.identity()
        dest = (args.out or dataset.default_root()) / record.dataset_name(opts, "lab")
        if dest.exists():
            raise UsageError(f"{dest} already exists; choose another --name")
        try:
            path = guest.record_in_lab(args.kernel, opts, dest, len(specs))
        except KeyboardInterrupt:
            print(f"record: interrupted; the lab guest was stopped; partial dataset (if any) in {dest}",
                  file=sys.stderr)
            return 130
        print(path)
        return 0
    opts.collectors = [c for mod in plugins.plugin_modules() for c in mod.make_collectors(args)]
    try:
        path = record.record(opts)
    except KeyboardInterrupt as exc:
        return 128 + getattr(exc, "signum", 2)
    print(path)
    return 0
