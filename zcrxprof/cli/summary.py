"""`zcrxprof summary NAME`: the first-screen answer as plain text within 80 columns, ready to paste
into a cover letter (netdev takes plain text only) — the environment, the four claims with medians,
95 % intervals and verdicts, and the command that reproduces the recording."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

FORMATS = ("text", "markdown")


def register(subparsers) -> None:
    """Add the `summary` subcommand."""
    p = subparsers.add_parser(
        "summary", help="the claims a dataset supports, as plain text for a cover letter",
        description="Print a dataset's environment, the four claims (one ring saturates; handing work "
                    "to threads costs switches and CPU; an ifq per ring needs a queue per ring; working on "
                    "a payload from another core costs more) with "
                    "medians, 95% intervals and verdicts, and the command that reproduces it; every "
                    "line within 80 columns.")
    p.add_argument("dataset", help="dataset name (under --root) or path")
    p.add_argument("--format", choices=FORMATS, default="text", help="text (default) or markdown")
    p.add_argument("--root", type=Path, default=None, help="datasets directory (default: datasets/)")
    p.set_defaults(func=cmd_summary)


def environment(ds) -> list[str]:
    """Two sentences: backend (zero copy or not), kernel, place, emulated timing; cores and CPU
    (and the CPUs the receiver could use); a third when some runs' rings shared cores."""
    from zcrxprof.analysis.labels import receiver_cpus, shared_cores_sentence
    from zcrxprof.vocab import is_emulated_timing, is_zero_copy
    meta, runs = ds.metadata, ds.runs
    backends = sorted(set(runs["backend"])) or [str(meta.get("backend") or "?")]
    zero_copy = "zero copy" if all(is_zero_copy(b) for b in backends) else "not zero copy"
    place = meta.get("place") or {}
    machine = meta.get("machine") or {}
    accel = place.get("accelerator")
    where = place.get("where") or "?"
    where = f"{where} ({accel})" if accel else where
    timing = "emulated timing (TCG guest)" if is_emulated_timing(accel) else "real timing"
    kernel = place.get("kernel") or machine.get("kernel") or "?"
    rx_cpus = receiver_cpus(runs)
    receiver = f"; the receiver could use {'/'.join(map(str, rx_cpus))} of them" if rx_cpus else ""
    sharing = shared_cores_sentence(runs, machine.get("cores"))
    return [f"Backend {'/'.join(backends)} ({zero_copy}), kernel {kernel}, {where}, {timing}.",
            f"{machine.get('cores') or '?'} cores, {machine.get('cpu_model') or 'unknown CPU'}{receiver}.",
            *([sharing] if sharing else [])]


def _cells(r) -> list[str]:
    from zcrxprof.cli.text import estimate
    value, ci = estimate(r.median, r.ci_lo, r.ci_hi)
    if not math.isfinite(r.ci_lo) and math.isfinite(r.median) and float(r.median).is_integer():
        value = f"{r.median:.0f}"   # a count
    return [r.quantity, value, ci,
            str(int(r.runs)) if r.runs else "-", f"{r.p_value:.2g}" if math.isfinite(r.p_value) else ""]


def render(ds, claims, fmt: str = "text") -> list[str]:
    """The summary's lines (``fmt`` text or markdown), each within 80 columns unless a single word
    of the command line is longer."""
    from zcrxprof.cli.text import table, wrap, wrap_command
    from zcrxprof.dataset import usable
    runs = ds.runs
    md = fmt == "markdown"
    created = str(ds.metadata.get("created") or "?")[:10]
    head = f"{ds.name}: {int(usable(runs).sum())} usable runs of {len(runs)}, recorded {created}"
    lines = wrap(f"**{head}**" if md else head)
    for sentence in environment(ds):
        lines += ([""] + wrap(sentence)) if md else wrap(sentence, "  ")
    header = ["", "median", "95% CI", "runs", "p"]
    for number, g in claims.groupby("claim", sort=True):
        first = g.iloc[0]
        lines.append("")
        if md:
            lines += wrap(f"**{number}. {first.title}**")
            lines += wrap(f"Verdict: **{first.verdict}** -- {first.reason}")
            lines += wrap(f"Note: {first.note}") if first.note else []
        else:
            lines += wrap(f"{number}. {first.title}", "   ")
            lines += wrap(f"Verdict: {first.verdict} -- {first.reason}", "   ", first="   ")
            lines += wrap(f"Note: {first.note}", "   ", first="   ") if first.note else []
        rows = [_cells(r) for r in g.itertuples() if r.quantity]
        if not rows:
            continue
        if not any(row[-1] for row in rows):
            rows, head_row = [row[:-1] for row in rows], header[:-1]
        else:
            head_row = header
        lines.append("")
        if md:
            lines.append("| " + " | ".join(["quantity", *head_row[1:]]) + " |")
            lines.append("|" + "|".join(["---"] + ["--:"] * (len(head_row) - 1)) + "|")
            lines += ["| " + " | ".join(row) + " |" for row in rows]
        else:
            lines += table(head_row, rows, indent="   ")
    command = ds.metadata.get("command_line")
    lines.append("")
    if not command:
        return lines + ["The recording holds no command line to reproduce it."]
    lines.append("Reproduce with:")
    if md:
        return lines + ["", "```", *wrap_command(command, indent=""), "```"]
    return lines + wrap_command(command)


def cmd_summary(args: argparse.Namespace) -> int:
    """Print the summary of one dataset."""
    import sys

    from zcrxprof import dataset
    from zcrxprof.analysis.claims import df_claims
    ds = dataset.load(args.dataset, args.root)
    for note in dataset.absent_notes(ds):
        print(note, file=sys.stderr)
    for line in render(ds, df_claims(ds), args.format):
        print(line)
    return 0
