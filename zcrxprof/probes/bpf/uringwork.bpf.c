/* uringwork: per-thread io_uring task-work runs, CQ overflows and registrations, from tracepoints.
 *
 * HAVE_FIELD_<event>_<field> tells which optional fields the running kernel's format has
 * (io_uring_task_work_run lost `loops` in 6.x).
 * Metric, histogram and state ids (M_*, H_*, S_*) come from zcrxprof/probes/uringwork.py as -D flags.
 */

struct register_key {
    u32 tid;
    u32 opcode;         /* IORING_REGISTER_*: 32 ZCRX_IFQ, 35 QUERY, 36 ZCRX_CTRL */
    s64 ret;            /* 0 or -errno */
};

BPF_HASH(registers, struct register_key, u64, 4096);

#ifdef HAVE_TP_io_uring__io_uring_local_work_run
TRACEPOINT_PROBE(io_uring, io_uring_local_work_run)
{
    int items = args->count;        /* read the fields once, first: the verifier rejects */
    u32 loops = args->loops;        /* a modified context pointer */
    u32 slot = current_slot();
    struct counters *c = counters_at(slot);

    if (!c)
        return TP_PASS;
    add_own(c, M_LOCAL_RUNS, 1);
    if (items > 0)
        add_own(c, M_LOCAL_ITEMS, items);
    add_own(c, M_LOCAL_LOOPS, loops);
    hist_own(slot, H_LOCAL_ITEMS, items > 0 ? items : 0);
    return TP_PASS;
}
#endif

#ifdef HAVE_TP_io_uring__io_uring_task_work_run
TRACEPOINT_PROBE(io_uring, io_uring_task_work_run)
{
    u32 items = args->count;
#ifdef HAVE_FIELD_io_uring_task_work_run_loops
    u32 loops = args->loops;
#endif
    struct counters *c = counters_at(current_slot());

    if (!c)
        return TP_PASS;
    add_own(c, M_TASK_RUNS, 1);
    add_own(c, M_TASK_ITEMS, items);
#ifdef HAVE_FIELD_io_uring_task_work_run_loops
    add_own(c, M_TASK_LOOPS, loops);
#endif
    return TP_PASS;
}
#endif

#ifdef HAVE_TP_io_uring__io_uring_cqe_overflow
TRACEPOINT_PROBE(io_uring, io_uring_cqe_overflow)
{
    add_own(counters_at(current_slot()), M_CQE_OVERFLOWS, 1);
    return TP_PASS;
}
#endif

#ifdef HAVE_TP_io_uring__io_uring_register
TRACEPOINT_PROBE(io_uring, io_uring_register)
{
    u32 opcode = args->opcode;
    s64 ret = args->ret;
    struct register_key key = {.tid = (u32)bpf_get_current_pid_tgid(), .opcode = opcode, .ret = ret};

    if (current_slot() != NO_SLOT)     /* rare: a hash keyed by (tid, opcode, result) is fine */
        registers.atomic_increment(key);
    return TP_PASS;
}
#endif
