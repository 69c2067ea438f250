/* zcrxstat: per-thread zcrx receive activity, from kernel functions (no tracepoints exist for it).
 *
 * Each function has an fentry/fexit handler (kfunc__/kretfunc__, BTF arguments in ctx[]) and a
 * kprobe/kretprobe handler (pt_regs); zcrxprof/probes/ladder.py attaches whichever the kernel
 * accepts. ARITY_<fn> (the BTF argument count, for fexit's return slot) comes from the loader.
 * Metric, histogram and state ids (M_*, H_*, S_*) come from zcrxprof/probes/zcrxstat.py as -D flags.
 */

static __always_inline int on_recv_return(long ret)
{
    u32 slot = current_slot();
    struct counters *c = counters_at(slot);

    if (!c)
        return 0;
    add(c, M_RECV_CALLS, 1);
    if (ret > 0) {
        add(c, M_RECV_BYTES, ret);
        hist(slot, H_RECV_BYTES, ret);
    } else {
        add(c, M_RECV_NODATA, 1);
    }
    return 0;
}

static __always_inline int on_recvzc(void)
{
    count(current_slot(), M_RECVZC_CALLS, 1);
    return 0;
}

static __always_inline int on_queue_cqe(int len)
{
    struct counters *c = counters_at(current_slot());

    if (!c)
        return 0;
    add(c, M_CQES, 1);
    if (len > 0)
        add(c, M_CQE_BYTES, len);
    return 0;
}

static __always_inline int on_copy_chunk_return(long ret)
{
    struct counters *c;

    if (ret <= 0)
        return 0;
    c = counters_at(current_slot());
    add(c, M_COPY_CHUNKS, 1);
    add(c, M_COPY_BYTES, ret);
    return 0;
}

/* Page-pool refill runs in NAPI (softirq) context: attributed to whichever thread was running. */
static __always_inline int on_alloc_netmems_return(unsigned long netmem)
{
    struct counters *c = counters_at(current_slot());

    if (!c)
        return 0;
    add(c, M_REFILL_CALLS, 1);
    if (netmem == 0)
        add(c, M_REFILL_EMPTY, 1);
    return 0;
}

static __always_inline int on_flush(void)
{
    count(current_slot(), M_FLUSHES, 1);
    return 0;
}

/* int io_zcrx_recv(req, ifq, sock, flags, issue_flags, ...) */
int kretfunc__io_zcrx_recv(unsigned long long *ctx) { return on_recv_return((int)ctx[ARITY_io_zcrx_recv]); }
int kretprobe_io_zcrx_recv(struct pt_regs *ctx) { return on_recv_return((int)PT_REGS_RC(ctx)); }

/* int io_recvzc(struct io_kiocb *req, unsigned int issue_flags) */
int kfunc__io_recvzc(unsigned long long *ctx) { return on_recvzc(); }
int kprobe_io_recvzc(struct pt_regs *ctx) { return on_recvzc(); }

/* bool io_zcrx_queue_cqe(req, niov, ifq, int off, int len) */
int kfunc__io_zcrx_queue_cqe(unsigned long long *ctx) { return on_queue_cqe((int)ctx[4]); }
int kprobe_io_zcrx_queue_cqe(struct pt_regs *ctx) { return on_queue_cqe((int)PT_REGS_PARM5(ctx)); }

/* ssize_t io_zcrx_copy_chunk(req, ifq, ..., size_t len): bytes copied or -errno */
int kretfunc__io_zcrx_copy_chunk(unsigned long long *ctx) { return on_copy_chunk_return((long)ctx[ARITY_io_zcrx_copy_chunk]); }
int kretprobe_io_zcrx_copy_chunk(struct pt_regs *ctx) { return on_copy_chunk_return((long)PT_REGS_RC(ctx)); }

/* netmem_ref io_pp_zc_alloc_netmems(struct page_pool *pp, gfp_t gfp): 0 when nothing to give */
int kretfunc__io_pp_zc_alloc_netmems(unsigned long long *ctx) { return on_alloc_netmems_return(ctx[ARITY_io_pp_zc_alloc_netmems]); }
int kretprobe_io_pp_zc_alloc_netmems(struct pt_regs *ctx) { return on_alloc_netmems_return(PT_REGS_RC(ctx)); }

/* zcrx_flush_rq(...): static, an .isra clone in Debian's 7.x builds (no BTF entry): counts only */
int kfunc__zcrx_flush_rq(unsigned long long *ctx) { return on_flush(); }
int kprobe_zcrx_flush_rq(struct pt_regs *ctx) { return on_flush(); }
