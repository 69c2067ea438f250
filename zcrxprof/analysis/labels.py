"""The one-line description every figure and table carries: backend, kernel, machine, and whether
timings were emulated."""
from __future__ import annotations

from zcrxprof.dataset import Dataset
from zcrxprof.vocab import is_emulated_timing, is_zero_copy, shared_cores_note, shares_cores, split_emulated


def label(ds: Dataset, dataset: str | None = None) -> str:
    """One line naming backend, kernel, machine and whether timings were emulated — for titles."""
    names = [dataset] if dataset else ds.names
    pieces = []
    for name in names:
        meta = ds.metadata_by_name[name]
        runs = ds.runs[ds.runs["dataset"] == name]
        backends = sorted(set(runs["backend"])) or [str(meta.get("backend", "?"))]
        kernels = sorted(set(runs["kernel"])) or [str((meta.get("machine") or {}).get("kernel", "?"))]
        machine = meta.get("machine") or {}
        cores = machine.get("cores")
        cpu = machine.get("cpu_model") or "unknown CPU"
        place = meta.get("place") or {}
        where = place.get("where") or (sorted(set(runs["place"])) or ["?"])[0]
        accel = place.get("accelerator") or ""
        timing = emulation_note(ds, name)
        zc = "zero-copy" if all(is_zero_copy(b) for b in backends) else "not zero-copy"
        pieces.append(f"backend {'/'.join(backends)} ({zc}) · kernel {'/'.join(kernels)} · "
                      f"{where}{' ' + accel if accel else ''}, {cores} cores, {cpu} · {timing}")
    return " | ".join(pieces)


def emulation_note(ds: Dataset, dataset: str) -> str:
    """``timing emulated (TCG guest)`` or ``timing real``, plus what the backend emulates."""
    meta = ds.metadata_by_name[dataset]
    runs = ds.runs[ds.runs["dataset"] == dataset]
    accel = (meta.get("place") or {}).get("accelerator") or ""
    if not accel and len(runs):
        accel = next((a for a in runs["accelerator"] if a), "")
    timing = "timing emulated (TCG guest)" if is_emulated_timing(accel) else "timing real"
    emulated = set(meta.get("emulated") or [])
    for e in runs["emulated"]:
        emulated.update(split_emulated(e))
    if emulated:
        timing += "; emulated: " + "; ".join(sorted(emulated))
    return timing



def _cores_fact(run, cores: int | None) -> tuple[int | None, bool, bool]:
    """(CPUs the run's receiver could use, whether its rings share cores, whether the run recorded
    it): the run's own ``cpus_available``/``rings_share_cores``, else ``cores`` (older datasets)."""
    rings, workers = int(getattr(run, "rings", 0) or 0), int(getattr(run, "workers", 0) or 0)
    cpus = getattr(run, "cpus_available", -1)
    if cpus is not None and cpus == cpus and int(cpus) >= 0:          # recorded: not NaN, not -1
        return int(cpus), bool(getattr(run, "rings_share_cores", False)), True
    return cores, shares_cores(rings, workers, cores), False


def shared_cores_notes(runs, cores: int | None = None) -> list[str]:
    """``4 rings on 2 CPUs: rings share cores`` once per distinct configuration of ``runs`` (rows
    of the runs table or of ``per_run``) whose rings and workers outnumbered the CPUs they could
    use: the per-run fact (``rings_share_cores``, ``cpus_available``) where the run recorded it,
    else ``cores`` (the machine's, for datasets recorded before those columns); [] when none."""
    notes = []
    for r in runs.itertuples():
        cpus, shares, _ = _cores_fact(r, cores)
        if shares:
            rings, workers = int(getattr(r, "rings", 0) or 0), int(getattr(r, "workers", 0) or 0)
            notes.append(shared_cores_note(rings, workers, cpus) or
                         f"{rings} rings and {workers} workers on {cpus} CPUs: rings share cores")
    return list(dict.fromkeys(notes))


def shared_cores_sentence(runs, cores: int | None = None) -> str:
    """One sentence for a dataset's labels: in how many of ``runs`` the rings shared cores, and as
    what (``3 of 12 runs had more rings than CPUs (4 rings on 2 CPUs: rings share cores).``); ""
    when none."""
    facts = [_cores_fact(r, cores) for r in runs.itertuples()]
    n = sum(shares for _, shares, _ in facts)
    if not n:
        return ""
    how = "" if any(recorded for *_, recorded in facts) else \
        f", counted from the machine's {cores} cores (the runs predate the per-run fact)"
    return (f"{n} of {len(facts)} runs had more rings than CPUs "
            f"({'; '.join(shared_cores_notes(runs, cores))}){how}.")


def receiver_cpus(runs) -> list[int]:
    """The distinct CPU counts the runs' receivers could use (``runs.cpus_available``), smallest
    first; [] when no run recorded it."""
    if "cpus_available" not in getattr(runs, "columns", ()):
        return []
    return sorted({int(c) for c in runs["cpus_available"].dropna() if int(c) >= 0})
