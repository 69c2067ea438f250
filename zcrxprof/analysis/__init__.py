"""Analysis: plain functions over the dataset's frames (pandas); statistics apart in ``stats``.

Start with ``frames = load(path)`` and ``runs = per_run(frames)``; every other function takes one of
those two and returns a DataFrame.
"""
from zcrxprof.analysis.load import Frames, emulation_note, label, load, pick
from zcrxprof.analysis.runs import background_load, per_run

__all__ = ["Frames", "background_load", "emulation_note", "label", "load", "per_run", "pick"]
