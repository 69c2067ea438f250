/* ringsched: per-thread scheduling of the receive/worker threads, from sched tracepoints.
 *
 * A thread's process is learnt in its own context (sched_switch fires in the thread being switched
 * out), so wake-ups and switch-ins of other threads can be filtered by process too.
 * Metric ids are mirrored in zcrxprof/probes/ringsched.py.
 */
#define M_SWITCH_VOLUNTARY  0   /* switched out while sleeping (what /proc counts as voluntary) */
#define M_SWITCH_PREEMPTED  1   /* switched out while runnable (involuntary) */
#define M_MIGRATIONS        2   /* sched_migrate_task */
#define M_WAKEUPS           3   /* sched_wakeup + sched_wakeup_new of the thread */
#define M_ONCPU_NS          4   /* time on CPU, switch-in to switch-out */
#define H_WAKEUP_LATENCY_NS 0   /* wake-up to switch-in */

#define TASK_REPORT_MAX 0x100   /* prev_state of a preempted task (include/linux/sched.h) */

/* Per-thread state and counters in one value, updated in place: one hash lookup per thread per
 * event and no map update on the hot path (this map replaces common.h's `counts` for this tool).
 * The process is learnt in the thread's own context. */
struct thread_state {
    u32 tgid;
    u32 generation;     /* filter generation `traced` was decided for (0: not yet) */
    u32 traced;
    u32 pad;
    u64 woken_at;
    u64 oncpu_at;
    struct counters c;
};

BPF_HASH(threads, u32, struct thread_state, 65536);

/* The filter decision for a thread, cached until userspace changes the targets. */
static __always_inline int traced_thread(struct thread_state *st, u32 tid)
{
    u32 generation = filter_generation();

    if (st->generation != generation) {
        st->traced = traced_ids(st->tgid, tid);
        st->generation = generation;
    }
    return st->traced;
}

static __always_inline int on_wakeup(u32 tid)
{
    struct thread_state *st = threads.lookup(&tid);

    if (!st || !traced_thread(st, tid))
        return TP_PASS;
    add(&st->c, M_WAKEUPS, 1);
    st->woken_at = bpf_ktime_get_ns();
    return TP_PASS;
}

#ifdef HAVE_TP_sched__sched_switch
TRACEPOINT_PROBE(sched, sched_switch)
{
    u32 prev = args->prev_pid, next = args->next_pid;
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    u64 now = bpf_ktime_get_ns();
    long state = args->prev_state;
    struct thread_state *st;

    if (prev) {
        st = threads.lookup(&prev);
        if (!st || st->tgid != tgid) {         /* new thread, or exec'd into another process */
            struct thread_state init = {.tgid = tgid};
            threads.update(&prev, &init);
            st = threads.lookup(&prev);
        }
        if (st) {
            if (traced_thread(st, prev)) {
                add(&st->c, (state != 0 && state < TASK_REPORT_MAX) ? M_SWITCH_VOLUNTARY : M_SWITCH_PREEMPTED, 1);
                if (st->oncpu_at && now > st->oncpu_at)
                    add(&st->c, M_ONCPU_NS, now - st->oncpu_at);
                st->oncpu_at = 0;
            }
        }
    }
    if (next) {
        st = threads.lookup(&next);
        if (st && traced_thread(st, next)) {
            if (st->woken_at && now > st->woken_at)
                hist(next, H_WAKEUP_LATENCY_NS, now - st->woken_at);
            st->woken_at = 0;
            st->oncpu_at = now;
        }
    }
    return TP_PASS;
}
#endif

#ifdef HAVE_TP_sched__sched_wakeup
TRACEPOINT_PROBE(sched, sched_wakeup) { return on_wakeup(args->pid); }
#endif

#ifdef HAVE_TP_sched__sched_wakeup_new
TRACEPOINT_PROBE(sched, sched_wakeup_new) { return on_wakeup(args->pid); }
#endif

#ifdef HAVE_TP_sched__sched_migrate_task
TRACEPOINT_PROBE(sched, sched_migrate_task)
{
    u32 tid = args->pid;
    struct thread_state *st = threads.lookup(&tid);

    if (st && traced_thread(st, tid))
        add(&st->c, M_MIGRATIONS, 1);
    return TP_PASS;
}
#endif
