"""`zcrxprof report`: one self-contained HTML file, escaped, rendered offline by headless Chromium
(Debian's `chromium`) with a screenshot, no request leaving the page and no console message."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zcrxprof import dataset

HOST = dataset.resolve("host-copy-4topo")  # the committed four-topology recording (datasets/README.md)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HOSTILE = "<script>alert('x')</script><img src=http://127.0.0.1:9/leak>"


def zcrxprof(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zcrxprof", *args], capture_output=True, text=True, timeout=300)


def render(page: Path, workdir: Path) -> dict:
    """Open ``page`` in headless Chromium; return screenshot path, console lines and the URLs the
    page itself asked the network for (from Chromium's net log; every host resolves to nothing)."""
    shot, netlog = workdir / "shot.png", workdir / "net.json"
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={workdir / 'profile'}", "--enable-logging=stderr", "--v=0",
         f"--log-net-log={netlog}", "--host-resolver-rules=MAP * ~NOTFOUND",
         f"--screenshot={shot}", "--window-size=1200,2400", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    log = json.loads(netlog.read_text())
    kinds = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    page_requests = []
    for ev in log["events"]:
        params = ev.get("params") or {}
        if kinds.get(ev["type"]) == "URL_REQUEST_START_JOB" and "file://" in params.get("network_isolation_key", ""):
            page_requests.append(params.get("url"))
    return {"shot": shot, "console": console, "requests": page_requests}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    proc = zcrxprof("report", str(HOST), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    return out


def test_report_is_self_contained(report):
    text = report.read_text()
    assert "<script" not in text.lower()
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"' >]+)""", text, flags=re.I)
    assert refs and all(r.startswith("data:") for r in refs), [r for r in refs if not r.startswith("data:")][:3]
    assert "Content-Security-Policy" in text
    for section in ("Verdict", "Throughput and saturation", "Context switches", "Cache effects",
                    "Capacity model", "Probe attach report", "Metadata"):
        assert section in text


def test_report_names_labels_and_never_claims_zero_copy_for_copy(report):
    text = report.read_text()
    frames_meta = json.loads((HOST / "metadata.json").read_text())
    assert frames_meta["name"] in text
    if frames_meta["backend"] != "zcrx":
        assert "not zero-copy" in text
        assert "(zero-copy)" not in text


PROFILE_SECTION = "Where receive time goes (perf record)"


def _section(text: str, title: str) -> str:
    """The HTML of the report section titled ``title``."""
    match = re.search(rf"<section><h2>{re.escape(title)}</h2>(.*?)</section>", text, flags=re.S)
    assert match, f"no section {title!r}"
    return match.group(1)


def _rows(html_text: str) -> list[list[str]]:
    """The cell texts of every table body row in ``html_text``."""
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", html_text, flags=re.S)]
    return [r for r in rows if r]


def test_report_has_the_profile_section(report):
    """The shipped host dataset was recorded with --profile: its icicle graph and breakdown."""
    section = _section(report.read_text(), PROFILE_SECTION)
    name = json.loads((HOST / "metadata.json").read_text())["name"]
    assert f'<img alt="icicle graph {name}" src="data:image/png;base64,' in section
    assert "<table>" in section and "work function (checksum, busy, verify)" in section


def _report_with_empty(tmp_path: Path, table: str) -> tuple[Path, str]:
    """A copy of the host dataset whose ``table`` is empty (schema kept), and its report's HTML."""
    from zcrxprof import schema

    copy = tmp_path / f"empty-{table}"
    shutil.copytree(HOST, copy)
    schema.empty_frame(table).to_parquet(copy / f"{table}.parquet", index=False)
    proc = zcrxprof("report", str(copy), "-o", str(tmp_path / "r.html"))
    assert proc.returncode == 0, proc.stderr
    return copy, (tmp_path / "r.html").read_text()


def test_a_dataset_without_a_profile_says_how_to_get_one(tmp_path):
    section = _section(_report_with_empty(tmp_path, "profile")[1], PROFILE_SECTION)
    assert "No perf profile in this dataset (record --profile)." in section and "<img" not in section


def test_a_profiled_dataset_reports_its_breakdown_and_icicle_graph(tmp_path):
    # a copy of the host dataset given a profile: per run, rx0 has 9 samples in the work function
    # and 1 in the scheduler
    import pandas as pd

    from zcrxprof import schema

    copy = tmp_path / "profiled"
    shutil.copytree(HOST, copy)
    runs = pd.read_parquet(copy / "runs.parquet")
    rows = [{"run_id": r, "thread": "rx0", "tid": 1, "event": "cpu-clock", "stack": stack, "symbol": leaf,
             "dso": "", "space": space, "samples": n, "share": n / 10}
            for r in runs["run_id"]
            for stack, leaf, space, n in (("start_thread;ring_main;consume;work_busy", "work_busy", "user", 9),
                                          ("start_thread;io_uring_enter_[k];schedule_[k]", "schedule", "kernel", 1))]
    schema.conform("profile", pd.DataFrame(rows)).to_parquet(copy / "profile.parquet", index=False)
    proc = zcrxprof("report", str(copy), "-o", str(tmp_path / "r.html"))
    assert proc.returncode == 0, proc.stderr
    section = _section((tmp_path / "r.html").read_text(), PROFILE_SECTION)
    name = json.loads((copy / "metadata.json").read_text())["name"]
    assert f'<img alt="icicle graph {name}" src="data:image/png;base64,' in section
    assert "No perf profile" not in section
    table = {(r[0], r[5]): (r[6], r[7]) for r in _rows(section)}
    ok = runs[(runs["status"] == "ok") & (runs["verify_errors"] <= 0)].groupby("topology").size()
    assert len(ok) and len(table) == 2 * len(ok)
    for topology, n in ok.items():
        assert table[(topology, "work function (checksum, busy, verify)")] == (str(9 * n), "0.9")
        assert table[(topology, "scheduler")] == (str(n), "0.1")


def test_report_renders_offline_in_chromium(report, tmp_path):
    result = render(report, tmp_path)
    assert result["requests"] == []
    assert result["console"] == []
    png = result["shot"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # a page with figures, not a blank one


def test_the_render_check_catches_requests_and_console_errors(tmp_path):
    # control: the same check on a page that does both must see both
    bad = tmp_path / "bad.html"
    bad.write_text('<!doctype html><img src="http://127.0.0.1:9/x.png"><script>console.error("boom")</script>')
    result = render(bad, tmp_path)
    assert any("127.0.0.1:9" in u for u in result["requests"])
    assert any("boom" in line for line in result["console"])


def test_dataset_strings_are_escaped(tmp_path):
    copy = tmp_path / "hostile"
    shutil.copytree(HOST, copy)
    meta = json.loads((copy / "metadata.json").read_text())
    meta["command_line"] = HOSTILE
    meta["notes"] = [HOSTILE]
    (copy / "metadata.json").write_text(json.dumps(meta))
    proc = zcrxprof("report", str(copy))
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "hostile.report.html"   # default: next to the dataset
    text = out.read_text()
    assert HOSTILE not in text and "<script" not in text.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    result = render(out, tmp_path)
    assert result["requests"] == [] and result["console"] == []


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    proc = zcrxprof("report", str(tmp_path / "missing"))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    proc = zcrxprof("report")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_unwritable_output_is_one_line_and_exit_1(tmp_path):
    proc = zcrxprof("report", str(HOST), "-o", str(tmp_path / "no" / "such" / "dir" / "r.html"))
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_a_dataset_without_successful_runs_still_reports(tmp_path):
    # a copy of the host dataset with every run marked failed (as a recording that broke would be)
    import pandas as pd

    copy = tmp_path / "broken"
    shutil.copytree(HOST, copy)
    runs = pd.read_parquet(copy / "runs.parquet")
    runs["status"] = "failed"
    runs["error"] = "receiver: <died> & gone"
    runs.to_parquet(copy / "runs.parquet", index=False)
    proc = zcrxprof("report", str(copy), "-o", str(tmp_path / "r.html"))
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "r.html").read_text()
    assert "No successful run" in text and "receiver: &lt;died&gt; &amp; gone" in text
    assert "Verdict" not in text
    proc = zcrxprof("export", "--pyperf", str(tmp_path / "x.json"), str(copy))
    assert proc.returncode == 1 and "no successful run" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_unexpected_thread_roles_and_names_still_report(tmp_path):
    # a dataset from another load generator: no thread has the role `rx`
    import pandas as pd

    copy = tmp_path / "foreign"
    shutil.copytree(HOST, copy)
    threads = pd.read_parquet(copy / "threads.parquet")
    threads["role"] = "receiver"
    threads.to_parquet(copy / "threads.parquet", index=False)
    proc = zcrxprof("report", str(copy), "-o", str(tmp_path / "r.html"))
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "r.html").read_text()
    # no receiving thread's CPU time: the capacity model says it cannot be built (was a ZeroDivisionError)
    assert "No single runs with a measurable receive cost per byte" in text


def test_a_dataset_without_proc_stat_samples_reports_softirq_as_not_measured(tmp_path):
    # a copy of the host dataset recorded without /proc samples: its system table is empty (schema kept)
    import pandas as pd

    from zcrxprof import analysis, plots

    copy, html = _report_with_empty(tmp_path, "system")
    costs = _section(html, "Context switches and CPU per GB")
    assert '<img alt="cost per GB" src="data:image/png;base64,' in costs
    runs = analysis.per_run(dataset.load([copy]))
    assert len(runs) and runs["softirq_s"].isna().all() and runs["busy_s"].isna().all()
    assert pd.api.types.is_float_dtype(runs["cpu_s_per_gb_softirq"])       # NaN, not an object column
    assert runs["cpu_s_per_gb_user"].notna().all()
    legend = [t.get_text() for t in plots.costs_per_gb(runs, "x").axes[0].get_legend().get_texts()]
    assert legend == ["user", "sys", "softirq (not measured: no /proc/stat samples)"]


def test_show_report_and_export_count_the_same_usable_runs(tmp_path):
    # a run that ended ok but whose payload failed verification is not usable: show, the report and
    # export all leave it out (docs/dataset.md, "Usable runs")
    import pandas as pd
    import pyperf

    copy = tmp_path / "verify"
    shutil.copytree(HOST, copy)
    runs = pd.read_parquet(copy / "runs.parquet")
    bad = runs.index[runs["topology"] == "single"][0]
    runs.loc[bad, "verify_errors"] = 5
    runs.to_parquet(copy / "runs.parquet", index=False)
    usable = f"{len(runs) - 1} of {len(runs)} runs usable"
    singles = int((runs["topology"] == "single").sum()) - 1

    show = zcrxprof("show", str(copy))
    assert show.returncode == 0, show.stderr
    assert usable in show.stdout
    shown = [json.loads(line) for line in zcrxprof("show", str(copy), "--json").stdout.splitlines()]
    assert sum(r["runs"] for r in shown) == len(runs) - 1
    assert [r["runs"] for r in shown if r["topology"] == "single"] == [singles]

    out = tmp_path / "r.html"
    assert zcrxprof("report", str(copy), "-o", str(out)).returncode == 0
    assert usable in out.read_text()

    exported = tmp_path / "e.json"
    assert zcrxprof("export", "--pyperf", str(exported), str(copy)).returncode == 0
    suite = pyperf.BenchmarkSuite.load(str(exported))
    counts = {b.get_name(): b.get_nrun() for b in suite.get_benchmarks() if b.get_name().endswith("time per byte")}
    assert sum(counts.values()) == len(runs) - 1
    assert [n for name, n in counts.items() if name.startswith("single ")] == [singles]
