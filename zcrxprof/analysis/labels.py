"""The one-line description every figure and table carries: backend, kernel, machine, and whether
timings were emulated."""
from __future__ import annotations

from zcrxprof.dataset import Dataset
from zcrxprof.vocab import is_emulated_timing, is_zero_copy, split_emulated


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
