"""Every table and column of a zcrxprof dataset, defined once (docs/dataset.md is generated here).

A dataset is ``datasets/<name>/metadata.json`` plus one parquet file per table. ``run_id`` joins the
tables; the labels every number needs (backend, topology, kernel, emulated or not) live in ``runs``.

Regenerate the documentation with ``python -m zcrxprof.schema > docs/dataset.md``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import pandas as pd

from zcrxprof.vocab import ACCELERATORS, BACKENDS, PLACES, TOPOLOGIES, is_zero_copy

SCHEMA_VERSION = 1


def _either(words) -> str:
    """``a``, ``b`` or ``c`` (markdown code)."""
    quoted = [f"`{w}`" for w in words]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1] if len(quoted) > 1 else quoted[0]


ZERO_COPY = _either([b for b in BACKENDS if is_zero_copy(b)])
NOT_ZERO_COPY = _either([b for b in BACKENDS if not is_zero_copy(b)])

# dtype names used below -> how pandas checks a column of that kind.
DTYPES = ("int64", "float64", "bool", "string", "timestamp")


@dataclass(frozen=True)
class Column:
    """One column: name, dtype (one of DTYPES), unit ("" when dimensionless), description."""

    name: str
    dtype: str
    unit: str
    description: str


@dataclass(frozen=True)
class Table:
    """One table: name, what one row is, and its columns in order."""

    name: str
    row: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> list[str]:
        """The column names, in order."""
        return [c.name for c in self.columns]


def _c(name: str, dtype: str, unit: str, description: str) -> Column:
    return Column(name, dtype, unit, description)


RUN_ID = _c("run_id", "int64", "", "the run (0-based, in recording order); joins every table to `runs`")
T = _c("t", "float64", "s", "time since the run's load generator started")
THREAD = _c("thread", "string", "", "thread name given by the load generator (`rx0`, `worker1`, `tx0`, …)")
TID = _c("tid", "int64", "", "kernel thread id (-1 when not per thread)")
HOST = _c("host", "string", "", "host name the thread ran on: the receiver's, or a remote sender's "
          "(`record --peer`, docs/peers.md); their `t` is on the receiver's time line, shifted by "
          "the measured clock offset (empty in datasets recorded before this column)")

# The per-thread counters of the load generator, shared by `intervals` (deltas) and `threads` (totals).
_THREAD_COUNTERS = (
    _c("role", "string", "", "`rx` (receives from a ring), `worker` (works on handed-over buffers) or `tx` (sends)"),
    _c("ring", "int64", "", "io_uring ring index this thread drives (-1 if none)"),
    _c("bytes", "int64", "B", "payload bytes received (rx), worked on (worker) or sent (tx)"),
    _c("completions", "int64", "", "CQEs reaped"),
    _c("bufs_returned", "int64", "", "buffers given back (provided-buffer ring or zcrx refill ring)"),
    _c("enobufs", "int64", "", "multishot receives that ended because no buffer was available"),
    _c("rearms", "int64", "", "multishot receives re-armed"),
    _c("utime_ns", "int64", "ns", "user CPU time (getrusage RUSAGE_THREAD)"),
    _c("stime_ns", "int64", "ns", "system CPU time (getrusage RUSAGE_THREAD)"),
    _c("nvcsw", "int64", "", "voluntary context switches"),
    _c("nivcsw", "int64", "", "involuntary context switches"),
    _c("work_ns", "int64", "ns", "time spent in the work model (checksum + calibrated busy cost)"),
    _c("cpu", "int64", "", "last CPU the thread was seen on"),
)

TABLES: dict[str, Table] = {t.name: t for t in (
    Table("runs", "one run of the load generator (one topology, one parameter set, one repetition)", (
        RUN_ID,
        _c("repetition", "int64", "", "repetition index of this parameter set (0-based; runs are interleaved)"),
        _c("topology", "string", "", _either(TOPOLOGIES)),
        _c("backend", "string", "", f"{_either(BACKENDS)} — only {ZERO_COPY} is zero copy"),
        _c("zero_copy", "bool", "", f"true only when the payload was received zero-copy (backend {ZERO_COPY})"),
        _c("emulated", "string", "", "what this run emulates, `; `-separated (empty when nothing); "
                                     "e.g. the copy backend's `shared-ifq`, or a TCG guest's timing"),
        _c("kernel", "string", "", "kernel release the run measured (`uname -r` where it ran)"),
        _c("place", "string", "", f"{_either(PLACES)} (inside the kernel lab guest)"),
        _c("accelerator", "string", "", f"lab guest accelerator, {_either(ACCELERATORS)} (emulated timing); empty on the host"),
        _c("rings", "int64", "", "io_uring rings (receiver threads) requested"),
        _c("workers", "int64", "", "worker threads (topology `workers`; 0 otherwise)"),
        _c("cpus_available", "int64", "", "CPUs the receiver's rings and workers could run on (its `--rx-cpus`, "
           "else its affinity mask: `taskset`, cpuset cgroups), as the receiving load generator counted them; "
           "-1 when unknown (a run without a receiver record, or recorded before this column)"),
        _c("rings_share_cores", "bool", "", "more receiving threads (rings + workers) than `cpus_available`: "
           "they took turns on the CPUs, so the run is not a figure of that many cores (report and "
           "`summary`: `4 rings on 2 CPUs: rings share cores`); false when unknown"),
        _c("connections", "int64", "", "TCP connections"),
        _c("work_ns_per_kib", "float64", "ns/KiB", "calibrated busy cost added per KiB received, on top of the checksum"),
        _c("rate_gbit_s", "float64", "Gbit/s", "offered load (sender rate limit); 0 = unlimited"),
        _c("duration_s", "float64", "s", "requested run length"),
        _c("sender", "string", "", "where the sender ran: `netns` (own namespace, veth), `local` (same process, loopback) or `peers` (remote hosts over SSH, metadata `peers`)"),
        _c("started_at", "timestamp", "UTC", "wall-clock start of the run"),
        _c("elapsed_s", "float64", "s", "wall-clock length of the run as seen by the collector"),
        _c("status", "string", "", "`ok`, `failed` (load generator died or reported an error) or `interrupted`"),
        _c("error", "string", "", "why the run failed: the load generator's error line and stderr (empty if ok)"),
        _c("exit_code", "int64", "", "load generator exit status (-N: killed by signal N)"),
        _c("bytes_sent", "int64", "B", "payload bytes sent (load generator summary)"),
        _c("bytes_received", "int64", "B", "payload bytes received (load generator summary)"),
        _c("gbit_s", "float64", "Gbit/s", "receive throughput over the run (load generator summary)"),
        _c("verify_errors", "int64", "", "payload verification mismatches"),
        _c("loadgen_duration_s", "float64", "s", "run length measured by the load generator"),
    )),
    Table("intervals", "one thread over one reporting interval (load generator `interval` records); counters are deltas", (
        RUN_ID, T, THREAD, TID, HOST,
        *_THREAD_COUNTERS[:2],
        _c("interval_s", "float64", "s", "length of this interval"),
        *_THREAD_COUNTERS[2:5],
        _c("refill_backlog", "int64", "", "buffers handed back but not yet taken by the kernel (instantaneous)"),
        *_THREAD_COUNTERS[5:],
        _c("tcp_retrans", "int64", "", "tx: TCP segments retransmitted in this interval on the thread's connections "
           "(TCP_INFO `tcpi_total_retrans` delta, summed); -1 for other roles and datasets recorded before this column"),
        _c("tcp_rtt_us", "int64", "µs", "tx: smoothed RTT (TCP_INFO `tcpi_rtt`) at the end of the interval, mean over "
           "the thread's connections; -1 when not measured"),
        _c("tcp_rtt_max_us", "int64", "µs", "tx: the same, the largest over the thread's connections; -1 when not measured"),
    )),
    Table("threads", "one thread over a whole run (load generator `summary` totals)", (
        RUN_ID, THREAD, TID, HOST, *_THREAD_COUNTERS,
    )),
    Table("registrations", "one ring's backend registration (load generator `registration` records)", (
        RUN_ID,
        _c("ring", "int64", "", "io_uring ring index"),
        _c("zcrx_id", "int64", "", "zcrx id returned by the kernel for this ring (-1 for the copy backend)"),
        _c("ifq", "int64", "", "index of the underlying interface queue (shared by rings that imported it)"),
        _c("exported", "bool", "", "this ring exported its ifq (ZCRX_CTRL_EXPORT)"),
        _c("imported", "bool", "", "this ring imported another ring's ifq (ZCRX_REG_IMPORT)"),
        _c("rq_entries", "int64", "", "refill ring entries"),
        _c("area_bytes", "int64", "B", "registered area size"),
        _c("rx_buf_len", "int64", "B", "receive buffer (niov) size"),
        _c("kernel", "string", "", "kernel release seen by the load generator"),
    )),
    Table("events", "one zcrx event or statistic reported by the load generator (`event` records)", (
        RUN_ID, T,
        _c("event", "string", "", "`copy` / `alloc_fail`: 7.2 ZCRX_EVENT_COPY / ALLOC_FAIL CQEs since the ring's "
           "previous such record (at most one record per type per interval); `copy_events` / "
           "`alloc_fail_events`: the ring's end-of-run totals of those CQEs (they include the interval "
           "records: never add the two); `stats`: the ifq's 7.2 zcrx_stats at the end of the run, once "
           "per ifq (`count` = copy_count, chunks copied; `bytes` = copy_bytes); `verify_error`: a payload "
           "mismatch (`count` = bad bytes, plus `connection`, `client_port`, `offset`, `expected`, `got`)"),
        _c("ring", "int64", "", "ring that reported the event; the ifq's index for `stats` (-1 if none)"),
        _c("metric", "string", "", "what `value` holds: `count` or `bytes` (0 for CQE events); the fields "
           "named above for `verify_error`"),
        _c("value", "float64", "", "the count; bytes for the `bytes` metric"),
    )),
    Table("probes", "one kernel probe counter at one sample time (cumulative since attach)", (
        RUN_ID, T,
        _c("probe", "string", "", "tool and probe point (e.g. `ringsched:sched_switch`)"),
        TID,
        _c("metric", "string", "", "what `value` counts; a unit suffix names its unit (`_ns`, `_bytes`)"),
        _c("value", "float64", "", "cumulative value since the probe attached"),
    )),
    Table("histograms", "one log2 histogram bucket of a kernel probe, at the end of a run", (
        RUN_ID,
        _c("probe", "string", "", "tool and probe point"),
        TID,
        _c("metric", "string", "", "the distributed quantity; a suffix names its unit (`_ns`, `_bytes`)"),
        _c("lo", "int64", "", "bucket lower bound (inclusive), in the metric's unit"),
        _c("hi", "int64", "", "bucket upper bound (inclusive), in the metric's unit"),
        _c("count", "int64", "", "events in the bucket"),
    )),
    Table("system", "one /proc or /sys value at one sample time (cumulative counters as the kernel reports them)", (
        RUN_ID, T,
        _c("source", "string", "", "`stat` (/proc/stat), `softirqs` (/proc/softirqs), `softnet` "
                                   "(/proc/net/softnet_stat), `netstat` (/proc/net/netstat) or `task` "
                                   "(/proc/<pid>/task/<tid>/status)"),
        _c("entity", "string", "", "what the value belongs to: `cpu3`, `cpu` (all CPUs), `TcpExt`, or a thread name"),
        TID,
        _c("metric", "string", "", "field name as the kernel spells it (`softirq`, `NET_RX`, `processed`, "
                                   "`TCPRcvCoalesce`, `voluntary_ctxt_switches`, …)"),
        _c("value", "float64", "", "the value, in `unit`"),
        _c("unit", "string", "", "`s` for CPU times (converted from clock ticks), empty for counts"),
    )),
    Table("perf_counters", "one `perf stat` counter for one thread over one interval", (
        RUN_ID, T, THREAD, TID,
        _c("interval_s", "float64", "s", "length of this perf interval (`t` is its end)"),
        _c("event", "string", "", "perf event name (`task-clock`, `context-switches`, `sched:sched_switch`, …)"),
        _c("value", "float64", "", "counter value over the interval, in `unit` (NaN when not counted)"),
        _c("unit", "string", "", "unit perf printed (`msec`, empty for counts)"),
        _c("running_pct", "float64", "%", "share of the interval the counter ran (multiplexing)"),
        _c("status", "string", "", "`counted`, `not supported` (e.g. no PMU), `not counted` (thread did not run) "
                                   "or `suppressed` (a BPF program on the tracepoint withheld it from perf)"),
    )),
    Table("profile", "one distinct call stack of one thread, sampled by `perf record -g`", (
        RUN_ID, THREAD, TID,
        _c("event", "string", "", "sampling event (`cpu-clock` here, `cycles` where a PMU exists)"),
        _c("stack", "string", "", "frames root→leaf, `;`-separated (folded stack), kernel frames suffixed `_[k]`"),
        _c("symbol", "string", "", "leaf frame's function (`[unknown]` when perf could not resolve it)"),
        _c("dso", "string", "", "leaf frame's binary or library (`[kernel.kallsyms]` for the kernel)"),
        _c("space", "string", "", "`kernel` or `user`: where the leaf frame ran"),
        _c("samples", "int64", "", "samples with exactly this stack"),
        _c("share", "float64", "", "samples / all profile samples of the run (0–1)"),
    )),
)}

# Keys every metadata.json holds (see docs/dataset.md for their meaning).
METADATA_KEYS: dict[str, str] = {
    "schema_version": "the dataset format version (`SCHEMA_VERSION`)",
    "name": "dataset name (its directory)",
    "complete": "true once the last planned run ended; false while recording or after an interruption",
    "created": "UTC time recording started (ISO 8601)",
    "finished": "UTC time recording ended (ISO 8601), null while recording",
    "zcrxprof": "`{version, git_sha}` of the tool that recorded it",
    "command_line": "the command as typed",
    "machine": "`{cpu_model, cores, memory_bytes, kernel, hostname, arch, loadavg_at_start}` where the runs "
               "executed (a high load average means other work shared the CPUs)",
    "place": f"`{{where: {'|'.join(PLACES)}, accelerator: null|{'|'.join(ACCELERATORS)}, kernel}}` — lab = the "
             "kernel lab guest",
    "backend": f"backend of the runs ({', '.join(f'`{b}`' for b in BACKENDS)})",
    "nic": "null, or for `--backend zcrx` the NIC's state from the receiver's `nic_state` events: `{ifname, driver, "
           "address, port, queue, queues, setup_nic, before, after, restored, runs}` — `address`/`port`: where the "
           "receiver listened (the NIC's IPv4 address; ifq-per-ring ring i on `port`+i), `queue`: the queue of "
           "single/shared-ifq/workers, `queues`: ifq-per-ring's (`--queues`); `before` as found before the first "
           "run, `after` once restored after the last, each `{rx_queues, tcp_data_split, hds_thresh, ntuple, "
           "rss_table_size, rss_entries_on_queue, ntuple_rules, ntuple_rules_to_queue}` (the last three counted "
           "over the run's zcrx queues); `runs`: per run `{run_id, ring_queues, before, after, changed, "
           "restored}` (`ring_queues`: the queue ring i registered; `changed`: what `--setup-nic` changed and "
           "put back; `restored`: every setting after == before)",
    "emulated": "list of what the recording emulates (empty list when nothing)",
    "probes": "probe attach report: one `{tool, target, method, status, reason}` per probe point",
    "plan": "`{topologies, rings, work_ns_per_kib, rate_gbit_s, duration_s, repeat, runs}` as requested",
    "runs_done": "runs written so far",
    "first_sample_at": "UTC time the first sample of the first run was taken (ISO 8601, µs): start-up latency",
    "versions": "external versions used (`liburing`, lab kernel, …)",
    "notes": "free-form remarks added by collectors (list of strings)",
    "kernel_build": "null, or for `record --kernel PATH` (a user's build tree or image) `{path, kind: tree|image, "
                    "release, git_describe, config_sha256, config_zcrx, features, query, query_error}`: the path "
                    "as given, `git describe --always --dirty` (null outside a git checkout), the sha256 of its "
                    "configuration, zcrx features by version and config, and the load generator's "
                    "`--kernel-features` line from the guest (`IORING_REGISTER_QUERY`; null with `query_error` "
                    "when it could not run)",
    "peers": "null, or for `record --peer` one object per remote sender host: `{peer, hostname, kernel, arch, "
             "cpu_model, cpus, receiver_address, peer_address, nic, driver, mtu, clock_offset_s, clock_rtt_s, "
             "loadgen_sha256, sender_command, setup_s, setup_steps_s, lost_after_s}` — the route's NIC and "
             "driver toward the receiver, the measured clock offset (peer − receiver, s), the sender's command "
             "line with `PORT` for the run's port, the seconds its set-up took (`setup_steps_s`: connect, "
             "preflight, deploy, clock), and the seconds of silence after which its ssh keep-alives drop it "
             "(docs/peers.md); no key, agent socket or password is recorded",
    "source": "`{tool, version, files, label, topology}` when the runs were imported from another tool's "
              "output (`zcrxprof import`: iperf3, neper, kperf; `topology` says whether it was given or "
              "defaulted); null for zcrxprof's own recordings",
    "not_measured": "what the source tool does not measure and the import left empty (`runs.bytes_sent`, "
                    "`intervals.enobufs`, `threads table`, …); null for zcrxprof's own recordings",
}
# Keys added after datasets were first shipped: a metadata.json without one reads as null (the
# same rule as an absent column); every other key of METADATA_KEYS must be there.
METADATA_ADDED_LATER = frozenset({"kernel_build", "peers", "source", "not_measured"})
# Columns added the same way (``table.column``): absent, they read as their default without a note.
COLUMNS_ADDED_LATER = frozenset({"intervals.host", "threads.host", "intervals.tcp_retrans",
                                 "intervals.tcp_rtt_us", "intervals.tcp_rtt_max_us", "runs.cpus_available", "runs.rings_share_cores"})


def empty_frame(table: str) -> pd.DataFrame:
    """An empty frame with the table's columns and dtypes."""
    return conform(table, pd.DataFrame({c: [] for c in TABLES[table].column_names}))


# the pandas dtype each schema dtype conforms to, where holding it already means no conversion is due
_EXACT = {"int64": "int64", "float64": "float64", "bool": "bool", "timestamp": "datetime64[us, UTC]"}


def conform(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Columns of ``table`` in schema order and dtype; missing strings become "", missing ints -1."""
    out = {}
    n = len(frame)
    for col in TABLES[table].columns:
        s = frame[col.name] if col.name in frame.columns else pd.Series([None] * n, index=frame.index, dtype=object)
        if str(s.dtype) == _EXACT.get(col.dtype):
            pass                                   # already the schema's dtype (no missing values possible)
        elif col.dtype == "int64":
            s = pd.to_numeric(s, errors="coerce").fillna(-1).astype("int64")
        elif col.dtype == "float64":
            s = pd.to_numeric(s, errors="coerce").astype("float64")
        elif col.dtype == "bool":
            s = s.fillna(False).astype("bool")
        elif col.dtype == "string":
            s = s.astype(object).where(s.notna(), "").astype(str)
        elif col.dtype == "timestamp":
            s = pd.to_datetime(s, utc=True).astype("datetime64[us, UTC]")
        out[col.name] = s.reset_index(drop=True)
    return pd.DataFrame(out, columns=TABLES[table].column_names)


def check_frame(table: str, frame: pd.DataFrame) -> list[str]:
    """Problems with ``frame`` as table ``table``: missing columns or wrong kinds (empty when fine)."""
    problems = []
    api = pd.api.types
    kinds = {"int64": api.is_integer_dtype, "float64": api.is_float_dtype, "bool": api.is_bool_dtype,
             "string": api.is_string_dtype, "timestamp": api.is_datetime64_any_dtype}
    for col in TABLES[table].columns:
        if col.name not in frame.columns:
            if f"{table}.{col.name}" not in COLUMNS_ADDED_LATER:
                problems.append(f"{table}: column {col.name} missing")
        elif not kinds[col.dtype](frame[col.name].dtype):
            problems.append(f"{table}.{col.name}: dtype {frame[col.name].dtype}, schema says {col.dtype}")
    return problems


def render_markdown() -> str:
    """docs/dataset.md: every table and column, with units, generated from this module."""
    lines = [
        "# zcrxprof datasets",
        "",
        "<!-- Generated by `python -m zcrxprof.schema > docs/dataset.md`; edit zcrxprof/schema.py instead. -->",
        "",
        f"Schema version **{SCHEMA_VERSION}**. A dataset is a directory `datasets/<name>/` holding",
        "`metadata.json` and one parquet file per table (`<table>.parquet`). `run_id` joins every table",
        "to `runs`, which carries the labels every number needs: backend, topology, kernel, and whether",
        f"it ran emulated. A {NOT_ZERO_COPY} figure is never zero-copy (`runs.zero_copy`).",
        "",
        "While recording, each run's rows go to part files `parts/<table>.<n>.parquet`, each written",
        "atomically (temporary file, then rename) after the run, and `metadata.json` after them, so an",
        "interrupted recording leaves whole parts of the finished runs and `complete: false`; a run costs",
        "the same memory and I/O however long the recording. When the recording ends, the parts are",
        "folded into the table files; readers append any parts left (a killed recording) to them.",
        "Read with `zcrxprof.dataset.load(path or [paths])` (or `zcrxprof.open` in a notebook); audit a",
        "recording against the current schema with `validate(path)` (stricter than reading).",
        "",
        "## Reading a dataset",
        "",
        "One loader reads datasets for every command (`show`, `report`, `export`) and the notebooks, with",
        "one rule:",
        "",
        "- **Refused, in one line** (exit status non-zero): no `metadata.json`, or one that is not a",
        "  zcrxprof metadata object; a `schema_version` newer than this zcrxprof reads; no `runs.parquet`;",
        "  a table file that cannot be read, is not that table (no integer `run_id`) or has a column of",
        "  the wrong kind.",
        "- **Read as empty, and said**: a table file or a column the schema has and the dataset lacks (a",
        "  dataset recorded by an older zcrxprof: an older `schema_version` is read the same way). An",
        "  absent table reads as no rows, an absent column as its default (`\"\"`, `-1`, NaN, `false`).",
        "  `show`, `report` and `export` print one `note:` line on standard error naming what was absent,",
        "  the report repeats it under its dataset header, and `Dataset.absent` lists it.",
        "- **Read as null or default, silently**: a metadata key or column added after datasets were",
        "  first shipped (" + ", ".join(f"`{k}`" for k in sorted(METADATA_ADDED_LATER | COLUMNS_ADDED_LATER)) +
        "); every other metadata key must be present.",
        "",
        "Several datasets load into one `Dataset`: every table gains a leading `dataset` column (the",
        "dataset's name, `#2` appended to a repeated one), and `(dataset, run_id)` identifies a run.",
        "",
        "## Usable runs",
        "",
        "A run is **usable** when `runs.status` is `ok` and `runs.verify_errors` is not positive (no",
        "payload verification mismatch). Every number `show`, `report`, `export` and the notebooks give",
        "is drawn from usable runs only (`zcrxprof.dataset.usable`, `Dataset.usable_runs()`); the other",
        "runs are listed (`show`, the report's Runs table) and counted, never measured.",
        "",
        "## metadata.json",
        "",
        "| key | meaning |",
        "|---|---|",
    ]
    lines += [f"| `{k}` | {v} |" for k, v in METADATA_KEYS.items()]
    for table in TABLES.values():
        lines += ["", f"## {table.name}", "", f"One row: {table.row}.", "",
                  "| column | dtype | unit | description |", "|---|---|---|---|"]
        lines += [f"| `{c.name}` | {c.dtype} | {c.unit} | {c.description} |" for c in table.columns]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_markdown())
