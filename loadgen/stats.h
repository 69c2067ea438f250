/* stats.h - per-thread counters: the owner thread writes, interval records are emitted by the
 * owner itself at each interval boundary (getrusage(RUSAGE_THREAD) only works on oneself). */
#ifndef LOADGEN_STATS_H
#define LOADGEN_STATS_H

#include <stdbool.h>
#include <stdint.h>

struct counters {
	uint64_t bytes, completions, bufs_returned, enobufs, rearms, work_ns;
	uint64_t utime_ns, stime_ns, nvcsw, nivcsw;
	uint64_t tcp_retrans;   /* tx: tcpi_total_retrans summed over the thread's connections */
};

struct thread_stats {
	char name[16];          /* rx0, worker0, tx0, ... (also the kernel's thread name) */
	const char *role;       /* rx | worker | tx */
	int ring;               /* -1 if none */
	int tid;
	int cpu;                /* last CPU seen */
	struct counters cur;    /* cumulative since the thread started (owner writes) */
	struct counters base;   /* at stats_begin */
	struct counters last;   /* at the previous interval record */
	uint64_t refill_backlog;        /* instantaneous, owner writes */
	/* tx: reads TCP_INFO of the thread's sockets into cur.tcp_retrans and tcp_rtt_*_us at every
	 * snapshot (NULL for other threads: their records carry no TCP fields); -1 after a failure */
	int (*tcp_sample)(struct thread_stats *s, void *arg);
	void *tcp_arg;
	int64_t tcp_rtt_us, tcp_rtt_max_us;     /* instantaneous: mean / max tcpi_rtt over connections */
	uint64_t last_ns, next_tick_ns;
	bool done;              /* totals final (after stats_end) */
};

/* In the owning thread: name it, take the baseline; intervals start at g_run.t0_ns. */
void stats_begin(struct thread_stats *s, const char *name, const char *role, int ring);
/* Emit an interval record if an interval boundary passed; cheap otherwise. */
void stats_tick(struct thread_stats *s);
/* Emit the final partial interval and fix the totals. */
void stats_end(struct thread_stats *s);
/* Nanoseconds until this thread's next interval boundary (for bounded waits). */
uint64_t stats_ns_to_tick(const struct thread_stats *s);
/* Totals since stats_begin. */
void stats_totals(const struct thread_stats *s, struct counters *out);

#endif
