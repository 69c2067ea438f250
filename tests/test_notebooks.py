"""The notebooks are committed without outputs, parameterised for papermill, and execute against
the committed datasets with their verdict cells' assertions holding."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import papermill
import pytest

from zcrxprof import dataset

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["01-cover-letter-motivation.ipynb", "02-topology-comparison.ipynb", "03-kernel-view.ipynb"]


@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs_and_with_a_parameters_cell(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: outputs committed"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "dataset" in tagged[0].source
    assert any("assert " in c.source for c in nb.cells if c.cell_type == "code"), "no verdict assertion"


@pytest.mark.parametrize("name,data", [
    ("01-cover-letter-motivation.ipynb", "host-copy-4topo"),
    ("02-topology-comparison.ipynb", "host-copy-4topo"),
    ("03-kernel-view.ipynb", "lab-nodev-4topo-kprobes"),
])
def test_executes_against_the_committed_dataset(name, data, tmp_path):
    path = dataset.resolve(data)
    out = tmp_path / name
    papermill.execute_notebook(str(NOTEBOOKS / name), str(out), parameters={"dataset": str(path)},
                               cwd=str(NOTEBOOKS), progress_bar=False, log_output=False,
                               kernel_name="python3")
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if "image/png" in o.get("data", {})]
    assert images, "no figure rendered"
    markdown = "".join(str(o.get("data", {}).get("text/markdown", "")) for c in nb.cells
                       if c.cell_type == "code" for o in c.outputs)
    assert str(path.name) in markdown  # the dataset it ran on is named in the output


def test_a_verdict_cell_fails_when_the_data_contradicts_it(tmp_path):
    # a notebook pointed at a dataset without the claimed effect must fail, not print a verdict:
    # a copy of the host dataset where `single` is made the fastest: 02's verdict cell must fail
    import shutil

    import pandas as pd

    src = dataset.resolve("host-copy-4topo")
    bad = tmp_path / "contradiction"
    shutil.copytree(src, bad)
    runs = pd.read_parquet(bad / "runs.parquet")
    runs.loc[runs["topology"] == "single", "gbit_s"] = runs["gbit_s"].max() * 10
    runs.to_parquet(bad / "runs.parquet", index=False)
    with pytest.raises(papermill.PapermillExecutionError, match="AssertionError"):
        papermill.execute_notebook(str(NOTEBOOKS / NAMES[1]), str(tmp_path / "out.ipynb"),
                                   parameters={"dataset": str(bad)}, cwd=str(NOTEBOOKS),
                                   progress_bar=False, log_output=False, kernel_name="python3")


def _with_profile(tmp_path: Path, sched_topology: str | None) -> Path:
    """A copy of the host dataset given a small profile: in every run the receiving threads mostly
    run the work function, and ``sched_topology``'s spend 8 % of their samples in the scheduler (1 %
    elsewhere); None: an empty profile."""
    import shutil

    import pandas as pd

    from zcrxprof import schema

    out = tmp_path / "profiled"
    shutil.copytree(dataset.resolve("host-copy-4topo"), out)
    runs = pd.read_parquet(out / "runs.parquet")
    rows = []
    for run in runs.itertuples() if sched_topology else ():
        sched = 8 if run.topology == sched_topology else 1
        for thread, stack, samples in (("rx0", "start_thread;ring_main;consume;work_busy", 91 - sched),
                                       ("rx0", "start_thread;io_uring_enter_[k];schedule_[k]", sched)):
            rows.append({"run_id": run.run_id, "thread": thread, "tid": 1, "event": "cpu-clock",
                         "stack": stack, "symbol": stack.rsplit(";", 1)[-1].removesuffix("_[k]"),
                         "dso": "", "space": "kernel" if stack.endswith("_[k]") else "user",
                         "samples": samples, "share": samples / 91})
    frame = schema.conform("profile", pd.DataFrame(rows)) if rows else schema.empty_frame("profile")
    frame.to_parquet(out / "profile.parquet", index=False)
    return out


def _run_02(path: Path, out: Path) -> None:
    papermill.execute_notebook(str(NOTEBOOKS / NAMES[1]), str(out), parameters={"dataset": str(path), "sweep": ""},
                               cwd=str(NOTEBOOKS), progress_bar=False, log_output=False, kernel_name="python3")


@pytest.mark.parametrize("case", ["no profile", "claim holds", "claim contradicted"])
def test_02_profile_section_states_or_checks_where_receive_time_goes(case, tmp_path):
    path = _with_profile(tmp_path, {"no profile": None, "claim holds": "workers", "claim contradicted": "single"}[case])
    out = tmp_path / "out.ipynb"
    if case == "claim contradicted":
        with pytest.raises(papermill.PapermillExecutionError, match="AssertionError") as err:
            _run_02(path, out)
        assert 'assert handoff["workers"] > handoff["single"]' in str(err.value)
        return
    _run_02(path, out)
    cell = next(c for c in nbformat.read(out, as_version=4).cells
                if c.cell_type == "code" and "plot_icicle" in c.source)
    kinds = [k for o in cell.outputs for k in o.get("data", {})]
    statement = "".join(str(o.get("data", {}).get("text/markdown", "")) for o in cell.outputs)
    if case == "no profile":
        name = json.loads((path / "metadata.json").read_text())["name"]
        assert f"No perf profile in `{name}`" in statement and "image/png" not in kinds
    else:
        assert "image/png" in kinds and "text/html" in kinds and not statement
