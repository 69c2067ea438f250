/* rx_zcrx.c - the "zcrx-nodev" and "zcrx" backends: multishot IORING_OP_RECV_ZC into a registered
 * area, buffers returned through the refill ring (one RQE per CQE, store-release tail, and
 * ZCRX_CTRL_FLUSH_RQ under NODEV, whose kernel never consumes the refill ring by itself).
 *
 * zcrx-nodev (Linux >= 7.1): ZCRX_REG_NODEV, any TCP socket (loopback too). The uAPI, CQEs, refill
 * protocol and export/import sharing are real; the kernel COPIES every byte into the area (no NIC,
 * no page pool, no NAPI): never zero-copy. zcrx: the same on a real NIC queue (--ifname/--queue).
 *
 * Topologies: single / workers: one ifq on ring 0. ifq-per-ring: one ifq per ring. shared-ifq:
 * ring 0 registers the ifq and exports it (ZCRX_CTRL_EXPORT), rings 1..N-1 import it
 * (ZCRX_REG_IMPORT), each ring in its own thread; the single refill ring is written under a
 * userspace mutex. workers: the worker threads write the RQEs themselves (put_any), under the same
 * mutex, and the ring thread flushes (NODEV) when they tell it. On 7.2+ the ifq is registered with an event descriptor: ZCRX_EVENT_COPY /
 * ALLOC_FAIL CQEs (exporting ring only, one per arm, re-armed) and zcrx_stats in the refill region.
 */
#include <errno.h>
#include <net/if.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "nic.h"
#include "nic_model.h"
#include "report.h"
#include "zcrx_uapi.h"

#define ZCRX_EVENT_UDATA (RX_UDATA_BACKEND | 0x7a637278ULL)  /* "zcrx" */
#define ZCRX_MIN_AREA (4u << 20)

struct zcrx_shared {
	bool nodev;
	struct zcrx_kernel kernel;
	struct zcrx_ifq ifqs[LG_MAX_RINGS];     /* owned ifqs, freed after every ring is gone */
	int export_fd;                          /* shared-ifq: ring 0's export, imported by the rest */
	int src_ring_fd;                        /* shared-ifq, --share-uapi v4: ring 0's fd, shared by the rest */
	pthread_mutex_t rq_lock;                /* shared-ifq, workers: the refill ring's writers */
	struct nic_state nic;                   /* zcrx: the NIC settings to restore */
	char driver[32];
	unsigned ifindex;
};

struct zcrx_pending {
	uint64_t off;
	uint32_t len;
};

struct zcrx_ring {
	struct zcrx_ifq *ifq;           /* the ifq this ring receives through */
	struct zcrx_ifq imported;       /* shared-ifq rings > 0: a view of ring 0's ifq */
	bool exported, imported_flag, shared, events;
	bool locked;                    /* other threads write this ring's RQEs: take rq_lock */
	int flush_due;                  /* put_any() wrote RQEs since the last refill() (atomic) */
	struct zcrx_pending *batch;     /* put() since the last refill() */
	uint32_t nbatch, batch_cap;
	uint64_t ev_copy, ev_alloc_fail, ev_other;     /* event CQEs seen (totals) */
	uint64_t ev_pending[LG_ZCRX_EVENT_LAST];        /* seen since the last "event" record */
	uint64_t ev_last_ns[LG_ZCRX_EVENT_LAST];
};

static uint32_t pow2_at_least(uint64_t n)
{
	uint32_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

static uint64_t area_bytes(const struct lg_config *cfg)
{
	uint64_t len = (uint64_t)cfg->bufs * cfg->buf_size;

	len = len < ZCRX_MIN_AREA ? ZCRX_MIN_AREA : len;
	return (len + ZCRX_PAGE_SIZE - 1) / ZCRX_PAGE_SIZE * ZCRX_PAGE_SIZE;
}

/* One RQE per page-sized buffer of the area, so the refill ring can never overflow. */
static uint32_t rq_entries(const struct lg_config *cfg)
{
	uint32_t n = pow2_at_least(area_bytes(cfg) / ZCRX_PAGE_SIZE);

	return n > 32768 ? 32768 : n;
}

static int zcrx_check_common(const struct lg_config *cfg, bool nodev, struct lg_error *err)
{
	if (area_bytes(cfg) > (4ULL << 30)) {
		lg_error_set(err, NULL, 0, "--bufs x --buf-size exceeds the 4 GiB zcrx area limit of this loadgen");
		return -1;
	}
	if (area_bytes(cfg) / ZCRX_PAGE_SIZE > 32768) {
		lg_error_set(err, NULL, 0, "--bufs x --buf-size gives more than 32768 pages (refill ring limit); "
			     "use at most 128 MiB");
		return -1;
	}
	if (cfg->bundle_set) {
		lg_error_set(err, NULL, 0, "--bundle goes with --backend copy (a zcrx receive posts one "
			     "completion per buffer)");
		return -1;
	}
	if (cfg->reuse_set) {
		lg_error_set(err, NULL, 0, "--reuse goes with --backend copy (a zcrx ring gets its buffers "
			     "back through the refill ring, in order)");
		return -1;
	}
	if (nodev && (cfg->ifname || cfg->queue >= 0 || cfg->nqueues || cfg->setup_nic)) {
		lg_error_set(err, NULL, 0, "--ifname/--queue/--queues/--setup-nic go with --backend zcrx, not zcrx-nodev");
		return -1;
	}
	if (!nodev && (!cfg->ifname || (cfg->queue < 0 && !cfg->nqueues))) {
		lg_error_set(err, NULL, 0, "--backend zcrx needs --ifname IF and --queue Q (a NIC RX queue; "
			     "ifq-per-ring: --queues Q1,..,QN); without a zcrx-capable NIC use --backend zcrx-nodev");
		return -1;
	}
	return 0;
}

static int nodev_check(const struct lg_config *cfg, struct lg_error *err)
{
	return zcrx_check_common(cfg, true, err);
}

static int hw_check(const struct lg_config *cfg, struct lg_error *err)
{
	if (zcrx_check_common(cfg, false, err))
		return -1;
	/* ifq-per-ring: a queue, a listening port and a flow rule per ring (--queues); the other
	 * topologies register one queue (--queue), which two rings could not both register (EEXIST). */
	if (cfg->nqueues && cfg->queue >= 0) {
		lg_error_set(err, NULL, 0, "--queue and --queues exclude each other (--queues: ifq-per-ring, one "
			     "queue per ring)");
		return -1;
	}
	if (cfg->nqueues && cfg->topology != TOPO_IFQ_PER_RING) {
		lg_error_set(err, NULL, 0, "--queues gives each ring of ifq-per-ring its own queue; %s registers one "
			     "queue: use --queue Q", cfg->topology_name);
		return -1;
	}
	if (cfg->topology == TOPO_IFQ_PER_RING && cfg->rings > 1 && cfg->nqueues != cfg->rings) {
		if (cfg->nqueues)
			lg_error_set(err, NULL, 0, "ifq-per-ring with %d rings needs %d queues, one per ring: --queues "
				     "gives %d", cfg->rings, cfg->rings, cfg->nqueues);
		else
			lg_error_set(err, NULL, 0, "--backend zcrx binds one NIC queue (--queue %d); ifq-per-ring with "
				     "%d rings needs one queue per ring: --queues Q1,..,Q%d (or shared-ifq to spread "
				     "one queue over %d rings)", cfg->queue, cfg->rings, cfg->rings, cfg->rings);
		return -1;
	}
	if (cfg->nqueues > 1 && cfg->connections % cfg->rings) {
		lg_error_set(err, NULL, 0, "--queues: ring i receives the connections to port PORT+i, so --connections "
			     "(%d) must be a multiple of --rings (%d)", cfg->connections, cfg->rings);
		return -1;
	}
	if (cfg->nic_model && nic_model_load(cfg->nic_model, err))     /* a file that is no model: usage */
		return -1;
	return 0;
}

static int nodev_emulated(const struct lg_config *cfg, const char **out, int max)
{
	if (max < 1)
		return 0;
	out[0] = LG_EMULATED_NIC;       /* no device: the kernel copies into the area; not zero-copy */
	return 1;
}

static int hw_emulated(const struct lg_config *cfg, const char **out, int max)
{
	return 0;
}

static int shared_init(const struct lg_config *cfg, void **shared, bool nodev, struct lg_error *err)
{
	struct zcrx_shared *s = calloc(1, sizeof(*s));

	*shared = NULL;
	if (!s) {
		lg_error_set(err, "calloc", ENOMEM, "zcrx shared state");
		return -1;
	}
	s->nodev = nodev;
	s->export_fd = -1;
	pthread_mutex_init(&s->rq_lock, NULL);
	zcrx_kernel_detect(&s->kernel);
	if (zcrx_kernel_check(&s->kernel, nodev, cfg->topology == TOPO_SHARED_IFQ && !cfg->share_v4, err))
		goto fail;
	if (cfg->share_v4 && zcrx_kernel_check_v4(&s->kernel, err))
		goto fail;
	if (!nodev) {   /* checks (and with --setup-nic applies) the NIC settings before registering */
		unsigned queues[LG_MAX_RINGS], n = cfg->nqueues ? (unsigned)cfg->nqueues : 1;

		for (unsigned i = 0; i < n; i++)
			queues[i] = (unsigned)(cfg->nqueues ? cfg->queues[i] : cfg->queue);
		if (cfg->nic_transcript && nic_transcript_open(cfg->nic_transcript, err))
			goto fail;
		if (nic_prepare(cfg->ifname, queues, n, cfg->addr, cfg->setup_nic, &s->nic, err))
			goto fail;
		s->ifindex = s->nic.ifindex;
		snprintf(s->driver, sizeof(s->driver), "%s", s->nic.driver);
	}
	*shared = s;
	return 0;
fail:
	pthread_mutex_destroy(&s->rq_lock);
	free(s);
	return -1;
}

static int nodev_shared_init(const struct lg_config *cfg, void **shared, struct lg_error *err)
{
	return shared_init(cfg, shared, true, err);
}

static int hw_shared_init(const struct lg_config *cfg, void **shared, struct lg_error *err)
{
	return shared_init(cfg, shared, false, err);
}

static void zcrx_shared_fini(void *shared)
{
	struct zcrx_shared *s = shared;

	if (!s)
		return;
	for (int i = 0; i < LG_MAX_RINGS; i++) {
		struct zcrx_ifq *ifq = &s->ifqs[i];
		struct rx_event ev = { .name = "stats" };
		char thread[16];

		if (ifq->stats) {       /* the kernel's counters for this ifq, all rings included */
			ev.count = __atomic_load_n(&ifq->stats->copy_count, __ATOMIC_ACQUIRE);
			ev.bytes = __atomic_load_n(&ifq->stats->copy_bytes, __ATOMIC_ACQUIRE);
			snprintf(thread, sizeof(thread), "rx%d", i);
			report_event(i, thread, &ev);
		}
		zcrx_ifq_free(ifq);
	}
	if (s->export_fd >= 0)
		close(s->export_fd);
	nic_restore(&s->nic);
	pthread_mutex_destroy(&s->rq_lock);
	free(s);
}

static void zcrx_ring_params(const struct lg_config *cfg, struct io_uring_params *p, unsigned *entries)
{
	/* as the copy backend: capped, a full CQ ends multishot receives, which are re-armed */
	uint32_t cq = pow2_at_least(2 * (uint64_t)rq_entries(cfg) + 4 * (uint64_t)cfg->conns_per_ring);

	p->flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQE32 |
		    IORING_SETUP_CQSIZE;
	p->cq_entries = cq < 256 ? 256 : cq > LG_MAX_CQ_ENTRIES ? LG_MAX_CQ_ENTRIES : cq;
	*entries = cfg->ring_entries;
}

static int register_own(struct rx_ring *r, struct zcrx_shared *s, struct zcrx_ring *z, struct lg_error *err)
{
	const struct lg_config *cfg = r->cfg;
	struct zcrx_reg_opts o = {
		.nodev = s->nodev,
		.ifindex = s->ifindex,
		.rxq = (uint32_t)(cfg->nqueues ? cfg->queues[r->index] : cfg->queue < 0 ? 0 : cfg->queue),
		.ifname = cfg->ifname,
		.driver = s->driver,
		.rq_entries = rq_entries(cfg),
		.area_len = area_bytes(cfg),
		.events = s->kernel.have_events,
		.event_user_data = ZCRX_EVENT_UDATA,
	};
	struct zcrx_ifq *ifq = &s->ifqs[r->index];

	if (zcrx_register(&r->ring, &o, &s->kernel, ifq, err)) {
		if (!s->nodev) {
			nic_transcribe_registration(&s->nic, o.rxq, err->err ? err->err : EINVAL);
			nic_explain_register_error(&s->nic, err);
		}
		return -1;
	}
	if (!s->nodev)
		nic_transcribe_registration(&s->nic, o.rxq, 0);
	z->ifq = ifq;
	z->events = o.events;   /* registration arms each event type once; decode() re-arms */
	return 0;
}

static int zcrx_ring_init(struct rx_ring *r, struct lg_error *err)
{
	struct zcrx_shared *s = r->shared;
	struct zcrx_ring *z = calloc(1, sizeof(*z));

	if (!z) {
		lg_error_set(err, "calloc", ENOMEM, "ring %d zcrx state", r->index);
		return -1;
	}
	r->priv = z;
	z->shared = r->cfg->topology == TOPO_SHARED_IFQ;
	z->locked = z->shared || r->cfg->topology == TOPO_WORKERS;
	z->batch_cap = rq_entries(r->cfg);
	z->batch = calloc(z->batch_cap, sizeof(*z->batch));
	if (!z->batch) {
		lg_error_set(err, "calloc", ENOMEM, "ring %d refill batch", r->index);
		return -1;
	}
	if (!z->shared || r->index == 0) {
		if (register_own(r, s, z, err))
			return -1;
		if (z->shared && r->cfg->share_v4) {
			s->src_ring_fd = r->ring.ring_fd;    /* the others register onto it (v4 series) */
		} else if (z->shared) {
			if (zcrx_export(&r->ring, z->ifq->id, &s->export_fd, err))
				return -1;
			z->exported = true;
		}
		return 0;
	}
	if (r->cfg->share_v4) {   /* shared-ifq, ring > 0, v4 series: register onto ring 0's ifq */
		if (zcrx_share_v4(&r->ring, s->src_ring_fd, &s->ifqs[0], &z->imported, &s->kernel, err))
			return -1;
		z->ifq = &z->imported;
		z->imported_flag = true;
		return 0;
	}
	/* shared-ifq, ring > 0: import ring 0's export (rings init strictly in order) */
	int fd = dup(s->export_fd);

	if (fd < 0) {
		lg_error_set(err, "dup", errno, "ring %d: cannot duplicate the exported zcrx fd", r->index);
		return -1;
	}
	if (zcrx_import(&r->ring, fd, &s->ifqs[0], &z->imported, err))
		return -1;
	z->ifq = &z->imported;
	z->imported_flag = true;
	return 0;
}

static void zcrx_ring_fini(struct rx_ring *r)
{
	struct zcrx_ring *z = r->priv;

	if (!z)
		return;
	free(z->batch);
	free(z);
	r->priv = NULL;
}

static void zcrx_registration(struct rx_ring *r, struct rx_registration *out)
{
	struct zcrx_ring *z = r->priv;

	memset(out, 0, sizeof(*out));
	out->zcrx_id = (int)z->ifq->id;
	out->ifq = z->shared ? 0 : r->index;
	out->exported = z->exported;
	out->imported = z->imported_flag;
	out->rq_entries = z->ifq->rq_entries;
	out->area_bytes = z->ifq->area_len;
	out->rx_buf_len = z->ifq->rx_buf_len ? z->ifq->rx_buf_len : ZCRX_PAGE_SIZE;
}

static void zcrx_prep(struct rx_ring *r, struct io_uring_sqe *sqe, int fd)
{
	struct zcrx_ring *z = r->priv;

	zcrx_prep_recv(sqe, fd, z->ifq->id);
}

static enum rx_cqe_kind zcrx_decode(struct rx_ring *r, const struct io_uring_cqe *cqe,
				    struct rx_buf *buf, struct rx_event *ev, int *err)
{
	struct zcrx_ring *z = r->priv;
	struct lg_error e;

	if (cqe->user_data == ZCRX_EVENT_UDATA) {
		/* One CQE per armed event; re-arm it. Records are rate-limited to one per type per
		 * interval (count = CQEs since the last record); totals come at the end (stats). */
		uint32_t type = (uint32_t)cqe->res;
		uint64_t now = now_ns();

		if (type >= LG_ZCRX_EVENT_LAST) {
			z->ev_other++;
			return RX_CQE_IGNORE;
		}
		if (type == LG_ZCRX_EVENT_COPY)
			z->ev_copy++;
		else
			z->ev_alloc_fail++;
		z->ev_pending[type]++;
		if (zcrx_arm_event(&r->ring, z->ifq->id, type, &e)) {
			*err = -e.err;
			return RX_CQE_ERROR;
		}
		if (z->ev_last_ns[type] && now - z->ev_last_ns[type] < (uint64_t)(r->cfg->interval_s * 1e9))
			return RX_CQE_IGNORE;
		snprintf(ev->name, sizeof(ev->name), "%s", type == LG_ZCRX_EVENT_COPY ? "copy" : "alloc_fail");
		ev->count = z->ev_pending[type];
		z->ev_pending[type] = 0;
		z->ev_last_ns[type] = now;
		return RX_CQE_EVENT;
	}
	if (cqe->user_data & RX_UDATA_BACKEND)
		return RX_CQE_IGNORE;
	if (cqe->res < 0) {
		/* Every area buffer is held by userspace (e.g. queued to workers): the copy path has
		 * no free buffer and ends the multishot with ENOMEM, leaving the data in the socket.
		 * That is "out of buffers" (re-armed once buffers come back), like ENOBUFS for copy;
		 * refill() flushes every batch, so it is never the unflushed-NODEV ENOMEM. */
		*err = cqe->res == -ENOMEM ? -ENOBUFS : cqe->res;
		return RX_CQE_ERROR;
	}
	if (cqe->res == 0)
		return RX_CQE_EOF;
	buf->ptr = zcrx_cqe_payload(z->ifq, cqe, &buf->token);
	buf->len = (uint32_t)cqe->res;
	return RX_CQE_DATA;
}

static void zcrx_put(struct rx_ring *r, const struct rx_buf *buf)
{
	struct zcrx_ring *z = r->priv;

	if (z->nbatch == z->batch_cap)          /* cannot happen: one RQE per area page */
		return;
	z->batch[z->nbatch].off = buf->token;
	z->batch[z->nbatch].len = buf->len;
	z->nbatch++;
}

/* Write the batch's RQEs and publish the tail; returns how many went in. */
static uint32_t push_batch(struct zcrx_ring *z)
{
	uint32_t n = 0;

	while (n < z->nbatch && zcrx_rq_push(z->ifq, z->batch[n].off, z->batch[n].len))
		n++;
	if (n)
		zcrx_rq_commit(z->ifq);
	return n;
}

/* workers: a worker gives its buffer back by writing the RQE itself, as a real application's
 * workers would; the ring thread flushes on its next refill() (NODEV needs it from the ring's
 * own thread: FLUSH_RQ is a register call of a single-issuer ring). */
static void zcrx_put_any(struct rx_ring *r, const struct rx_buf *buf)
{
	struct zcrx_shared *s = r->shared;
	struct zcrx_ring *z = r->priv;

	pthread_mutex_lock(&s->rq_lock);
	if (zcrx_rq_push(z->ifq, buf->token, buf->len))  /* cannot fail: one RQE per area page */
		zcrx_rq_commit(z->ifq);
	pthread_mutex_unlock(&s->rq_lock);
	__atomic_store_n(&z->flush_due, 1, __ATOMIC_RELEASE);
}

static int zcrx_refill(struct rx_ring *r, struct lg_error *err)
{
	struct zcrx_shared *s = r->shared;
	struct zcrx_ring *z = r->priv;
	bool flush = __atomic_exchange_n(&z->flush_due, 0, __ATOMIC_ACQ_REL);
	uint32_t n;

	if (!z->nbatch && !flush)
		return 0;
	if (z->locked)
		pthread_mutex_lock(&s->rq_lock);
	if (z->shared)
		z->ifq->rq_tail = s->ifqs[0].rq_tail;   /* the one tail every ring appends to */
	n = push_batch(z);
	if (z->shared)
		s->ifqs[0].rq_tail = z->ifq->rq_tail;
	if (z->locked)
		pthread_mutex_unlock(&s->rq_lock);
	if (n < z->nbatch)
		memmove(z->batch, z->batch + n, (z->nbatch - n) * sizeof(*z->batch));
	z->nbatch -= n;
	if (s->nodev && zcrx_flush(&r->ring, z->ifq->id, err))
		return -1;
	return 0;
}

static uint64_t zcrx_backlog(struct rx_ring *r)
{
	struct zcrx_ring *z = r->priv;

	return zcrx_rq_backlog(z->ifq) + z->nbatch;
}

static int zcrx_stats(struct rx_ring *r, struct rx_event *ev, int max)
{
	struct zcrx_ring *z = r->priv;
	int n = 0;

	if (!z->events || max < 2)
		return 0;
	snprintf(ev[n].name, sizeof(ev[n].name), "copy_events");
	ev[n++].count = z->ev_copy;
	snprintf(ev[n].name, sizeof(ev[n].name), "alloc_fail_events");
	ev[n++].count = z->ev_alloc_fail;
	return n;       /* the ifq's zcrx_stats come from shared_fini, once every ring is done */
}

const struct rx_backend rx_backend_zcrx_nodev = {
	.name = LG_BACKEND_ZCRX_NODEV,
	.check = nodev_check,
	.emulated = nodev_emulated,
	.shared_init = nodev_shared_init,
	.shared_fini = zcrx_shared_fini,
	.ring_params = zcrx_ring_params,
	.ring_init = zcrx_ring_init,
	.ring_fini = zcrx_ring_fini,
	.registration = zcrx_registration,
	.prep_recv = zcrx_prep,
	.decode = zcrx_decode,
	.put = zcrx_put,
	.put_any = zcrx_put_any,
	.refill = zcrx_refill,
	.refill_backlog = zcrx_backlog,
	.stats = zcrx_stats,
};

const struct rx_backend rx_backend_zcrx = {
	.name = LG_BACKEND_ZCRX,
	.check = hw_check,
	.emulated = hw_emulated,
	.shared_init = hw_shared_init,
	.shared_fini = zcrx_shared_fini,
	.ring_params = zcrx_ring_params,
	.ring_init = zcrx_ring_init,
	.ring_fini = zcrx_ring_fini,
	.registration = zcrx_registration,
	.prep_recv = zcrx_prep,
	.decode = zcrx_decode,
	.put = zcrx_put,
	.put_any = zcrx_put_any,
	.refill = zcrx_refill,
	.refill_backlog = zcrx_backlog,
	.stats = zcrx_stats,
};
