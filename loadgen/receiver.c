/* receiver.c - the four receive topologies over any backend (backend.h).
 *
 * single:       rx0 receives, verifies and works, gives buffers back.
 * workers:      rx0 receives and pushes (buffer, length, connection, offset) onto a queue;
 *               workers sleep on a condition variable when idle, verify and work, and give the
 *               buffer back: straight to the backend where it takes returns from any thread (zcrx:
 *               the worker writes the RQE), else onto a return queue that rx0 drains and put()s.
 *               Either way the return queue tells rx0 what came back (accounting, refill).
 * ifq-per-ring, shared-ifq: rxN threads, each its own ring and its share of the connections;
 *               whether buffers are per ring or shared is the backend's business (shared_init).
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pattern.h"
#include "receiver.h"
#include "report.h"
#include "work.h"

#define HANDOFF_SLOTS (1u << 16)
#define STARVED_RETRY_NS 200000ULL
#define MAX_VERIFY_REPORTS 10

static volatile uint64_t work_sink;       /* keeps checksums observable */

void pin_self(const int *cpus, int ncpus, int k)
{
	cpu_set_t set;

	if (ncpus <= 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpus[k % ncpus], &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)   /* CPUs were checked at start */
		err_printf("zcrx-loadgen: warning: cannot pin a thread to CPU %d: %s\n", cpus[k % ncpus],
			   errno_name(errno));
}

static void fail(struct receiver *rcv, const struct lg_error *e)
{
	pthread_mutex_lock(&rcv->fail_lock);
	if (!rcv->failed) {
		rcv->failed = true;
		rcv->fail = *e;
	}
	pthread_mutex_unlock(&rcv->fail_lock);
	__atomic_store_n(&rcv->stop, 1, __ATOMIC_RELEASE);
}

bool receiver_failed(struct receiver *rcv, struct lg_error *out)
{
	bool f;

	pthread_mutex_lock(&rcv->fail_lock);
	f = rcv->failed;
	if (f && out)
		*out = rcv->fail;
	pthread_mutex_unlock(&rcv->fail_lock);
	return f;
}

static bool stopping(struct receiver *rcv)
{
	return __atomic_load_n(&rcv->stop, __ATOMIC_ACQUIRE);
}

static void report_mismatch(struct receiver *rcv, const struct conn *c, const struct verify_result *vr)
{
	struct jbuf j;
	int n;

	__atomic_fetch_add(&rcv->verify_errors, vr->bad_bytes, __ATOMIC_RELAXED);
	pthread_mutex_lock(&rcv->fail_lock);
	n = rcv->verify_reports++;
	if (rcv->first_bad_conn < 0 || (c->index == rcv->first_bad_conn && vr->first_offset < rcv->first_bad_offset)) {
		rcv->first_bad_conn = c->index;
		rcv->first_bad_offset = vr->first_offset;
	}
	pthread_mutex_unlock(&rcv->fail_lock);
	if (n >= MAX_VERIFY_REPORTS)
		return;
	err_printf("zcrx-loadgen: verify: connection %d (client port %u) offset %llu: expected 0x%02x, "
		   "got 0x%02x (%llu bad bytes in this buffer)\n", c->index, c->client_port,
		   (unsigned long long)vr->first_offset, vr->expected, vr->got,
		   (unsigned long long)vr->bad_bytes);
	if (!g_run.json)
		return;
	jb_begin(&j, "event");
	jb_str(&j, "event", "verify_error");
	jb_i64(&j, "connection", c->index);
	jb_u64(&j, "client_port", c->client_port);
	jb_u64(&j, "offset", vr->first_offset);
	jb_u64(&j, "expected", vr->expected);
	jb_u64(&j, "got", vr->got);
	jb_u64(&j, "count", vr->bad_bytes);
	jb_emit(&j);
}

/* The per-byte work every consumer applies: verification, checksum, calibrated busy cost. */
static void consume(struct receiver *rcv, struct thread_stats *st, const struct rx_buf *b, uint64_t *sink)
{
	const struct lg_config *cfg = rcv->cfg;
	uint64_t t0;

	if (!cfg->verify && cfg->work == WORK_NONE && !cfg->work_ns_per_kib)
		return;
	t0 = now_ns();
	if (cfg->verify) {
		const struct conn *c = &rcv->conns[b->conn];
		struct verify_result vr = { 0 };

		if (pattern_verify(c->phase, b->offset, b->ptr, b->len, &vr))
			report_mismatch(rcv, c, &vr);
	}
	if (cfg->work == WORK_CHECKSUM)
		*sink += work_checksum(b->ptr, b->len);
	if (cfg->work_ns_per_kib)
		work_busy((uint64_t)b->len * cfg->work_ns_per_kib / 1024);
	st->cur.work_ns += now_ns() - t0;
}

static void wait_go(struct receiver *rcv)
{
	pthread_mutex_lock(&rcv->go_lock);
	while (!rcv->go)
		pthread_cond_wait(&rcv->go_cv, &rcv->go_lock);
	pthread_mutex_unlock(&rcv->go_lock);
}

static struct timespec abs_in(uint64_t ns)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ns / 1000000000ULL);
	ts.tv_nsec += (long)(ns % 1000000000ULL);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/* ---- workers ---- */

static void *worker_main(void *arg)
{
	struct worker_thread *w = arg;
	struct receiver *rcv = w->rcv;
	struct handoff *ho = &rcv->ho;
	char name[16];

	snprintf(name, sizeof(name), "worker%d", w->index);
	pthread_setname_np(pthread_self(), name);
	pin_self(rcv->cfg->rx_cpus, rcv->cfg->n_rx_cpus, rcv->cfg->rings + w->index);
	wait_go(rcv);
	stats_begin(&w->st, name, "worker", -1);
	pthread_mutex_lock(&ho->lock);
	for (;;) {
		if (ho->whead == ho->wtail) {
			if (ho->closing)
				break;
			struct timespec ts = abs_in(stats_ns_to_tick(&w->st) + 1000);

			pthread_cond_timedwait(&ho->work_cv, &ho->lock, &ts);
			pthread_mutex_unlock(&ho->lock);
			stats_tick(&w->st);
			pthread_mutex_lock(&ho->lock);
			continue;
		}
		struct rx_buf b = ho->work[ho->whead++ & ho->mask];

		pthread_mutex_unlock(&ho->lock);
		consume(rcv, &w->st, &b, &w->sink);
		w->st.cur.bytes += b.len;
		w->st.cur.completions++;
		if (rcv->be->put_any)
			rcv->be->put_any(&rcv->rings[0].r, &b);
		pthread_mutex_lock(&ho->lock);
		ho->ret[ho->rtail++ & ho->mask] = b;
		pthread_cond_signal(&ho->ret_cv);
		w->st.cur.bufs_returned++;
		if (now_ns() >= w->st.next_tick_ns) {
			pthread_mutex_unlock(&ho->lock);
			stats_tick(&w->st);
			pthread_mutex_lock(&ho->lock);
		}
	}
	ho->live_workers--;
	pthread_cond_broadcast(&ho->ret_cv);
	pthread_mutex_unlock(&ho->lock);
	stats_end(&w->st);
	return NULL;
}

/* rx0 (workers): take back what the workers finished (put() unless they gave it back to the
 * backend themselves); optionally wait up to ns for some. */
static void drain_returns(struct ring_thread *rt, uint64_t wait_ns)
{
	struct receiver *rcv = rt->rcv;
	struct handoff *ho = &rcv->ho;
	struct rx_buf batch[64];
	uint32_t n;

	do {
		pthread_mutex_lock(&ho->lock);
		if (wait_ns && ho->rhead == ho->rtail) {
			struct timespec ts = abs_in(wait_ns);

			pthread_cond_timedwait(&ho->ret_cv, &ho->lock, &ts);
		}
		wait_ns = 0;
		for (n = 0; n < 64 && ho->rhead != ho->rtail; n++)
			batch[n] = ho->ret[ho->rhead++ & ho->mask];
		pthread_mutex_unlock(&ho->lock);
		if (!rcv->be->put_any) {
			for (uint32_t i = 0; i < n; i++)
				rcv->be->put(&rt->r, &batch[i]);
			rt->st.cur.bufs_returned += n;
		}
		rt->outstanding -= n;
		rt->puts_seen += n;
	} while (n == 64);
}

static void hand_off(struct ring_thread *rt, const struct rx_buf *b)
{
	struct handoff *ho = &rt->rcv->ho;

	pthread_mutex_lock(&ho->lock);
	ho->work[ho->wtail++ & ho->mask] = *b;
	pthread_cond_signal(&ho->work_cv);
	pthread_mutex_unlock(&ho->lock);
	rt->outstanding++;
}

/* ---- ring threads ---- */

static void handle_cqe(struct ring_thread *rt, const struct io_uring_cqe *cqe, uint64_t *sink)
{
	struct receiver *rcv = rt->rcv;
	const struct rx_backend *be = rcv->be;
	uint64_t ud = cqe->user_data;
	struct rx_buf b = { 0 };
	struct rx_event ev = { 0 };
	struct lg_error e;
	int err = 0;
	enum rx_cqe_kind kind = be->decode(&rt->r, cqe, &b, &ev, &err);

	if (ud & RX_UDATA_BACKEND) {
		if (kind == RX_CQE_EVENT)
			report_event(rt->index, rt->st.name, &ev);
		else if (kind == RX_CQE_ERROR) {
			lg_error_set(&e, "io_uring backend request", -err, "ring %d", rt->index);
			fail(rcv, &e);
		}
		return;
	}
	if (ud >= (uint64_t)rcv->nconns)
		return;
	struct conn *c = &rcv->conns[ud];

	switch (kind) {
	case RX_CQE_DATA:
		rt->st.cur.completions++;
		do {                    /* a bundled receive carries several buffers */
			b.conn = (uint32_t)ud;
			b.offset = c->offset;
			b.ring = rt->index;
			c->offset += b.len;
			rt->st.cur.bytes += b.len;
			if (rcv->cfg->topology == TOPO_WORKERS) {
				hand_off(rt, &b);
			} else {
				consume(rcv, &rt->st, &b, sink);
				be->put(&rt->r, &b);
				rt->puts_seen++;
				rt->st.cur.bufs_returned++;
			}
		} while (be->next_buf && be->next_buf(&rt->r, &b));
		break;
	case RX_CQE_EOF:
		if (!c->eof) {
			c->eof = true;
			rt->open--;
		}
		return;
	case RX_CQE_ERROR:
		if (err == -ENOBUFS || err == -ENOSPC) {
			rt->st.cur.enobufs++;
			c->starved = true;
			c->starved_ns = now_ns();
			break;
		}
		lg_error_set(&e, "recv", -err, "ring %d connection %d (client port %u): receive failed",
			     rt->index, c->index, c->client_port);
		if (!c->eof) {
			c->eof = true;
			rt->open--;
		}
		fail(rcv, &e);
		return;
	case RX_CQE_EVENT:
		report_event(rt->index, rt->st.name, &ev);
		return;
	case RX_CQE_IGNORE:
		return;
	}
	if (!(cqe->flags & IORING_CQE_F_MORE) && !c->eof)
		c->need_arm = true;
}

/* Arm every connection that needs it; returns how many stay starved (not re-armed yet). */
static int arm_pending(struct ring_thread *rt, uint64_t *last_puts, bool first)
{
	struct receiver *rcv = rt->rcv;
	int starved = 0;
	uint64_t now = now_ns();

	/* start one further each time, so no connection always gets the freed buffers first */
	rt->arm_start = rt->nconns ? (rt->arm_start + 1) % rt->nconns : 0;
	for (int k = 0; k < rt->nconns; k++) {
		struct conn *c = rt->conns[(rt->arm_start + k) % rt->nconns];
		struct io_uring_sqe *sqe;

		if (!c->need_arm || c->eof)
			continue;
		if (c->starved && rt->puts_seen == *last_puts && now - c->starved_ns < STARVED_RETRY_NS) {
			starved++;
			continue;
		}
		sqe = io_uring_get_sqe(&rt->r.ring);
		if (!sqe) {
			io_uring_submit(&rt->r.ring);
			sqe = io_uring_get_sqe(&rt->r.ring);
			if (!sqe) {
				starved++;
				continue;
			}
		}
		rcv->be->prep_recv(&rt->r, sqe, c->fd);
		io_uring_sqe_set_data64(sqe, (uint64_t)c->index);
		c->need_arm = false;
		c->starved = false;
		if (!first)
			rt->st.cur.rearms++;
	}
	*last_puts = rt->puts_seen;
	return starved;
}

/*
 * While a ring sleeps for its batch, each connection's data waits in its socket. A sleep long
 * enough to fill a quarter of a socket's receive buffer (SO_RCVBUF, which TCP autotunes; about
 * half of it is window) brings TCP close to advertising a zero window, which stalls the sender:
 * on loopback runs then fall into a slow mode (zero-window advertisements by the hundred,
 * throughput down by a quarter). So such a sleep halves the ring's minimum wait, and sleeps that
 * left the sockets nearly empty lengthen it again, up to --wait-min-us.
 */
#define RCVBUF_READ_EVERY 64            /* wakes between SO_RCVBUF reads */
#define WAIT_MIN_FLOOR_US 10

static void adapt_min_wait(struct ring_thread *rt)
{
	unsigned cap = rt->rcv->cfg->wait_min_us;
	bool full = false, quiet = true;

	if (rt->wait_batch <= 1)
		return;
	for (int i = 0; i < rt->nconns; i++) {
		struct conn *c = rt->conns[i];
		uint64_t queued = c->offset - c->offset_at_wake;
		socklen_t len = sizeof(int);
		int v;

		c->offset_at_wake = c->offset;
		if (c->eof || !queued)  /* nothing queued: neither full nor loud (saves a getsockopt) */
			continue;
		if ((!c->rcvbuf || rt->wakes % RCVBUF_READ_EVERY == 0) &&
		    getsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &v, &len) == 0 && v > 0)
			c->rcvbuf = (uint32_t)v;
		if (!c->rcvbuf)
			continue;
		full |= queued >= c->rcvbuf / 4;
		quiet &= queued < c->rcvbuf / 16;
	}
	rt->wakes++;
	if (full && rt->wait_min_us > WAIT_MIN_FLOOR_US)
		rt->wait_min_us = rt->wait_min_us / 2 > WAIT_MIN_FLOOR_US ? rt->wait_min_us / 2 : WAIT_MIN_FLOOR_US;
	else if (quiet && rt->wait_min_us < cap)
		rt->wait_min_us = rt->wait_min_us + rt->wait_min_us / 8 + 1 < cap ?
				  rt->wait_min_us + rt->wait_min_us / 8 + 1 : cap;
}

static void ring_loop(struct ring_thread *rt)
{
	struct receiver *rcv = rt->rcv;
	const struct rx_backend *be = rcv->be;
	bool workers = rcv->cfg->topology == TOPO_WORKERS;
	uint64_t sink = 0, last_puts = 0;
	struct lg_error e;
	int starved, armed_now;

	for (int i = 0; i < rt->nconns; i++)
		rt->conns[i]->need_arm = true;
	starved = arm_pending(rt, &last_puts, true);
	while (!stopping(rcv) && (rt->open > 0 || rt->outstanding > 0)) {
		struct io_uring_cqe *cqe;
		struct __kernel_timespec ts;
		uint64_t wait = stats_ns_to_tick(&rt->st), busy_us;
		unsigned head, n = 0;
		int ret;

		armed_now = 0;
		for (int i = 0; i < rt->nconns; i++)
			armed_now += !rt->conns[i]->eof && !rt->conns[i]->need_arm;
		if (workers && ((starved && !armed_now) || rt->open == 0)) {
			/* nothing can complete until the workers give buffers back */
			io_uring_submit(&rt->r.ring);
			drain_returns(rt, STARVED_RETRY_NS * 5);
		} else {
			if (starved && wait > STARVED_RETRY_NS)
				wait = STARVED_RETRY_NS;
			if (wait > 50000000ULL)
				wait = 50000000ULL;
			if (wait < 1000)
				wait = 1000;
			ts.tv_sec = (long long)(wait / 1000000000ULL);
			ts.tv_nsec = (long long)(wait % 1000000000ULL);
			/* Sleep until wait_batch completions are ready or the minimum wait passed with
			 * one: every wake-up of a sleeping ring is paid by whoever completes its
			 * receive (on loopback, the sender's CPU), so batching them matters. The
			 * minimum counts from the last wake: a ring that was busy that long finds its
			 * data already waiting (a bundled completion carries several buffers, so a
			 * busy ring may hold fewer than wait_batch of them) and must not idle on top. */
			busy_us = (now_ns() - rt->woke_ns) / 1000;
			if (rt->wait_batch > 1 && busy_us < rt->wait_min_us)
				ret = io_uring_submit_and_wait_min_timeout(&rt->r.ring, &cqe, rt->wait_batch, &ts,
									   rt->wait_min_us - (unsigned)busy_us, NULL);
			else
				ret = io_uring_submit_and_wait_timeout(&rt->r.ring, &cqe, 1, &ts, NULL);
			rt->woke_ns = now_ns();
			if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
				lg_error_set(&e, "io_uring_submit_and_wait_timeout", -ret, "ring %d", rt->index);
				fail(rcv, &e);
				break;
			}
			io_uring_for_each_cqe(&rt->r.ring, head, cqe) {
				handle_cqe(rt, cqe, &sink);
				n++;
			}
			io_uring_cq_advance(&rt->r.ring, n);
			adapt_min_wait(rt);
			if (workers)
				drain_returns(rt, 0);
		}
		if (be->refill(&rt->r, &e)) {
			fail(rcv, &e);
			break;
		}
		rt->st.refill_backlog = be->refill_backlog(&rt->r);
		starved = arm_pending(rt, &last_puts, false);
		stats_tick(&rt->st);
	}
	work_sink += sink;
}

static void *ring_main(void *arg)
{
	struct ring_thread *rt = arg;
	struct receiver *rcv = rt->rcv;
	const struct lg_config *cfg = rcv->cfg;
	const struct rx_backend *be = rcv->be;
	struct io_uring_params p;
	struct rx_registration reg;
	struct lg_error e;
	unsigned entries = cfg->ring_entries;
	char name[16];
	int ret;

	snprintf(name, sizeof(name), "rx%d", rt->index);
	snprintf(rt->st.name, sizeof(rt->st.name), "%s", name);
	rt->st.role = "rx";
	rt->st.ring = rt->index;
	pthread_setname_np(pthread_self(), name);
	pin_self(cfg->rx_cpus, cfg->n_rx_cpus, rt->index);

	memset(&p, 0, sizeof(p));
	be->ring_params(cfg, &p, &entries);
	ret = io_uring_queue_init_params(entries, &rt->r.ring, &p);
	if (ret < 0) {
		lg_error_set(&e, "io_uring_queue_init_params", -ret,
			     "ring %d: cannot create an io_uring with flags 0x%x%s", rt->index, p.flags,
			     -ret == EINVAL ? " (kernel too old for these setup flags?)" :
			     -ret == ENOMEM ? " (RLIMIT_MEMLOCK or memory)" : "");
		fail(rcv, &e);
		rt->init_ret = -1;
		__atomic_fetch_sub(&rcv->rings_running, 1, __ATOMIC_ACQ_REL);
		sem_post(&rt->inited);
		return NULL;
	}
	rt->ring_ok = true;
	rt->wait_batch = (p.features & IORING_FEAT_MIN_TIMEOUT) ? cfg->wait_batch : 1;
	rt->wait_min_us = cfg->wait_min_us;
	rt->r.index = rt->index;
	rt->r.nrings = cfg->rings;
	rt->r.cfg = cfg;
	rt->r.shared = rcv->shared;
	if (be->ring_init(&rt->r, &e)) {
		fail(rcv, &e);
		rt->init_ret = -1;
		sem_post(&rt->inited);
		goto out;
	}
	be->registration(&rt->r, &reg);
	report_registration(rt->index, name, &reg);
	rt->init_ret = 0;
	sem_post(&rt->inited);

	wait_go(rcv);
	if (rcv->aborted)
		goto out;
	stats_begin(&rt->st, name, "rx", rt->index);
	ring_loop(rt);
	if (cfg->topology == TOPO_WORKERS) {
		/* workers finish what they hold before the buffers go away */
		struct handoff *ho = &rcv->ho;

		pthread_mutex_lock(&ho->lock);
		ho->closing = true;
		pthread_cond_broadcast(&ho->work_cv);
		while (ho->live_workers > 0)
			pthread_cond_wait(&ho->ret_cv, &ho->lock);
		pthread_mutex_unlock(&ho->lock);
		drain_returns(rt, 0);
	}
	if (be->stats) {
		struct rx_event ev[8];
		int n = be->stats(&rt->r, ev, 8);

		for (int i = 0; i < n; i++)
			report_event(rt->index, name, &ev[i]);
	}
	stats_end(&rt->st);
out:
	if (rt->r.priv)
		be->ring_fini(&rt->r);
	io_uring_queue_exit(&rt->r.ring);
	__atomic_fetch_sub(&rcv->rings_running, 1, __ATOMIC_ACQ_REL);
	return NULL;
}

int receiver_init(struct receiver *rcv, const struct lg_config *cfg, const struct rx_backend *be,
		  struct lg_error *err)
{
	memset(rcv, 0, sizeof(*rcv));
	rcv->cfg = cfg;
	rcv->be = be;
	rcv->first_bad_conn = -1;
	pthread_mutex_init(&rcv->go_lock, NULL);
	pthread_cond_init(&rcv->go_cv, NULL);
	pthread_mutex_init(&rcv->fail_lock, NULL);
	pthread_mutex_init(&rcv->ho.lock, NULL);
	pthread_cond_init(&rcv->ho.work_cv, NULL);
	pthread_cond_init(&rcv->ho.ret_cv, NULL);
	if (be->shared_init(cfg, &rcv->shared, err))
		return -1;
	rcv->shared_ok = true;
	return 0;
}

int receiver_start(struct receiver *rcv, struct conn *conns, int nconns, struct lg_error *err)
{
	const struct lg_config *cfg = rcv->cfg;

	rcv->conns = conns;
	rcv->nconns = nconns;
	rcv->rings = calloc((size_t)cfg->rings, sizeof(*rcv->rings));
	rcv->workers = calloc((size_t)(cfg->workers ? cfg->workers : 1), sizeof(*rcv->workers));
	if (!rcv->rings || !rcv->workers) {
		lg_error_set(err, "calloc", ENOMEM, "receiver threads");
		return -1;
	}
	if (cfg->topology == TOPO_WORKERS) {
		rcv->ho.mask = HANDOFF_SLOTS - 1;
		rcv->ho.work = calloc(HANDOFF_SLOTS, sizeof(struct rx_buf));
		rcv->ho.ret = calloc(HANDOFF_SLOTS, sizeof(struct rx_buf));
		if (!rcv->ho.work || !rcv->ho.ret) {
			lg_error_set(err, "calloc", ENOMEM, "hand-off queues");
			return -1;
		}
	}
	for (int i = 0; i < cfg->rings; i++) {
		struct ring_thread *rt = &rcv->rings[i];

		rt->index = i;
		rt->rcv = rcv;
		rt->conns = calloc((size_t)(nconns ? nconns : 1), sizeof(*rt->conns));  /* 0: --preflight */
		if (!rt->conns) {
			lg_error_set(err, "calloc", ENOMEM, "ring %d connections", i);
			return -1;
		}
		for (int c = i; c < nconns; c += cfg->rings)
			rt->conns[rt->nconns++] = &conns[c];
		rt->open = rt->nconns;
		sem_init(&rt->inited, 0, 0);
		if (pthread_create(&rt->th, NULL, ring_main, rt)) {
			lg_error_set(err, "pthread_create", errno ? errno : EAGAIN, "ring %d", i);
			return -1;
		}
		rt->started = true;
		__atomic_fetch_add(&rcv->rings_running, 1, __ATOMIC_ACQ_REL);
		while (sem_wait(&rt->inited) && errno == EINTR)
			;
		if (rt->init_ret) {
			receiver_failed(rcv, err);
			return -1;
		}
	}
	if (cfg->topology == TOPO_WORKERS) {
		for (int i = 0; i < cfg->workers; i++) {
			struct worker_thread *w = &rcv->workers[i];

			w->index = i;
			w->rcv = rcv;
			rcv->ho.live_workers++;
			if (pthread_create(&w->th, NULL, worker_main, w)) {
				rcv->ho.live_workers--;
				lg_error_set(err, "pthread_create", EAGAIN, "worker %d", i);
				return -1;
			}
			w->started = true;
		}
	}
	return 0;
}

void receiver_go(struct receiver *rcv)
{
	pthread_mutex_lock(&rcv->go_lock);
	rcv->go = true;
	pthread_cond_broadcast(&rcv->go_cv);
	pthread_mutex_unlock(&rcv->go_lock);
}

bool receiver_done(struct receiver *rcv)
{
	return __atomic_load_n(&rcv->rings_running, __ATOMIC_ACQUIRE) == 0;
}

void receiver_stop(struct receiver *rcv)
{
	__atomic_store_n(&rcv->stop, 1, __ATOMIC_RELEASE);
}

void receiver_join(struct receiver *rcv)
{
	if (!rcv->go) {                 /* start failed: release whoever waits */
		pthread_mutex_lock(&rcv->go_lock);
		rcv->aborted = true;
		pthread_mutex_unlock(&rcv->go_lock);
		pthread_mutex_lock(&rcv->ho.lock);
		rcv->ho.closing = true;
		pthread_cond_broadcast(&rcv->ho.work_cv);
		pthread_mutex_unlock(&rcv->ho.lock);
		receiver_go(rcv);
	}
	for (int i = 0; rcv->rings && i < rcv->cfg->rings; i++)
		if (rcv->rings[i].started)
			pthread_join(rcv->rings[i].th, NULL);
	if (rcv->aborted) {
		pthread_mutex_lock(&rcv->ho.lock);
		rcv->ho.closing = true;
		pthread_cond_broadcast(&rcv->ho.work_cv);
		pthread_mutex_unlock(&rcv->ho.lock);
	}
	for (int i = 0; rcv->workers && i < rcv->cfg->workers; i++)
		if (rcv->workers[i].started)
			pthread_join(rcv->workers[i].th, NULL);
	if (rcv->shared_ok)
		rcv->be->shared_fini(rcv->shared);
	rcv->shared_ok = false;
}
