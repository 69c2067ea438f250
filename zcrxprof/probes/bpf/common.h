/* Shared by every zcrxprof probe program (prepended to its text by zcrxprof/probes/tool.py).
 *
 * Every traced thread owns a *slot*: an index into array maps that hold its counters (`counts`,
 * NMETRICS per slot) and its log2 histograms (`hists`, NHISTS x NBUCKETS per slot), so the hot
 * path does no hash lookup. A thread finds its slot through BPF task local storage (`thread_refs`),
 * which also caches the filter decision for the filter generation it was made in. A slot is
 * allocated once per traced thread (atomic fetch-add on `slot_alloc`); `slot_info` (slot -> tid,
 * tgid) and `tid_slots` (tid -> slot, written once at allocation) let userspace and the events about
 * *another* thread (the wakee of sched_wakeup, ...) find it. Task storage dies with its task, the
 * arrays do not: an exited thread's counts stay readable. NSLOTS, NMETRICS, NHISTS, NSTATE, NBUCKETS
 * (log2 buckets: bucket 0 is value 0, bucket k is [2^(k-1), 2^k - 1]) and the filter_mode bits
 * FILTER_TGID / FILTER_TID come from the loader (zcrxprof/probes/tool.py, as -D flags); threads
 * beyond NSLOTS are counted in `slot_alloc.overflows` and not traced.
 * Which threads count is decided here, through maps userspace fills at any time, so a collector
 * can attach before its workload starts and name the process later (set_targets).
 */
#include <uapi/linux/ptrace.h>

/* A tracepoint program's return value decides whether perf and ftrace still record the event:
 * 0 would silently zero `perf stat -e sched:sched_switch` machine-wide while a probe runs. */
#define TP_PASS 1

#define NO_SLOT   0xffffffffu   /* not traced, or no slot left */
#define SLOT_FULL 0xffffffffu   /* thread_ref.slot1: the thread asked for a slot and none was left */
#define LINE_WORDS 8            /* one cache line of padding after each row: two threads' rows,
                                 * written from different CPUs, never share a line */

/* A slot's counters: v[0..NMETRICS) indexed by the tool's M_* metric ids, then NSTATE words of the
 * tool's own per-thread state (same cache line as the counters its events update), then padding. */
struct counters {
    u64 v[NMETRICS + NSTATE + LINE_WORDS];
};

struct hist_row {
    u64 b[NHISTS * NBUCKETS + LINE_WORDS];  /* [H_* id * NBUCKETS + bpf_log2l(value)] (flat: BCC's
                                             * Python side reads only a 2-D array's first dimension) */
};

struct filter {
    u32 mode;           /* 0: every thread; else FILTER_TGID | FILTER_TID */
    u32 generation;     /* bumped by userspace at every change, so per-thread caches can expire */
};

/* Per task (task local storage): the cached filter decision and the slot, + 1 (0: none yet). */
struct thread_ref {
    u32 tid;            /* the ids the decision was made for: an exec changes them */
    u32 tgid;
    u32 generation;     /* filter generation `traced` was decided in (0: not yet) */
    u32 traced;
    u32 slot1;          /* slot + 1; 0 before the first traced event, SLOT_FULL when none was left */
};

/* Per slot, written once at allocation: whose it is. */
struct slot_info {
    u32 tid;
    u32 tgid;
    u32 valid;          /* written last: userspace reads only valid slots */
};

/* Per tid (tid_slots): its slot, and the filter decision cached for events naming it by tid. */
struct tid_slot {
    u32 slot;
    u32 tgid;
    u32 generation;
    u32 traced;
};

struct slot_alloc {
    u64 next;           /* slots handed out so far (may pass NSLOTS: read min(next, NSLOTS)) */
    u64 overflows;      /* threads that wanted a slot when none was left */
};

BPF_ARRAY(filter_mode, struct filter, 1);
BPF_HASH(target_tgids, u32, u8, 1024);
BPF_HASH(target_tids, u32, u8, 1024);
BPF_TASK_STORAGE(thread_refs, struct thread_ref);
BPF_ARRAY(slot_alloc, struct slot_alloc, 1);
BPF_ARRAY(slot_info, struct slot_info, NSLOTS);
BPF_HASH(tid_slots, u32, struct tid_slot, NSLOTS);
BPF_ARRAY(counts, struct counters, NSLOTS);
BPF_ARRAY(hists, struct hist_row, NSLOTS);

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

/* Hand out the next slot (once per traced thread); SLOT_FULL when none is left. */
static __always_inline u32 alloc_slot1(u32 tid, u32 tgid)
{
    int zero = 0;
    struct slot_alloc *a = slot_alloc.lookup(&zero);
    struct slot_info *info;
    struct tid_slot ts = {.tgid = tgid};
    u32 slot;

    if (!a)
        return SLOT_FULL;
    slot = __sync_fetch_and_add(&a->next, 1);
    info = slot_info.lookup(&slot);
    if (slot >= NSLOTS || !info) {
        __sync_fetch_and_add(&a->overflows, 1);
        return SLOT_FULL;
    }
    info->tid = tid;
    info->tgid = tgid;
    ts.slot = slot;
    tid_slots.update(&tid, &ts);
    info->valid = 1;
    return slot + 1;
}

/* The current thread's slot, or NO_SLOT when it is not traced: task storage + arrays only. */
static __always_inline u32 current_slot(void)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32, tid = (u32)id;
    u32 generation = filter_generation();
    struct thread_ref *ref;

    ref = thread_refs.task_storage_get(bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (!ref)
        return NO_SLOT;
    if (ref->tid != tid || ref->tgid != tgid) {     /* new task, or exec'd into another process */
        ref->tid = tid;
        ref->tgid = tgid;
        ref->generation = 0;
        ref->slot1 = 0;
    }
    if (ref->generation != generation) {
        ref->traced = traced_ids(tgid, tid);
        ref->generation = generation;
    }
    if (!ref->traced)
        return NO_SLOT;
    if (ref->slot1 == 0)
        ref->slot1 = alloc_slot1(tid, tgid);
    return ref->slot1 == SLOT_FULL ? NO_SLOT : ref->slot1 - 1;
}

/* Another thread's slot (named by tid in the event), or NO_SLOT: a thread gets its slot in its own
 * context, so one that has not run a traced event yet is not traced. */
static __always_inline u32 slot_of_tid(u32 tid)
{
    u32 generation = filter_generation();
    struct tid_slot *ts = tid_slots.lookup(&tid);

    if (!ts)
        return NO_SLOT;
    if (ts->generation != generation) {
        ts->traced = traced_ids(ts->tgid, tid);
        ts->generation = generation;
    }
    return ts->traced ? ts->slot : NO_SLOT;
}

static __always_inline struct counters *counters_at(u32 slot)
{
    return slot == NO_SLOT ? 0 : counts.lookup(&slot);
}

/* Counters and histogram buckets of a slot: add() is atomic, for values other threads' events also
 * write (a wakee's wake-ups) or whose programs may nest (fentry/kprobe). add_own() is a plain add, for
 * a value that one tracepoint program writes, only in the thread's own context: a thread runs on one
 * CPU at a time and a tracepoint program does not nest with itself on a CPU (bpf_prog_active for
 * classic tracepoints, the program's own `active` count for raw ones), so nothing races with it. */
static __always_inline void add(struct counters *c, u32 metric, u64 n)
{
    if (c && metric < NMETRICS)
        __sync_fetch_and_add(&c->v[metric], n);
}

static __always_inline void add_own(struct counters *c, u32 metric, u64 n)
{
    if (c && metric < NMETRICS)
        c->v[metric] += n;
}

/* The tool's per-thread state word i (0 <= i < NSTATE) next to the slot's counters. */
static __always_inline u64 *state_word(struct counters *c, u32 i)
{
    return c && i < NSTATE ? &c->v[NMETRICS + i] : 0;
}

static __always_inline void count(u32 slot, u32 metric, u64 n)
{
    add(counters_at(slot), metric, n);
}

static __always_inline u64 *bucket_of(u32 slot, u32 metric, u64 value)
{
    struct hist_row *h = slot == NO_SLOT ? 0 : hists.lookup(&slot);
    u32 bucket = bpf_log2l(value);

    if (h && metric < NHISTS && bucket < NBUCKETS)
        return &h->b[metric * NBUCKETS + bucket];
    return 0;
}

static __always_inline void hist(u32 slot, u32 metric, u64 value)
{
    u64 *b = bucket_of(slot, metric, value);

    if (b)
        __sync_fetch_and_add(b, 1);
}

static __always_inline void hist_own(u32 slot, u32 metric, u64 value)
{
    u64 *b = bucket_of(slot, metric, value);

    if (b)
        *b += 1;
}
