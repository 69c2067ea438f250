/* main.c - zcrx-loadgen: set up sockets and threads for one topology, run, summarise.
 *
 * loopback (default): listener on 127.0.0.1, C sender sockets connected and accepted here.
 * --listen: accept C connections from anyone, receive until they all close (or --duration).
 * --connect: senders only.
 * SIGINT/SIGTERM (read through a signalfd; blocked in every thread): senders stop, receivers drain
 * what was sent (2 s at most; at once with --listen or on a second signal), summary "interrupted".
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "backend.h"
#include "config.h"
#include "netaddr.h"
#include "pattern.h"
#include "receiver.h"
#include "report.h"
#include "sender.h"
#include "work.h"
#include "zcrx_uapi.h"

#define DRAIN_NS 2000000000ULL

struct lg_config g_cfg;

static const char *const status_names[] = { "ok", "interrupted", "error" };
enum { ST_OK, ST_INTERRUPTED, ST_ERROR };

struct run {
	const struct rx_backend *be;
	struct receiver rcv;
	struct sender snd;
	bool have_rcv, have_snd;
	struct conn *conns;
	int nconns;
	int *tx_fds;
	int ntx;
	int sfd, lfd;
	int xlfds[LG_MAX_RINGS];        /* --queues: the listeners of rings 1.. (ring 0's is lfd) */
	int nxlfds;
	double loops_per_us;
	uint64_t end_ns;
	int status;
};

static int usage_error(const struct lg_error *e)
{
	fprintf(stderr, "zcrx-loadgen: %s (see --help)\n", e->msg);
	return 2;
}

/* Every CPU of --rx-cpus/--tx-cpus must be one this process may run on (cgroups, taskset). */
static int check_cpus(const char *opt, const int *cpus, int n, struct lg_error *err)
{
	cpu_set_t allowed;

	if (!n)
		return 0;
	if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0) {
		lg_error_set(err, "sched_getaffinity", errno, "%s", opt);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (cpus[i] >= CPU_SETSIZE || !CPU_ISSET(cpus[i], &allowed)) {
			lg_error_set(err, NULL, 0, "%s: CPU %d is not available to this process", opt, cpus[i]);
			return -1;
		}
	}
	return 0;
}

/*
 * CPUs the receiving threads may run on: the distinct CPUs of --rx-cpus (checked above to be
 * allowed), else every CPU of this process's affinity mask (taskset, cpuset cgroups; not a CPU
 * quota). Receiving threads are the rings plus the workers; more of them than CPUs share cores,
 * which every record says (rings_share_cores). A sender-only run has none.
 */
static int count_rx_cpus(struct lg_error *err)
{
	cpu_set_t set;

	if (g_cfg.mode != MODE_CONNECT && g_cfg.n_rx_cpus) {
		CPU_ZERO(&set);
		for (int i = 0; i < g_cfg.n_rx_cpus; i++)
			if (g_cfg.rx_cpus[i] < CPU_SETSIZE)
				CPU_SET(g_cfg.rx_cpus[i], &set);
	} else if (sched_getaffinity(0, sizeof(set), &set) < 0) {
		lg_error_set(err, "sched_getaffinity", errno, "CPUs available to this process");
		return -1;
	}
	g_run.cpus_available = CPU_COUNT(&set);
	g_run.rings_share_cores = g_cfg.mode != MODE_CONNECT &&
				  g_cfg.rings + g_cfg.workers > g_run.cpus_available;
	return 0;
}

/* Table mode: "4 rings on 2 CPUs: rings share cores", the words of the report and `zcrxprof summary`
 * (zcrxprof.vocab.shared_cores_note). */
static void shared_cores_line(const char *prefix)
{
	if (!g_run.rings_share_cores)
		return;
	if (g_cfg.workers)
		out_printf("%s%d ring%s and %d worker%s on %d CPU%s: rings and workers share cores\n", prefix,
			   g_cfg.rings, g_cfg.rings == 1 ? "" : "s", g_cfg.workers, g_cfg.workers == 1 ? "" : "s",
			   g_run.cpus_available, g_run.cpus_available == 1 ? "" : "s");
	else
		out_printf("%s%d rings on %d CPU%s: rings share cores\n", prefix, g_cfg.rings,
			   g_run.cpus_available, g_run.cpus_available == 1 ? "" : "s");
}

/* The connection goes in slot `slot` (ring slot mod --rings receives it). */
static void add_conn_at(struct run *run, int fd, int slot)
{
	struct conn *c = &run->conns[slot];

	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->index = slot;
	run->nconns++;
	c->client_port = sock_port(fd, 1);
	c->phase = pattern_phase(c->client_port);
}

static void add_conn(struct run *run, int fd)
{
	add_conn_at(run, fd, run->nconns);
}

/*
 * Open files this run needs: one socket per connection per side in this process (loopback: both),
 * and a margin for the listener, the rings, the signalfd, stdio and backend files. A soft
 * RLIMIT_NOFILE below that is raised (up to the hard limit); a hard limit below it refuses the run.
 */
#define FD_MARGIN 32

static int ensure_fd_limit(struct lg_error *err)
{
	rlim_t need = (rlim_t)g_cfg.connections * (g_cfg.mode == MODE_LOOPBACK ? 2 : 1) +
		      (rlim_t)g_cfg.rings + FD_MARGIN;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		lg_error_set(err, "getrlimit", errno, "RLIMIT_NOFILE");
		return -1;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_cur == RLIM_INFINITY)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		lg_error_set(err, NULL, 0, "--connections %d needs %llu open files, above the hard limit of %llu "
			     "(RLIMIT_NOFILE): raise it (ulimit -n %llu, as root or via limits.conf/LimitNOFILE) "
			     "or use fewer connections", g_cfg.connections, (unsigned long long)need,
			     (unsigned long long)rl.rlim_max, (unsigned long long)need);
		return -1;
	}
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		lg_error_set(err, "setrlimit", errno, "cannot raise RLIMIT_NOFILE to %llu for %d connections",
			     (unsigned long long)need, g_cfg.connections);
		return -1;
	}
	return 0;
}

/* Loopback: connect C sender sockets to our own listener and accept each. */
static int setup_loopback(struct run *run, struct lg_error *err)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (addr_parse("127.0.0.1:0", &ss, &len, err))
		return -1;
	run->lfd = listen_on(&ss, len, g_cfg.connections, err);
	if (run->lfd < 0)
		return -1;
	len = sizeof(ss);
	if (getsockname(run->lfd, (struct sockaddr *)&ss, &len) < 0) {
		lg_error_set(err, "getsockname", errno, "listener");
		return -1;
	}
	for (int i = 0; i < g_cfg.connections; i++) {
		int cfd = connect_to(&ss, len, err), afd;

		if (cfd < 0)
			return -1;
		run->tx_fds[run->ntx++] = cfd;
		afd = accept4(run->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (afd < 0) {
			lg_error_set(err, "accept4", errno, "loopback connection %d", i);
			return -1;
		}
		add_conn(run, afd);
	}
	return 0;
}

/* --listen: accept C connections; returns 1 if a signal came first. With --queues, ring i has its
 * own listener on PORT+i (the flow rule of its queue matches that port) and receives the
 * C / --rings connections made to it: the k-th accepted there goes to slot k * rings + i. */
static int setup_listen(struct run *run, struct lg_error *err)
{
	int n = g_cfg.nqueues > 1 ? g_cfg.nqueues : 1, share = g_cfg.connections / n, got[LG_MAX_RINGS] = { 0 };
	struct pollfd pfd[LG_MAX_RINGS + 1];
	struct sockaddr_storage ss;
	socklen_t len;
	char addr[64];

	if (addr_parse(g_cfg.addr, &ss, &len, err))
		return -1;
	run->lfd = listen_on(&ss, len, g_cfg.connections, err);
	if (run->lfd < 0)
		return -1;
	for (int i = 1; i < n; i++) {
		struct sockaddr_storage at = ss;
		int fd;

		addr_add_port(&at, i);
		fd = listen_on(&at, len, share, err);
		if (fd < 0)
			return -1;
		run->xlfds[run->nxlfds++] = fd;
	}
	sock_addr_text(run->lfd, addr, sizeof(addr));
	if (g_run.json) {
		struct jbuf j;

		jb_begin(&j, "event");
		jb_str(&j, "event", "listening");
		jb_str(&j, "address", addr);
		jb_u64(&j, "port", sock_port(run->lfd, 0));
		if (n > 1)
			jb_u64(&j, "ports", (uint64_t)n);       /* ring i on port + i */
		jb_emit(&j);
	} else {
		out_printf("listening on %s port %u%s%d for %d connection(s)\n", addr, sock_port(run->lfd, 0),
			   n > 1 ? " (ring i on port + i) x" : "", n > 1 ? n : 1, g_cfg.connections);
	}
	while (run->nconns < g_cfg.connections) {
		pfd[0] = (struct pollfd){ run->sfd, POLLIN, 0 };
		for (int i = 0; i < n; i++) {   /* a full ring's listener is no longer watched */
			int fd = i ? run->xlfds[i - 1] : run->lfd;

			pfd[i + 1] = (struct pollfd){ n > 1 && got[i] == share ? -1 : fd, POLLIN, 0 };
		}
		if (poll(pfd, (nfds_t)n + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			lg_error_set(err, "poll", errno, "waiting for connections");
			return -1;
		}
		if (pfd[0].revents)
			return 1;
		for (int i = 0; i < n; i++) {
			int afd;

			if (!(pfd[i + 1].revents & POLLIN))
				continue;
			afd = accept4(pfd[i + 1].fd, NULL, NULL, SOCK_CLOEXEC);
			if (afd < 0) {
				lg_error_set(err, "accept4", errno, "incoming connection");
				return -1;
			}
			if (n > 1)
				add_conn_at(run, afd, got[i]++ * n + i);
			else
				add_conn(run, afd);
		}
	}
	return 0;
}

static int setup_connect(struct run *run, struct lg_error *err)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (addr_parse(g_cfg.addr, &ss, &len, err))
		return -1;
	for (int i = 0; i < g_cfg.connections; i++) {       /* --ports N: connection i to PORT + i mod N */
		struct sockaddr_storage at = ss;
		int fd;

		addr_add_port(&at, i % g_cfg.ports);
		fd = connect_to(&at, len, err);
		if (fd < 0)
			return -1;
		run->tx_fds[run->ntx++] = fd;
	}
	return 0;
}

/* Wait for the end of the run, handling duration and signals. */
static void supervise(struct run *run)
{
	uint64_t duration_ns = (uint64_t)(g_cfg.duration_s * 1e9), drain_deadline = 0;
	int signals = 0;

	for (;;) {
		struct pollfd pfd = { run->sfd, POLLIN, 0 };
		uint64_t elapsed;

		if (poll(&pfd, 1, 20) > 0) {
			struct signalfd_siginfo si;

			if (read(run->sfd, &si, sizeof(si)) == sizeof(si)) {
				signals++;
				if (run->status == ST_OK)
					run->status = ST_INTERRUPTED;
				if (run->have_snd)
					sender_stop(&run->snd);
				if (run->have_rcv && (g_cfg.mode == MODE_LISTEN || signals > 1))
					receiver_stop(&run->rcv);
				if (!drain_deadline)
					drain_deadline = now_ns() + DRAIN_NS;
			}
		}
		elapsed = now_ns() - g_run.t0_ns;
		if (run->have_snd && duration_ns && elapsed >= duration_ns)
			sender_stop(&run->snd);
		if (g_cfg.mode == MODE_LISTEN && g_cfg.duration_set && elapsed >= duration_ns)
			receiver_stop(&run->rcv);
		if ((run->have_rcv && receiver_failed(&run->rcv, NULL)) ||
		    (run->have_snd && sender_failed(&run->snd, NULL))) {
			run->status = ST_ERROR;
			if (run->have_snd)
				sender_stop(&run->snd);
			if (run->have_rcv)
				receiver_stop(&run->rcv);
		}
		if (drain_deadline && now_ns() >= drain_deadline && run->have_rcv)
			receiver_stop(&run->rcv);
		if ((!run->have_rcv || receiver_done(&run->rcv)) && (!run->have_snd || sender_done(&run->snd)))
			break;
		/* the receiver ended early (error): senders have nobody to talk to */
		if (run->have_rcv && run->have_snd && receiver_done(&run->rcv))
			sender_stop(&run->snd);
	}
	run->end_ns = now_ns();
}

static void json_counters(struct jbuf *j, const struct counters *c)
{
	jb_u64(j, "bytes", c->bytes);
	jb_u64(j, "completions", c->completions);
	jb_u64(j, "bufs_returned", c->bufs_returned);
	jb_u64(j, "enobufs", c->enobufs);
	jb_u64(j, "rearms", c->rearms);
	jb_u64(j, "utime_ns", c->utime_ns);
	jb_u64(j, "stime_ns", c->stime_ns);
	jb_u64(j, "nvcsw", c->nvcsw);
	jb_u64(j, "nivcsw", c->nivcsw);
	jb_u64(j, "work_ns", c->work_ns);
}

static void json_cpus(struct jbuf *j, const char *key, const int *cpus, int n)
{
	char num[16];

	jb_key(j, key);
	jb_raw(j, "[");
	for (int i = 0; i < n; i++) {
		snprintf(num, sizeof(num), "%s%d", i ? "," : "", cpus[i]);
		jb_raw(j, num);
	}
	jb_raw(j, "]");
}

/* Every thread that ran, in order rx, worker, tx. */
static int collect_threads(struct run *run, const struct thread_stats **out, int max)
{
	int n = 0;

	if (run->have_rcv && run->rcv.rings) {
		for (int i = 0; i < g_cfg.rings && n < max; i++)
			if (run->rcv.rings[i].st.tid)
				out[n++] = &run->rcv.rings[i].st;
		for (int i = 0; run->rcv.workers && i < g_cfg.workers && n < max; i++)
			if (run->rcv.workers[i].st.tid)
				out[n++] = &run->rcv.workers[i].st;
	}
	if (run->have_snd)
		for (int i = 0; i < run->snd.n && n < max; i++)
			if (run->snd.tx[i].st.tid)
				out[n++] = &run->snd.tx[i].st;
	return n;
}

/* Spread of received bytes over connections: Jain's index (sum x)^2 / (n sum x^2), 1 when every
 * connection got the same, 1/n when one got everything. False when nothing was received. */
struct fairness {
	double jain;
	uint64_t min, max;
};

static bool conn_fairness(const struct run *run, struct fairness *f)
{
	double sum = 0, sumsq = 0;

	if (!run->have_rcv || run->nconns <= 0)
		return false;
	f->min = UINT64_MAX;
	f->max = 0;
	for (int i = 0; i < run->nconns; i++) {
		uint64_t x = run->conns[i].offset;

		sum += (double)x;
		sumsq += (double)x * (double)x;
		f->min = x < f->min ? x : f->min;
		f->max = x > f->max ? x : f->max;
	}
	if (sumsq <= 0)
		return false;
	f->jain = sum * sum / ((double)run->nconns * sumsq);
	return true;
}

/* Peak resident memory of this process in KiB (loopback: senders included): VmHWM, since
 * getrusage()'s ru_maxrss keeps the peak of whatever process exec'd us. 0 if unknown. */
static uint64_t rss_max_kib(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	unsigned long long kib = 0;
	char line[128];

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %llu kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static void summary(struct run *run)
{
	static const char *const modes[] = { "loopback", "listen", "connect" };
	const struct thread_stats *th[LG_MAX_RINGS + LG_MAX_WORKERS + LG_MAX_TX_THREADS];
	int nth = collect_threads(run, th, (int)(sizeof(th) / sizeof(th[0])));
	uint64_t sent = 0, received = 0, verr = run->have_rcv ? run->rcv.verify_errors : 0;
	double dur = g_run.t0_ns ? (double)(run->end_ns - g_run.t0_ns) / 1e9 : 0.0;
	struct counters c;
	struct fairness fair;
	bool have_fair = conn_fairness(run, &fair);
	uint64_t rss_kib = rss_max_kib();
	double rss_per_conn = g_cfg.connections > 0 ? (double)rss_kib / g_cfg.connections : 0.0;
	double gbit;

	for (int i = 0; i < nth; i++) {
		stats_totals(th[i], &c);
		if (!strcmp(th[i]->role, "tx"))
			sent += c.bytes;
		else if (!strcmp(th[i]->role, "rx"))
			received += c.bytes;
	}
	gbit = dur > 0 ? (double)(g_cfg.mode == MODE_CONNECT ? sent : received) * 8 / dur / 1e9 : 0.0;

	if (!g_run.json) {
		out_printf("\nsummary: %s | topology %s | backend %s%s%s | kernel %s\n",
			   status_names[run->status], g_run.topology, g_run.backend,
			   g_run.n_emulated ? " | EMULATED: " : " | emulated: nothing",
			   g_run.n_emulated ? g_run.emulated[0] : "", g_run.kernel);
		out_printf("  %.3f s, sent %llu bytes, received %llu bytes, %.3f Gbit/s, verify errors %llu\n",
			   dur, (unsigned long long)sent, (unsigned long long)received, gbit,
			   (unsigned long long)verr);
		if (have_fair)
			out_printf("  %d connections: fairness (Jain) %.4f, bytes per connection %llu..%llu\n",
				   run->nconns, fair.jain, (unsigned long long)fair.min, (unsigned long long)fair.max);
		out_printf("  max RSS %llu KiB, %.1f KiB per connection\n", (unsigned long long)rss_kib,
			   rss_per_conn);
		if (run->have_rcv && run->rcv.rings && run->rcv.rings[0].r.bundle_rule[0])
			out_printf("  receives bundle up to %u buffers (%s)\n",
				   run->rcv.rings[0].r.bundle > 1 ? run->rcv.rings[0].r.bundle : 1,
				   run->rcv.rings[0].r.bundle_rule);
		if (run->have_rcv && run->rcv.rings && run->rcv.rings[0].r.reuse) {
			uint32_t lo = UINT32_MAX, hi = 0;

			for (int i = 0; i < g_cfg.rings; i++) {
				uint32_t n = run->rcv.rings[i].r.buffers_used;

				lo = n < lo ? n : lo;
				hi = n > hi ? n : hi;
			}
			out_printf("  buffers reused %s (%s); a ring received into %u..%u of %u buffers\n",
				   run->rcv.rings[0].r.reuse, run->rcv.rings[0].r.reuse_rule, lo, hi,
				   g_cfg.bufs);
		}
		shared_cores_line("  ");
		out_printf("  %-9s %-6s %4s %14s %11s %9s %9s %9s %8s %8s %9s\n", "thread", "role", "ring",
			   "bytes", "completions", "usr_ms", "sys_ms", "work_ms", "nvcsw", "nivcsw", "enobufs");
		for (int i = 0; i < nth; i++) {
			stats_totals(th[i], &c);
			out_printf("  %-9s %-6s %4d %14llu %11llu %9.1f %9.1f %9.1f %8llu %8llu %9llu\n",
				   th[i]->name, th[i]->role, th[i]->ring, (unsigned long long)c.bytes,
				   (unsigned long long)c.completions, c.utime_ns / 1e6, c.stime_ns / 1e6,
				   c.work_ns / 1e6, (unsigned long long)c.nvcsw, (unsigned long long)c.nivcsw,
				   (unsigned long long)c.enobufs);
		}
		return;
	}
	struct jbuf j;

	jb_begin(&j, "summary");
	jb_str(&j, "status", status_names[run->status]);
	jb_dbl(&j, "duration_s", dur);
	jb_u64(&j, "bytes_sent", sent);
	jb_u64(&j, "bytes_received", received);
	jb_u64(&j, "verify_errors", verr);
	jb_key(&j, "first_verify_error");
	if (run->have_rcv && run->rcv.first_bad_conn >= 0) {
		jb_raw(&j, "{");
		jb_i64(&j, "connection", run->rcv.first_bad_conn);
		jb_u64(&j, "offset", run->rcv.first_bad_offset);
		jb_raw(&j, "}");
	} else {
		jb_raw(&j, "null");
	}
	jb_dbl(&j, "gbit_s", gbit);
	jb_i64(&j, "rings", g_cfg.mode == MODE_CONNECT ? 0 : g_cfg.rings);
	jb_i64(&j, "workers", g_cfg.workers);
	jb_i64(&j, "connections", g_cfg.connections);
	jb_str(&j, "mode", modes[g_cfg.mode]);
	jb_str(&j, "kernel", g_run.kernel);
	if (have_fair) {
		jb_dbl(&j, "fairness_jain", fair.jain);
		jb_u64(&j, "conn_bytes_min", fair.min);
		jb_u64(&j, "conn_bytes_max", fair.max);
	} else {
		jb_key(&j, "fairness_jain");
		jb_raw(&j, "null");
		jb_key(&j, "conn_bytes_min");
		jb_raw(&j, "null");
		jb_key(&j, "conn_bytes_max");
		jb_raw(&j, "null");
	}
	jb_u64(&j, "rss_max_kib", rss_kib);
	jb_dbl(&j, "rss_kib_per_connection", rss_per_conn);
	jb_key(&j, "threads");
	jb_raw(&j, "[");
	for (int i = 0; i < nth; i++) {
		if (i)
			jb_raw(&j, ",");
		jb_raw(&j, "{");
		stats_totals(th[i], &c);
		jb_str(&j, "thread", th[i]->name);
		jb_i64(&j, "tid", th[i]->tid);
		jb_str(&j, "role", th[i]->role);
		jb_i64(&j, "ring", th[i]->ring);
		jb_dbl(&j, "interval_s", (double)(th[i]->last_ns - g_run.t0_ns) / 1e9);
		json_counters(&j, &c);
		jb_u64(&j, "refill_backlog", th[i]->refill_backlog);
		jb_i64(&j, "cpu", th[i]->cpu);
		if (!strcmp(th[i]->role, "rx")) {     /* counted where the ring has a reuse order: copy */
			const struct rx_ring *r = &run->rcv.rings[th[i]->ring].r;

			if (r->reuse) {
				jb_u64(&j, "buffers_used", r->buffers_used);
			} else {
				jb_key(&j, "buffers_used");
				jb_raw(&j, "null");
			}
		}
		jb_raw(&j, "}");
	}
	jb_raw(&j, "]");
	jb_key(&j, "params");
	jb_raw(&j, "{");
	jb_str(&j, "topology", g_cfg.topology_name);
	jb_str(&j, "backend", g_cfg.backend_name);
	jb_str(&j, "mode", modes[g_cfg.mode]);
	jb_str(&j, "addr", g_cfg.addr ? g_cfg.addr : "");
	jb_i64(&j, "rings", g_cfg.rings);
	jb_i64(&j, "workers", g_cfg.workers);
	/* workers: who gives a consumed buffer back to the backend */
	jb_str(&j, "workers_return", g_cfg.topology != TOPO_WORKERS || !run->be ? "" :
	       run->be->put_any ? "worker" : "rx0");
	jb_i64(&j, "connections", g_cfg.connections);
	jb_dbl(&j, "duration_s", g_cfg.duration_s);
	jb_dbl(&j, "interval_s", g_cfg.interval_s);
	jb_u64(&j, "send_size", g_cfg.send_size);
	jb_dbl(&j, "rate_gbit", g_cfg.rate_gbit);
	jb_u64(&j, "buf_size", g_cfg.buf_size);
	jb_u64(&j, "bufs", g_cfg.bufs);
	/* the batch the rings used: 1 where the kernel lacks IORING_FEAT_MIN_TIMEOUT */
	jb_u64(&j, "wait_batch", run->have_rcv && run->rcv.rings ? run->rcv.rings[0].wait_batch : 0);
	jb_u64(&j, "wait_min_us", g_cfg.wait_min_us);
	/* buffers one receive completion carried at most: --bundle or its default where the
	 * kernel has capped bundles (copy backend), else 1; 0 for a sender */
	jb_u64(&j, "bundle", !run->have_rcv || !run->rcv.rings ? 0 :
	       run->rcv.rings[0].r.bundle > 1 ? run->rcv.rings[0].r.bundle : 1);
	/* why: --bundle, the default's rule (the receiving CPU's L2 cache), or what the kernel lacks */
	jb_str(&j, "bundle_rule", run->have_rcv && run->rcv.rings ? run->rcv.rings[0].r.bundle_rule : "");
	/* copy: which free buffer the kernel receives into next (--reuse; shared-ifq: in order), and why */
	jb_str(&j, "reuse", run->have_rcv && run->rcv.rings && run->rcv.rings[0].r.reuse ?
	       run->rcv.rings[0].r.reuse : "");
	jb_str(&j, "reuse_rule", run->have_rcv && run->rcv.rings && run->rcv.rings[0].r.reuse_rule ?
	       run->rcv.rings[0].r.reuse_rule : "");
	json_cpus(&j, "rx_cpus", g_cfg.rx_cpus, g_cfg.n_rx_cpus);
	json_cpus(&j, "tx_cpus", g_cfg.tx_cpus, g_cfg.n_tx_cpus);
	jb_str(&j, "work", g_cfg.work == WORK_CHECKSUM ? "checksum" : "none");
	jb_u64(&j, "work_ns_per_kib", g_cfg.work_ns_per_kib);
	jb_dbl(&j, "work_loops_per_us", run->loops_per_us);
	jb_bool(&j, "verify", g_cfg.verify);
	jb_raw(&j, "}");
	jb_emit(&j);
}

static void table_header(void)
{
	out_printf("%8s %-9s %-6s %4s %9s %10s %9s %7s %7s %7s %7s %7s\n", "t_s", "thread", "role",
		   "ring", "Gbit/s", "completions", "returned", "usr%", "sys%", "nvcsw", "nivcsw", "work%");
}

int main(int argc, char **argv)
{
	struct run run = { .sfd = -1, .lfd = -1 };
	struct lg_error err = { .msg = "" };
	struct utsname un;
	sigset_t sigs;
	int ret;

	ret = parse_options(argc, argv, &g_cfg);
	if (ret)
		return ret > 0 ? 0 : 2;
	if (g_cfg.kernel_features) {
		zcrx_kernel_print_json(stdout);
		return 0;
	}
	if (g_cfg.mode != MODE_CONNECT) {
		run.be = backend_find(g_cfg.backend_name, &err);
		if (!run.be)
			return usage_error(&err);
		if (run.be->check(&g_cfg, &err))
			return usage_error(&err);
		g_run.n_emulated = run.be->emulated(&g_cfg, g_run.emulated, LG_MAX_EMULATED);
	}
	if (check_cpus("--rx-cpus", g_cfg.rx_cpus, g_cfg.n_rx_cpus, &err) ||
	    check_cpus("--tx-cpus", g_cfg.tx_cpus, g_cfg.n_tx_cpus, &err) || count_rx_cpus(&err) ||
	    ensure_fd_limit(&err))
		return usage_error(&err);
	if (g_cfg.mode != MODE_LOOPBACK) {
		struct sockaddr_storage ss;
		socklen_t len;

		if (addr_parse(g_cfg.addr, &ss, &len, &err))
			return usage_error(&err);
		if (g_cfg.mode == MODE_LISTEN && g_cfg.nqueues > 1 &&
		    (!addr_port(&ss) || addr_port(&ss) + g_cfg.nqueues - 1 > 65535)) {
			lg_error_set(&err, NULL, 0, "--queues: ring i listens on PORT+i, so --listen needs a fixed PORT "
				     "with PORT+%d <= 65535 (got %s)", g_cfg.nqueues - 1, g_cfg.addr);
			return usage_error(&err);
		}
	}
	g_run.topology = g_cfg.topology_name;
	g_run.backend = g_cfg.backend_name;
	g_run.json = g_cfg.json;
	g_run.nic_model = g_cfg.nic_model;
	if (g_cfg.nic_model)
		snprintf(g_run.nic_model_note, sizeof(g_run.nic_model_note), " [NIC modelled by %s]", g_cfg.nic_model);
	if (uname(&un) == 0)
		snprintf(g_run.kernel, sizeof(g_run.kernel), "%s", un.release);

	/* signals: one signalfd in the main thread; blocked everywhere else (threads inherit) */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) || (run.sfd = signalfd(-1, &sigs, SFD_CLOEXEC)) < 0) {
		lg_error_set(&err, "signalfd", errno, "signal handling");
		goto fail;
	}
	signal(SIGPIPE, SIG_IGN);
	if (pattern_init(g_cfg.send_size)) {
		lg_error_set(&err, "malloc", ENOMEM, "pattern table");
		goto fail;
	}
	if (g_cfg.work_ns_per_kib)
		run.loops_per_us = work_calibrate();
	run.conns = calloc((size_t)g_cfg.connections, sizeof(*run.conns));
	run.tx_fds = calloc((size_t)g_cfg.connections, sizeof(*run.tx_fds));
	if (!run.conns || !run.tx_fds) {
		lg_error_set(&err, "calloc", ENOMEM, "connections");
		goto fail;
	}
	if (g_cfg.mode != MODE_CONNECT) {
		run.have_rcv = true;
		if (receiver_init(&run.rcv, &g_cfg, run.be, &err))
			goto fail;
	}
	if (g_cfg.preflight) {          /* every ring registered (its ifq), then all released and restored */
		/* a modelled NIC: its set-up and restore only; no queue exists to register */
		if (!g_cfg.nic_model && receiver_start(&run.rcv, run.conns, 0, &err))
			goto fail;
		receiver_join(&run.rcv);
		run.have_rcv = false;
		if (g_run.json) {
			struct jbuf j;

			jb_begin(&j, "event");
			jb_str(&j, "event", "preflight");
			jb_str(&j, "status", g_cfg.nic_model ? "modelled" : "ok");
			jb_emit(&j);
		} else if (g_cfg.nic_model) {
			out_printf("preflight on a modelled NIC: set-up and restore only, nothing registered%s\n",
				   g_run.nic_model_note);
		} else {
			out_printf("preflight ok: the receiver could register every ring; everything released\n");
		}
		goto out;
	}
	if (g_cfg.mode == MODE_LOOPBACK)
		ret = setup_loopback(&run, &err);
	else if (g_cfg.mode == MODE_LISTEN)
		ret = setup_listen(&run, &err);
	else
		ret = setup_connect(&run, &err);
	if (ret < 0)
		goto fail;
	if (ret > 0) {                  /* interrupted while waiting for connections */
		if (run.have_rcv)
			receiver_join(&run.rcv);        /* releases the backend (restores the NIC) */
		run.status = ST_INTERRUPTED;
		g_run.t0_ns = now_ns();
		run.end_ns = g_run.t0_ns;
		summary(&run);
		goto out;
	}
	if (run.have_rcv && receiver_start(&run.rcv, run.conns, run.nconns, &err))
		goto fail;
	if (g_cfg.mode != MODE_LISTEN) {
		run.have_snd = true;
		if (sender_start(&run.snd, &g_cfg, run.tx_fds, run.ntx, &err)) {
			run.ntx = 0;    /* sender_join closes them */
			goto fail;
		}
		run.ntx = 0;
	}
	if (!g_run.json) {
		shared_cores_line("");
		table_header();
	}
	g_run.t0_ns = now_ns();
	if (run.have_rcv)
		receiver_go(&run.rcv);
	if (run.have_snd)
		sender_go(&run.snd);
	supervise(&run);
	if (run.have_snd)
		sender_join(&run.snd);
	if (run.have_rcv)
		receiver_join(&run.rcv);
	if ((run.have_rcv && receiver_failed(&run.rcv, &err)) || (run.have_snd && sender_failed(&run.snd, &err))) {
		run.status = ST_ERROR;
		report_error(&err);
	}
	summary(&run);
out:
	for (int i = 0; run.conns && i < g_cfg.connections; i++)   /* --queues: slots fill out of order */
		if (run.conns[i].fd > 0)
			close(run.conns[i].fd);
	for (int i = 0; i < run.ntx; i++)
		close(run.tx_fds[i]);
	if (run.lfd >= 0)
		close(run.lfd);
	for (int i = 0; i < run.nxlfds; i++)
		close(run.xlfds[i]);
	if (run.status == ST_ERROR || (run.have_rcv && run.rcv.verify_errors))
		return 1;
	return 0;
fail:
	report_error(&err);
	if (run.have_snd)
		sender_join(&run.snd);
	if (run.have_rcv)
		receiver_join(&run.rcv);
	run.status = ST_ERROR;
	if (!g_run.t0_ns)
		g_run.t0_ns = now_ns();
	run.end_ns = now_ns();
	if (g_run.json)
		summary(&run);
	run.have_rcv = false;
	goto out;
}
