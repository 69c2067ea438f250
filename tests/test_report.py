"""`zcrxprof report`: one self-contained HTML file, escaped, the claims first, details folded, one-line
errors. How it renders in a browser (1280 px, images, no request, no console message):
tests/test_report_browser.py."""
from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pytest

from inprocess import zcrxprof
from zcrxprof import dataset

HOST = dataset.resolve("host-copy-4topo")  # the committed four-topology recording (datasets/README.md)

HOSTILE = "<script>alert('x')</script><img src=http://127.0.0.1:9/leak>"


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
    outside = [r for r in refs if not (r.startswith("data:") or re.fullmatch(r"#s-[a-z0-9-]+", r))]
    assert refs and outside == [], outside[:3]
    assert "Content-Security-Policy" in text
    for link in re.findall(r'href="#(s-[a-z0-9-]+)"', text):     # the contents list points at sections
        assert f'id="{link}"' in text
    for section in ("Throughput and saturation", "Context switches", "Cache effects", "Kernel probes",
                    "Capacity model", "Probe attach report", "Metadata"):
        assert section in text


def test_the_first_screen_answers_the_four_claims_with_labels(report):
    """Before the contents list: per dataset the labels and the four claims of `zcrxprof summary`,
    each with its verdict and numbers; every figure has a caption; the details are folded."""
    from zcrxprof.analysis.claims import df_claims

    text = report.read_text()
    first = text[:text.index("<nav>")]
    claims = df_claims(dataset.load([HOST]))
    assert sorted(set(claims["claim"])) == [1, 2, 3, 4]
    for _, c in claims.drop_duplicates("claim").iterrows():
        assert html.escape(c["title"], quote=True) in first and html.escape(c["reason"], quote=True) in first
        assert f'v-{c["verdict"].replace(" ", "-")}' in first
        if c["note"]:
            assert html.escape(c["note"], quote=True) in first
    meta = json.loads((HOST / "metadata.json").read_text())
    cores = meta["machine"]["cores"]
    assert f"{cores} cores" in first and "kernel " in first and "place host" in first and "timing real" in first
    single = claims[(claims["claim"] == 1) & (claims["quantity"] == "single Gbit/s")].iloc[0]
    assert f"single Gbit/s: {single['median']:.2f} (95% CI {single['ci_lo']:.2f}-{single['ci_hi']:.2f})" in first
    assert text.count("<figure>") == text.count("<figcaption>") >= 5
    details = text[text.index('id="s-details"'):]
    for folded in ("Runs (every run", "Probe attach report", "Metadata", "Every kernel probe counter"):
        assert f"<summary>{folded}" in details


def test_tables_show_constant_columns_once_and_fold_wide_ones():
    import pandas as pd

    from zcrxprof.report import html as h

    frame = pd.DataFrame({"topology": ["single", "workers"], "kernel": ["6.18", "6.18"],
                          **{f"metric_{i}": [1.0, 2.0] for i in range(12)}})
    out = h.table(frame)
    assert out.count("<table>") == 1 and "On every row: kernel: 6.18" in out
    assert "<th>kernel</th>" not in out and "<th>column</th>" in out       # 2 rows, 13 columns: transposed
    tall = pd.concat([frame] * 3, ignore_index=True).assign(topology=[f"t{i}" for i in range(6)])
    out = h.table(tall)
    assert out.count("<table>") == 2 and out.count("<th>topology</th>") == 2   # folded, the label repeated
    assert all(len(re.findall("<th>", t)) <= h.MAX_COLUMNS for t in out.split("<table>")[1:])


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
    match = re.search(rf"<section[^>]*><h2>{re.escape(title)}</h2>(.*?)</section>", text, flags=re.S)
    assert match, f"no section {title!r}"
    return match.group(1)


def _tables(html_text: str) -> list[list[dict[str, str]]]:
    """Every table in ``html_text`` as a list of {header: cell text} rows."""
    out = []
    for t in re.findall(r"<table[^>]*>(.*?)</table>", html_text, flags=re.S):
        heads = [re.sub(r"<[^>]+>", "", x) for x in re.findall(r"<th>(.*?)</th>", t)]
        out.append([dict(zip(heads, r)) for r in _rows(t)])
    return out


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
    tables = _tables(section)
    samples = next(t for t in tables if t and "samples" in t[0])
    table = {(r["topology"], r["category"]): (r["samples"], r["share"]) for r in samples}
    ok = runs[(runs["status"] == "ok") & (runs["verify_errors"] <= 0)].groupby("topology").size()
    assert len(ok) and len(table) == 2 * len(ok)
    for topology, n in ok.items():
        assert table[(topology, "work function (checksum, busy, verify)")] == (str(9 * n), "0.9")
        assert table[(topology, "scheduler")] == (str(n), "0.1")
    shares = {r["category"]: r for r in next(t for t in tables if t and "category" in t[0] and "samples" not in t[0])}
    assert set(shares) == {"work function (checksum, busy, verify)", "scheduler"}
    for topology in ok.index:       # one column per topology: the categories at a glance
        assert shares["scheduler"][topology] == "0.1"


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
    assert not re.search(r"class=\"v v-", text)     # no claim verdict without a usable run
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


def test_claim_4_reads_pmu_cache_misses_where_perf_counted_them(tmp_path):
    # a copy of the host dataset given counted cache-misses: 10 per KiB on the ring threads of the
    # topologies that work where they receive, 30 per KiB on the workers of `workers`
    import pandas as pd

    from zcrxprof import schema
    from zcrxprof.analysis import per_run
    from zcrxprof.analysis.claims import SUPPORTED, df_claims

    copy = tmp_path / "pmu"
    shutil.copytree(HOST, copy)
    runs = per_run(dataset.load([copy]))
    rows = []
    for r in runs.itertuples():
        thread, kib, rate = (("worker0", r.worker_bytes / 1024, 30.0) if r.topology == "workers"
                             else ("rx0", r.rx_bytes / 1024, 10.0))
        rows.append({"run_id": r.run_id, "t": 1.0, "thread": thread, "tid": 1, "interval_s": 1.0,
                     "event": "cache-misses", "value": rate * kib, "unit": "", "running_pct": 100.0,
                     "status": "counted"})
    schema.conform("perf_counters", pd.DataFrame(rows)).to_parquet(copy / "perf_counters.parquet", index=False)
    four = df_claims(dataset.load([copy]))
    four = four[four["claim"] == 4].set_index("quantity")
    assert four["verdict"].iloc[0] == SUPPORTED and "cache-misses per KiB (PMU)" in four["title"].iloc[0]
    assert four.loc["hot cache-misses/KiB", "median"] == pytest.approx(10.0)
    assert four.loc["cold cache-misses/KiB", "median"] == pytest.approx(30.0)
    assert four.loc["cold/hot", "median"] == pytest.approx(3.0) and four.loc["cold/hot", "p_value"] < 0.05


def test_the_capacity_model_shows_the_published_input_beside_the_measured_one(report):
    from zcrxprof.analysis import capacity

    published = capacity.published_costs(2048.0)
    assert published.recv == published.softirq == pytest.approx(8 / 116.2) and published.work == 2.0
    assert published.handoff == published.sync == published.tx == 0.0
    measured = capacity.Costs(recv=1.0, work=2.0, softirq=0.5, tx=0.1, handoff=0.7, sync=0.2, source="x")
    both = capacity.extrapolate_side_by_side(measured, published, 64, 200.0, 8, [1, 2, 4])
    alone = capacity.extrapolate(published, 64, 200.0, 8, [1, 2, 4])
    # never mixed: the published column is what the published input predicts on its own
    assert both["published_gbit_s"].tolist() == alone["predicted_gbit_s"].tolist()
    assert (both["measured_gbit_s"] < both["published_gbit_s"]).all()
    section = _section(report.read_text(), "Capacity model")
    assert "116.2 Gbit/s single flow on a 200G bnxt NIC" in section and "zcrx v1 cover letter" in section
    assert '<img alt="extrapolation from both inputs"' in section


def test_runs_whose_rings_share_cores_say_so_in_the_report_and_summary(tmp_path):
    """Each run's own fact (runs.rings_share_cores, cpus_available) is said next to its numbers:
    the labels, the claims' notes, the shared-ifq ratio lines, the Runs table and `zcrxprof summary`."""
    import pandas as pd

    from zcrxprof.analysis import per_run
    from zcrxprof.cli.summary import render as summary_text
    from zcrxprof.analysis.claims import df_claims
    from zcrxprof.report import render

    copy = tmp_path / "pinned"
    shutil.copytree(HOST, copy)
    runs = pd.read_parquet(copy / "runs.parquet")
    assert "cpus_available" not in runs            # recorded before the fact: the machine's cores count
    runs["cpus_available"] = 1                     # as if the receiver ran under taskset -c 0
    runs["rings_share_cores"] = runs["rings"] + runs["workers"] > 1
    runs.to_parquet(copy / "runs.parquet", index=False)
    ds = dataset.load(copy)
    assert ds.runs["rings_share_cores"].any() and not ds.runs["rings_share_cores"].all()
    shared = int(ds.runs["rings_share_cores"].sum())
    labels = (f"{shared} of {len(runs)} runs had more rings than CPUs (1 ring and 1 worker on 1 CPU: rings and "
              f"workers share cores; 1 ring and 2 workers on 1 CPU: rings and workers share cores; 2 rings on 1 CPU: "
              f"rings share cores).")
    name = ds.names[0]
    parts, per = {name: ds}, {name: per_run(ds)}
    first = html.unescape(render._answer(parts, per))
    assert labels in first and "(the receiver could use 1)" in first
    assert "2 rings on 1 CPU: rings share cores</span>" in first      # claim 3's note, under its numbers
    assert "counted from the machine" not in first
    lines = " ".join(html.unescape(p) for p in render._throughput(per[name], ds, "lab"))
    assert re.search(r"shared-ifq with 2 rings \(\d+ runs\) against single: x[\d.]+ Gbit/s \(95% CI [^)]*\)"
                     r" — 2 rings on 1 CPU: rings share cores\.", lines)
    runs_table = render._details(ds, parts, per).replace("<wbr>", "")
    assert "cpus_available: 1" in runs_table and "rings_share_cores" in runs_table
    text = " ".join(" ".join(summary_text(ds, df_claims(ds))).split())
    assert labels in text and "the receiver could use 1 of them" in text
    assert "Note: 2 rings on 1 CPU: rings share cores" in text
