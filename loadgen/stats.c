/* stats.c - per-thread counters and interval records. */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config.h"
#include "report.h"
#include "stats.h"

extern struct lg_config g_cfg;

static void snapshot_rusage(struct thread_stats *s)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru) == 0) {
		s->cur.utime_ns = (uint64_t)ru.ru_utime.tv_sec * 1000000000ULL + (uint64_t)ru.ru_utime.tv_usec * 1000ULL;
		s->cur.stime_ns = (uint64_t)ru.ru_stime.tv_sec * 1000000000ULL + (uint64_t)ru.ru_stime.tv_usec * 1000ULL;
		s->cur.nvcsw = (uint64_t)ru.ru_nvcsw;
		s->cur.nivcsw = (uint64_t)ru.ru_nivcsw;
	}
	s->cpu = sched_getcpu();
	if (s->tcp_sample && s->tcp_sample(s, s->tcp_arg) < 0)
		s->tcp_rtt_us = s->tcp_rtt_max_us = -1;
}

void stats_begin(struct thread_stats *s, const char *name, const char *role, int ring)
{
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->role = role;
	s->ring = ring;
	s->tid = (int)syscall(SYS_gettid);
	pthread_setname_np(pthread_self(), s->name);
	snapshot_rusage(s);
	s->base = s->cur;
	s->last = s->cur;
	s->last_ns = g_run.t0_ns ? g_run.t0_ns : now_ns();
	s->next_tick_ns = s->last_ns + (uint64_t)(g_cfg.interval_s * 1e9);
}

static void emit_interval(struct thread_stats *s, uint64_t now)
{
	struct counters d;
	double dt = (double)(now - s->last_ns) / 1e9;
	uint64_t *c = (uint64_t *)&s->cur, *l = (uint64_t *)&s->last, *o = (uint64_t *)&d;

	for (size_t i = 0; i < sizeof(d) / sizeof(uint64_t); i++)
		o[i] = c[i] - l[i];
	s->last = s->cur;
	s->last_ns = now;
	if (!g_run.json) {
		out_printf("%8.2f %-9s %-6s %4d %9.3f %10llu %9llu %7.1f %7.1f %7llu %7llu %7.1f\n",
			   run_t(), s->name, s->role, s->ring,
			   dt > 0 ? (double)d.bytes * 8 / dt / 1e9 : 0.0,
			   (unsigned long long)d.completions, (unsigned long long)d.bufs_returned,
			   dt > 0 ? (double)d.utime_ns / dt / 1e7 : 0.0,
			   dt > 0 ? (double)d.stime_ns / dt / 1e7 : 0.0,
			   (unsigned long long)d.nvcsw, (unsigned long long)d.nivcsw,
			   dt > 0 ? (double)d.work_ns / dt / 1e7 : 0.0);
		return;
	}
	struct jbuf j;

	jb_begin(&j, "interval");
	jb_str(&j, "thread", s->name);
	jb_i64(&j, "tid", s->tid);
	jb_str(&j, "role", s->role);
	jb_i64(&j, "ring", s->ring);
	jb_dbl(&j, "interval_s", dt);
	jb_u64(&j, "bytes", d.bytes);
	jb_u64(&j, "completions", d.completions);
	jb_u64(&j, "bufs_returned", d.bufs_returned);
	jb_u64(&j, "refill_backlog", s->refill_backlog);
	jb_u64(&j, "enobufs", d.enobufs);
	jb_u64(&j, "rearms", d.rearms);
	jb_u64(&j, "utime_ns", d.utime_ns);
	jb_u64(&j, "stime_ns", d.stime_ns);
	jb_u64(&j, "nvcsw", d.nvcsw);
	jb_u64(&j, "nivcsw", d.nivcsw);
	jb_u64(&j, "work_ns", d.work_ns);
	jb_i64(&j, "cpu", s->cpu);
	if (s->tcp_sample) {
		jb_u64(&j, "tcp_retrans", d.tcp_retrans);
		jb_i64(&j, "tcp_rtt_us", s->tcp_rtt_us);
		jb_i64(&j, "tcp_rtt_max_us", s->tcp_rtt_max_us);
	}
	jb_emit(&j);
}

void stats_tick(struct thread_stats *s)
{
	uint64_t now = now_ns();
	uint64_t step = (uint64_t)(g_cfg.interval_s * 1e9);

	if (now < s->next_tick_ns)
		return;
	snapshot_rusage(s);
	emit_interval(s, now);
	while (s->next_tick_ns <= now)
		s->next_tick_ns += step;
}

void stats_end(struct thread_stats *s)
{
	uint64_t now = now_ns();

	snapshot_rusage(s);
	if (now - s->last_ns > 1000000 || s->cur.bytes != s->last.bytes)
		emit_interval(s, now);
	__atomic_store_n(&s->done, true, __ATOMIC_RELEASE);
}

uint64_t stats_ns_to_tick(const struct thread_stats *s)
{
	uint64_t now = now_ns();

	return s->next_tick_ns > now ? s->next_tick_ns - now : 0;
}

void stats_totals(const struct thread_stats *s, struct counters *out)
{
	const uint64_t *c = (const uint64_t *)&s->cur, *b = (const uint64_t *)&s->base;
	uint64_t *o = (uint64_t *)out;

	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		o[i] = c[i] - b[i];
}
