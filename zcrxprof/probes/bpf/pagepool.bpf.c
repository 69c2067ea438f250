/* pagepool: page-pool freelist<->pool moves and NAPI polls, from tracepoints.
 *
 * Both run in softirq context; events are attributed to the thread that was running (tid 0 = idle),
 * so a --pid filter keeps only the work done in the target's context. Meaningful with a real NIC:
 * zcrx-nodev has no page pool and no NAPI.
 * Metric, histogram and state ids (M_*, H_*, S_*) come from zcrxprof/probes/pagepool.py as -D flags.
 */

#ifdef HAVE_TP_page_pool__page_pool_state_hold
TRACEPOINT_PROBE(page_pool, page_pool_state_hold)
{
    add_own(counters_at(current_slot()), M_HOLDS, 1);
    return TP_PASS;
}
#endif

#ifdef HAVE_TP_page_pool__page_pool_state_release
TRACEPOINT_PROBE(page_pool, page_pool_state_release)
{
    add_own(counters_at(current_slot()), M_RELEASES, 1);
    return TP_PASS;
}
#endif

static __always_inline void on_napi_poll(int work, int budget)
{
    u32 slot = current_slot();
    struct counters *c = counters_at(slot);

    if (!c)
        return;
    add_own(c, M_POLLS, 1);
    if (work > 0)
        add_own(c, M_POLL_WORK, work);
    if (work >= budget)
        add_own(c, M_POLL_FULL_BUDGET, 1);
    hist_own(slot, H_POLL_WORK, work > 0 ? work : 0);
}

#if defined(RAW_TP_napi_poll)
/* (struct napi_struct *napi, int work, int budget) */
RAW_TRACEPOINT_PROBE(napi_poll)
{
    on_napi_poll((int)ctx->args[1], (int)ctx->args[2]);
    return 0;
}
#elif defined(HAVE_TP_napi__napi_poll)
TRACEPOINT_PROBE(napi, napi_poll)
{
    int work = args->work, budget = args->budget;

    on_napi_poll(work, budget);
    return TP_PASS;
}
#endif
