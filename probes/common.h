/* Shared by every zcrxprof probe program (prepended to its text by zcrxprof/probes/tool.py).
 *
 * Counters live in one hash keyed by thread, all of a thread's counters in one value (one lookup
 * per event, NMETRICS comes from the loader); log2 histograms in another hash keyed by
 * (thread, metric, bucket). Everything is aggregated in the kernel, userspace only reads the maps.
 * Which threads count is decided here, through maps userspace fills at any time, so a collector
 * can attach before its workload starts and name the process later (set_targets).
 */
#include <uapi/linux/ptrace.h>

/* A tracepoint program's return value decides whether perf and ftrace still record the event:
 * 0 would silently zero `perf stat -e sched:sched_switch` machine-wide while a probe runs. */
#define TP_PASS 1

#define FILTER_TGID 1   /* count only threads whose process is in target_tgids */
#define FILTER_TID  2   /* count only threads in target_tids */

struct counters {
    u64 v[NMETRICS];    /* indexed by the tool's M_* metric ids */
};

struct hist_key {
    u32 tid;
    u32 metric;
    u32 slot;           /* bpf_log2l(value): bucket [2^(slot-1), 2^slot - 1], slot 0 is value 0 */
    u32 pad;
};

struct filter {
    u32 mode;           /* 0: every thread; else FILTER_TGID | FILTER_TID */
    u32 generation;     /* bumped by userspace at every change, so per-thread caches can expire */
};

BPF_ARRAY(filter_mode, struct filter, 1);
BPF_HASH(target_tgids, u32, u8, 1024);
BPF_HASH(target_tids, u32, u8, 1024);
BPF_HASH(counts, u32, struct counters, 16384);
BPF_HASH(hists, struct hist_key, u64, 16384);

static __always_inline int traced_ids(u32 tgid, u32 tid)
{
    int zero = 0;
    struct filter *f = filter_mode.lookup(&zero);

    if (!f || f->mode == 0)
        return 1;
    if ((f->mode & FILTER_TGID) && target_tgids.lookup(&tgid))
        return 1;
    if ((f->mode & FILTER_TID) && target_tids.lookup(&tid))
        return 1;
    return 0;
}

static __always_inline u32 filter_generation(void)
{
    int zero = 0;
    struct filter *f = filter_mode.lookup(&zero);

    return f ? f->generation : 0;
}

static __always_inline int traced_current(void)
{
    u64 id = bpf_get_current_pid_tgid();

    return traced_ids(id >> 32, (u32)id);
}

static __always_inline u32 current_tid(void)
{
    return (u32)bpf_get_current_pid_tgid();
}

static __always_inline struct counters *counters_of(u32 tid)
{
    struct counters *c = counts.lookup(&tid);

    if (!c) {
        struct counters zero = {};

        counts.insert(&tid, &zero);     /* once per thread */
        c = counts.lookup(&tid);
    }
    return c;
}

static __always_inline void add(struct counters *c, u32 metric, u64 n)
{
    if (c && metric < NMETRICS)
        __sync_fetch_and_add(&c->v[metric], n);
}

static __always_inline void count(u32 tid, u32 metric, u64 n)
{
    add(counters_of(tid), metric, n);
}

static __always_inline void hist(u32 tid, u32 metric, u64 value)
{
    struct hist_key key = {.tid = tid, .metric = metric, .slot = bpf_log2l(value)};

    hists.atomic_increment(key);
}
