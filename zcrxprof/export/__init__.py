"""Exports of datasets to other tools' formats (pyperf, Perfetto)."""
