"""Analysis: plain functions over a loaded ``Dataset`` (pandas); statistics apart in ``stats``.

Start with ``ds = zcrxprof.dataset.load(path)`` (or ``zcrxprof.open``) and ``runs = per_run(ds)``;
every other function takes one of those two and returns a DataFrame.
"""
from zcrxprof.analysis.labels import emulation_note, label
from zcrxprof.analysis.runs import background_load, per_run

__all__ = ["background_load", "emulation_note", "label", "per_run"]
