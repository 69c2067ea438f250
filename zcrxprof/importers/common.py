"""What every importer shares: the parsed result of another tool's output and its one way into a
dataset (the ``runs`` and ``intervals`` tables of ``zcrxprof/schema.py``, plus ``threads`` where the
tool measures per-thread totals), with the columns the tool does not measure named in metadata."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zcrxprof import schema
from zcrxprof.errors import UsageError
from zcrxprof.vocab import DEFAULT_BACKEND, TOPOLOGY_INFO, is_zero_copy

# runs columns the import itself assigns (labels and bookkeeping), never "not measured"
ASSIGNED = {"run_id", "repetition", "topology", "backend", "zero_copy", "emulated", "place", "accelerator",
            "rings", "workers", "status", "error"}
# tables no other tool fills: they stay empty in an imported dataset
UNMEASURED_TABLES = ("registrations", "events", "probes", "histograms", "system", "perf_counters", "profile")


@dataclass
class ImportedRun:
    """One run of another tool: its ``runs`` row (schema column → value), its ``intervals`` and
    ``threads`` rows, and the runs/intervals columns it filled from what the tool measured."""

    run: dict[str, Any]
    intervals: list[dict[str, Any]] = field(default_factory=list)
    threads: list[dict[str, Any]] = field(default_factory=list)
    receiving_threads: int = 1     # threads that received (the default --rings)


@dataclass
class Imported:
    """Everything parsed from one tool's output: the tool, its version, the files read, the runs,
    which ``runs`` / ``intervals`` columns it measures, and remarks for the metadata notes."""

    tool: str
    version: str
    files: list[str]
    runs: list[ImportedRun]
    measured_runs: set[str]
    measured_intervals: set[str]
    backend: str = DEFAULT_BACKEND
    notes: list[str] = field(default_factory=list)


def not_measured(imported: Imported) -> list[str]:
    """``table.column`` of every runs/intervals column the tool does not measure, then the tables
    it leaves empty (``threads`` too when it has no per-thread totals)."""
    runs = [f"runs.{c}" for c in schema.TABLES["runs"].column_names
            if c not in ASSIGNED and c not in imported.measured_runs]
    intervals = [f"intervals.{c}" for c in schema.TABLES["intervals"].column_names
                 if c not in imported.measured_intervals]
    if not any(r.intervals for r in imported.runs):
        intervals = ["intervals table"]
    tables = [f"{t} table" for t in UNMEASURED_TABLES]
    if not any(r.threads for r in imported.runs):
        tables.insert(0, "threads table")
    return runs + intervals + tables


def fail(path: str | Path, why: str) -> UsageError:
    """The one-line refusal of an input file (exit 2): ``FILE: not iperf3 -J output (why)``."""
    return UsageError(f"{path}: {' '.join(str(why).split())[:300]}")


def read_text(path: str | Path) -> str:
    """A file's text; a missing, unreadable or binary file is a one-line UsageError."""
    p = Path(path)
    if p.is_dir():
        raise fail(p, "a directory, not a file")
    try:
        return p.read_text()
    except FileNotFoundError:
        raise fail(p, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(p, getattr(exc, "strerror", None) or exc) from None


def check_name(name: str) -> str:
    """A dataset name: letters, digits, ``.``, ``_``, ``-`` (UsageError otherwise)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name or ""):
        raise UsageError(f"--name {name!r}: use letters, digits, '.', '_' and '-'")
    return name


def resolve_topology(topology: str | None, rings: int | None, receiving_threads: int) -> tuple[str, int]:
    """The topology and ring count the imported runs are filed under: as given, else ``single``
    for one receiving thread and ``ifq-per-ring`` (independent receivers) for several."""
    info = {t.name: t for t in TOPOLOGY_INFO}
    n = rings if rings is not None else receiving_threads
    if n < 1:
        raise UsageError(f"--rings {n}: must be at least 1")
    name = topology or ("single" if n == 1 else "ifq-per-ring")
    if not info[name].several_rings and n != 1:
        raise UsageError(f"--topology {name} takes one ring, not {n}; use --rings 1 or a topology with several rings")
    return name, n


def write_dataset(imported: Imported, name: str, root: Path, *, topology: str | None, rings: int | None,
                  label: str | None, command_line: str) -> Path:
    """Write the imported runs as dataset ``root/name``; returns its directory."""
    from zcrxprof.dataset import DatasetWriter
    check_name(name)
    receivers = max((r.receiving_threads for r in imported.runs), default=1)
    topo, n = resolve_topology(topology, rings, receivers)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    kernels = sorted({r.run.get("kernel") for r in imported.runs if r.run.get("kernel")})
    missing = not_measured(imported)
    source = {"tool": imported.tool, "version": imported.version, "files": imported.files, "label": label or "",
              "topology": "given with --topology" if topology else f"default for {receivers} receiving thread(s)"}
    writer = DatasetWriter(root / name, {
        "created": now, "command_line": command_line, "place": {"where": "host", "accelerator": None,
                                                                 "kernel": kernels[0] if len(kernels) == 1 else None},
        "backend": imported.backend, "emulated": [], "probes": [], "versions": {imported.tool: imported.version},
        "plan": {"topologies": [topo], "rings": [n], "runs": len(imported.runs)},
        "source": source, "not_measured": missing, "notes": list(imported.notes)})
    for run_id, item in enumerate(imported.runs):
        row = {**item.run, "run_id": run_id, "repetition": run_id, "topology": topo, "rings": n, "workers": 0,
               "backend": imported.backend, "zero_copy": is_zero_copy(imported.backend), "emulated": "",
               "place": "host", "accelerator": ""}
        row.setdefault("status", "ok")
        writer.add_run({"runs": [row],
                        "intervals": [{**i, "run_id": run_id} for i in item.intervals],
                        "threads": [{**t, "run_id": run_id} for t in item.threads]})
    writer.close(complete=True, finished=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    return writer.path


def describe(meta: dict[str, Any]) -> list[str]:
    """The lines ``show`` prints for an imported dataset (none for zcrxprof's own recordings)."""
    source = meta.get("source")
    if not isinstance(source, dict):
        return []
    files = ", ".join(source.get("files") or []) or "?"
    version = f" {source['version']}" if source.get("version") else ""
    lines = [f"imported from {source.get('tool', '?')}{version} output ({files}), not "
             f"recorded by zcrxprof; topology {source.get('topology') or '?'}"
             + (f"; label: {source['label']}" if source.get("label") else "")]
    missing = meta.get("not_measured") or []
    if missing:
        lines.append(f"note: {source.get('tool', 'the tool')} does not measure (left empty): {', '.join(missing)}")
    return lines


def tool_of(meta: dict[str, Any]) -> str:
    """Which tool measured a dataset's runs: ``zcrxprof`` unless it was imported."""
    source = meta.get("source")
    return str(source.get("tool") or "?") if isinstance(source, dict) else "zcrxprof"
