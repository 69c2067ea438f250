/* ringsched: per-thread scheduling of the receive/worker threads, from sched tracepoints.
 *
 * sched_switch fires in the thread being switched out: its slot comes from task storage (common.h).
 * Wake-ups and migrations name another thread: its slot is looked up by tid (tid_slots), so a thread
 * is traced from its first switch-out on. sched_switch, sched_wakeup and sched_wakeup_new have a raw
 * tracepoint variant, compiled (RAW_TP_<event>) when the kernel's BTF has the arguments it expects.
 *
 * Metric, histogram and state ids (M_*, H_*, S_*) come from zcrxprof/probes/ringsched.py as -D flags.
 */

#define TASK_REPORT_MAX 0x100   /* prev_state of a preempted task (include/linux/sched.h) */

/* The thread switched in on each CPU and when: sched_switch runs in prev's context, so prev's
 * time on CPU and its wake-up->run latency are both taken at its switch-out, from its own slot,
 * without a lookup by tid. `thread` is the tid (classic tracepoint) or the task pointer (raw). */
struct running {
    u64 switched_in_at;
    u64 thread;
};

BPF_PERCPU_ARRAY(cpu_running, struct running, 1);

static __always_inline int on_switch(u64 prev, u64 next, int prev_is_idle, int voluntary)
{
    u64 now = bpf_ktime_get_ns();
    int zero = 0;
    struct running *run = cpu_running.lookup(&zero);
    u32 slot;

    if (!run)
        return 0;
    slot = prev_is_idle ? NO_SLOT : current_slot();
    if (slot != NO_SLOT) {
        struct counters *c = counters_at(slot);
        u64 *woken = state_word(c, S_WOKEN_AT);

        add_own(c, voluntary ? M_SWITCH_VOLUNTARY : M_SWITCH_PREEMPTED, 1);
        if (run->thread == prev && run->switched_in_at) {
            if (now > run->switched_in_at)
                add_own(c, M_ONCPU_NS, now - run->switched_in_at);
            if (woken && *woken && *woken <= run->switched_in_at) {
                hist_own(slot, H_WAKEUP_LATENCY_NS, run->switched_in_at - *woken);
                *woken = 0;
            }
        } else if (woken) {
            *woken = 0;     /* its switch-in was not seen (before attach): no latency sample */
        }
    }
    run->switched_in_at = now;
    run->thread = next;
    return 0;
}

static __always_inline int on_wakeup(u32 tid)
{
    struct counters *c = counters_at(slot_of_tid(tid));
    u64 *woken = state_word(c, S_WOKEN_AT);

    if (!woken)
        return 0;
    add(c, M_WAKEUPS, 1);       /* atomic: the wakee's own events write the same row */
    *woken = bpf_ktime_get_ns();
    return 0;
}

#ifdef OFFSET_task_struct__pid
/* The wakee's tid, at the offset the running kernel's BTF gives for task_struct.pid. */
static __always_inline u32 task_tid(u64 task)
{
    u32 tid = 0;

    bpf_probe_read_kernel(&tid, sizeof(tid), (void *)(task + OFFSET_task_struct__pid));
    return tid;
}
#endif

#if defined(RAW_TP_sched_switch)
/* (bool preempt, struct task_struct *prev, struct task_struct *next, unsigned int prev_state):
 * voluntary exactly as the scheduler counts nvcsw (not preempted, and prev was not running). */
RAW_TRACEPOINT_PROBE(sched_switch)
{
    u64 prev = ctx->args[1], next = ctx->args[2];
    int voluntary = !(u8)ctx->args[0] && (u32)ctx->args[3] != 0;

    return on_switch(prev, next, (u32)bpf_get_current_pid_tgid() == 0, voluntary);
}
#elif defined(HAVE_TP_sched__sched_switch)
TRACEPOINT_PROBE(sched, sched_switch)
{
    u32 prev = args->prev_pid, next = args->next_pid;
    long state = args->prev_state;

    on_switch(prev, next, prev == 0, state != 0 && state < TASK_REPORT_MAX);
    return TP_PASS;
}
#endif

#if defined(RAW_TP_sched_wakeup)
RAW_TRACEPOINT_PROBE(sched_wakeup) { return on_wakeup(task_tid(ctx->args[0])); }     /* (task) */
#elif defined(HAVE_TP_sched__sched_wakeup)
TRACEPOINT_PROBE(sched, sched_wakeup) { on_wakeup(args->pid); return TP_PASS; }
#endif

#if defined(RAW_TP_sched_wakeup_new)
RAW_TRACEPOINT_PROBE(sched_wakeup_new) { return on_wakeup(task_tid(ctx->args[0])); }
#elif defined(HAVE_TP_sched__sched_wakeup_new)
TRACEPOINT_PROBE(sched, sched_wakeup_new) { on_wakeup(args->pid); return TP_PASS; }
#endif

#ifdef HAVE_TP_sched__sched_migrate_task
TRACEPOINT_PROBE(sched, sched_migrate_task)
{
    count(slot_of_tid(args->pid), M_MIGRATIONS, 1);
    return TP_PASS;
}
#endif
