/* rx_copy.c - the "copy" backend: multishot IORING_OP_RECV into provided-buffer rings.
 *
 * The kernel copies every byte into userspace buffers: nothing here is zero-copy.
 * single / workers / ifq-per-ring: each ring has its own pool of --bufs buffers, all posted to
 * the ring's provided-buffer ring; put() re-adds a buffer, refill() publishes (advances).
 * shared-ifq (an emulation): one pool for all rings and one refill queue under a mutex, the way
 * the real shared zcrx refill ring is synchronised in userspace. put() collects buffer ids;
 * refill() takes the lock, appends them to the shared queue ("RQE writes + tail store") and then
 * moves up to the ring's share of the pool from the queue into its own provided-buffer ring
 * (standing in for the kernel refilling from the shared ifq's refill ring).
 * Bundled receives (--bundle N > 1, IORING_RECVSEND_BUNDLE): one CQE names its first buffer id
 * and a length of at most N buffers (the multishot per-receive cap, sqe->len); the kernel filled
 * that buffer and the ones after it in buffer-ring order, each full but the last. ring_bid[]
 * remembers which id went into each ring slot and bid_slot[] where each id went, so next_buf()
 * can name them all.
 * Reuse order (--reuse, params.reuse): the kernel takes buffers from a provided-buffer ring in
 * ring order, so buffers put back at its tail come round again only after every other buffer of
 * the pool: the copy sweeps the whole pool (128 x 64 KiB = 8 MiB by default, several times an L2
 * cache) and writes into memory the CPU no longer caches. lifo (the default but for shared-ifq)
 * instead writes the buffers given back since the last refill over the ring slots the kernel
 * reads next, most recent first, and moves the buffers that were there to the tail: the kernel
 * receives into the buffers that were just read, and the pool stays whole in the ring (no more
 * ENOBUFS than in turn). That is safe because the kernel consumes ring slots only inside this
 * ring's own io_uring_enter() (IORING_SETUP_DEFER_TASKRUN + SINGLE_ISSUER: receives run as task
 * work of this thread) and in order, so once every CQE was read the slot after the last
 * delivered buffer is the kernel's head. A refill with CQEs still unread (or overflowed) does
 * not know the head and appends in turn. Each ring marks the buffers it received into and counts
 * them at its end (r->buffers_used, the summary's threads[].buffers_used): the memory its copies
 * wrote.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backend.h"

#define COPY_BGID 0

struct copy_pool {
	uint8_t *area;
	uint32_t nbufs, buf_size;
	/* shared-ifq only: the refill queue of buffer ids, guarded by lock */
	pthread_mutex_t lock;
	uint16_t *q;
	uint32_t qmask;
	uint32_t head, tail;
};

struct copy_ring {
	struct io_uring_buf_ring *br;
	uint32_t entries;
	struct copy_pool *pool;
	struct copy_pool own;           /* per-ring pool (not shared-ifq) */
	bool shared;
	int adds;                       /* buffers added to br since the last advance */
	uint32_t in_kernel;             /* shared: posted to br and not yet delivered */
	uint32_t target;                /* shared: this ring's share of the pool */
	uint16_t *batch;                /* shared: ids put() since the last refill() */
	uint32_t nbatch;
	/* bundles and lifo: the id in each ring slot, the slot of each id (slots count like the
	 * ring's 16-bit tail), and the CQE in hand */
	uint16_t *ring_bid;
	uint16_t *bid_slot;
	uint16_t next_slot;
	uint32_t bundle_left;
	bool lifo;                      /* put() collects ids in batch, refill() puts them first */
	uint16_t head;                  /* lifo: the slot after the last buffer delivered */
	uint64_t *used;                 /* one bit per buffer of the pool this ring received into */
};

static uint32_t pow2_at_least(uint32_t n)
{
	uint32_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

static int pool_init(struct copy_pool *p, const struct lg_config *cfg, struct lg_error *err)
{
	size_t len = (size_t)cfg->bufs * cfg->buf_size;

	p->nbufs = cfg->bufs;
	p->buf_size = cfg->buf_size;
	/* Pre-faulted: first-touch page faults would otherwise land inside measured intervals and
	 * make the process's memory grow for as long as new buffers come into use. */
	p->area = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p->area == MAP_FAILED) {
		p->area = NULL;
		lg_error_set(err, "mmap", errno, "cannot allocate a buffer pool of %zu bytes", len);
		return -1;
	}
	return 0;
}

static void pool_fini(struct copy_pool *p)
{
	if (p->area)
		munmap(p->area, (size_t)p->nbufs * p->buf_size);
	free(p->q);
	p->area = NULL;
	p->q = NULL;
}

static int copy_check(const struct lg_config *cfg, struct lg_error *err)
{
	if (cfg->ifname || cfg->queue >= 0 || cfg->nqueues || cfg->setup_nic) {
		lg_error_set(err, NULL, 0, "--ifname/--queue/--queues/--setup-nic go with --backend zcrx, not copy");
		return -1;
	}
	if (cfg->topology == TOPO_SHARED_IFQ && cfg->reuse_set && !cfg->reuse_fifo) {
		lg_error_set(err, NULL, 0, "--reuse lifo does not go with --topology shared-ifq (its rings "
			     "refill from one queue, in order)");
		return -1;
	}
	if ((uint64_t)cfg->bufs * cfg->buf_size > (16ULL << 30)) {
		lg_error_set(err, NULL, 0, "--bufs x --buf-size exceeds 16 GiB per pool");
		return -1;
	}
	return 0;
}

static int copy_emulated(const struct lg_config *cfg, const char **out, int max)
{
	if (cfg->topology == TOPO_SHARED_IFQ && max > 0) {
		out[0] = LG_TOPOLOGY_SHARED_IFQ;
		return 1;
	}
	return 0;
}

static int copy_shared_init(const struct lg_config *cfg, void **shared, struct lg_error *err)
{
	struct copy_pool *p;

	*shared = NULL;
	if (cfg->topology != TOPO_SHARED_IFQ)
		return 0;
	p = calloc(1, sizeof(*p));
	if (!p) {
		lg_error_set(err, "calloc", ENOMEM, "shared pool");
		return -1;
	}
	if (pool_init(p, cfg, err)) {
		free(p);
		return -1;
	}
	p->qmask = pow2_at_least(p->nbufs) - 1;
	p->q = calloc(p->qmask + 1, sizeof(*p->q));
	if (!p->q) {
		pool_fini(p);
		free(p);
		lg_error_set(err, "calloc", ENOMEM, "shared refill queue");
		return -1;
	}
	pthread_mutex_init(&p->lock, NULL);
	for (uint32_t i = 0; i < p->nbufs; i++)         /* every buffer starts in the queue */
		p->q[p->tail++ & p->qmask] = (uint16_t)i;
	*shared = p;
	return 0;
}

static void copy_shared_fini(void *shared)
{
	struct copy_pool *p = shared;

	if (!p)
		return;
	pthread_mutex_destroy(&p->lock);
	pool_fini(p);
	free(p);
}

static void copy_ring_params(const struct lg_config *cfg, struct io_uring_params *p, unsigned *entries)
{
	/* room for every buffer's completion plus a few per connection of this ring, capped:
	 * beyond the cap a full CQ ends multishot receives, which the ring re-arms */
	uint32_t cq = pow2_at_least(2 * cfg->bufs + 4 * (uint32_t)cfg->conns_per_ring);

	p->flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
	p->cq_entries = cq < 256 ? 256 : cq > LG_MAX_CQ_ENTRIES ? LG_MAX_CQ_ENTRIES : cq;
	*entries = cfg->ring_entries;
}

/* Write buffer bid into ring slot (published or not), remembering where it went. */
static void set_slot(struct copy_ring *c, uint16_t slot, uint32_t bid)
{
	struct io_uring_buf *b = &c->br->bufs[slot & (c->entries - 1)];

	if (c->ring_bid) {
		c->ring_bid[slot & (c->entries - 1)] = (uint16_t)bid;
		c->bid_slot[bid] = slot;
	}
	b->addr = (uint64_t)(uintptr_t)(c->pool->area + (size_t)bid * c->pool->buf_size);
	b->len = c->pool->buf_size;
	b->bid = (uint16_t)bid;
}

/* Append buffer bid at the tail (published by the next refill()). */
static void add_buf(struct copy_ring *c, uint32_t bid)
{
	set_slot(c, (uint16_t)(c->br->tail + c->adds), bid);
	c->adds++;
}

/*
 * lifo: the buffers put() since the last refill go into the slots the kernel reads next, the
 * last one given back first; each buffer that was in such a slot moves to the tail. Only when
 * every CQE was read (none waiting, none overflowed): then c->head is the kernel's head.
 */
static void lifo_refill(struct rx_ring *r, struct copy_ring *c)
{
	bool head_known = io_uring_cq_ready(&r->ring) == 0 &&
			  !(IO_URING_READ_ONCE(*r->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW);
	uint16_t slot = c->head;

	for (uint32_t i = c->nbatch; i-- > 0;) {
		uint16_t tail = (uint16_t)(c->br->tail + c->adds);

		if (head_known && slot != tail) {       /* slot is posted and not yet taken */
			add_buf(c, c->ring_bid[slot & (c->entries - 1)]);
			set_slot(c, slot++, c->batch[i]);
		} else {
			add_buf(c, c->batch[i]);
		}
	}
	c->nbatch = 0;
}

/* shared-ifq: hand this batch's buffers to the shared queue, then take this ring's share. */
static void shared_refill(struct copy_ring *c)
{
	struct copy_pool *p = c->pool;
	uint32_t want, avail, take;

	pthread_mutex_lock(&p->lock);
	for (uint32_t i = 0; i < c->nbatch; i++)
		p->q[(p->tail + i) & p->qmask] = c->batch[i];
	/* head/tail are also read without the lock by refill_backlog() */
	__atomic_store_n(&p->tail, p->tail + c->nbatch, __ATOMIC_RELEASE);
	want = c->target > c->in_kernel ? c->target - c->in_kernel : 0;
	avail = p->tail - p->head;
	take = want < avail ? want : avail;
	for (uint32_t i = 0; i < take; i++)
		add_buf(c, p->q[(p->head + i) & p->qmask]);
	__atomic_store_n(&p->head, p->head + take, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&p->lock);
	c->nbatch = 0;
	c->in_kernel += take;
}

/*
 * Whether the kernel takes a byte cap on each invocation of a multishot IORING_OP_RECV (sqe->len;
 * kernels without it refuse any len with EINVAL). Asked with fd -1: the SQE is prepared before its
 * file is looked up, so a kernel that accepts the cap answers EBADF instead.
 */
static bool mshot_cap_supported(struct io_uring *ring, uint32_t cap)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;
	int res;

	if (!sqe)
		return false;
	io_uring_prep_recv_multishot(sqe, -1, NULL, cap, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = COPY_BGID;
	sqe->ioprio |= IORING_RECVSEND_BUNDLE;
	io_uring_sqe_set_data64(sqe, RX_UDATA_BACKEND);
	if (io_uring_submit_and_wait(ring, 1) < 0 || io_uring_peek_cqe(ring, &cqe))
		return false;
	res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return res != -EINVAL;
}

/* Bytes one bundled receive may fill: N buffers, within the kernel's int length. */
static uint32_t bundle_cap(const struct rx_ring *r, const struct copy_ring *c)
{
	uint64_t cap = (uint64_t)r->bundle * c->pool->buf_size;

	return cap > INT32_MAX ? INT32_MAX : (uint32_t)cap;
}

/*
 * The default bundle (no --bundle). One bundled receive copies bundle x --buf-size bytes in one
 * go, under the socket lock. Measured on loopback (2 vCPUs sharing a host, 2 MiB L2 per CPU,
 * 1 MiB sends, bench/loadgen.py): receives of at most 256 KiB ran at ~65 Gbit/s, each wake of the
 * ring took ~3.7 MB, and the receiver's CPU per byte stayed within 1.10x of a minimal
 * one-recv-at-a-time loop; receives of 512 KiB or more, with 32, 64 or 128 KiB buffers alike,
 * ran at ~51 Gbit/s, took half as much per wake and cost ~1.15x, most of it in the copy itself
 * (copy_to_iter ~1.3x the minimal loop's per byte, in perf). What one receive copies (the
 * sender's data, the buffers it fills, and what the sender writes meanwhile) has to stay in the
 * receiving CPU's L2 cache, so the cap follows that cache: a bundle fills at most an eighth of
 * it (256 KiB of 2 MiB), 256 KiB where sysfs does not say, at least one buffer and at most 16.
 */
#define BUNDLE_L2_SHARE 8
#define BUNDLE_BYTES_UNKNOWN_L2 (256u << 10)
#define BUNDLE_MAX_DEFAULT 16

/* Bytes of the L2 data cache of cpu (sysfs), 0 if unknown. */
static uint64_t l2_bytes(int cpu)
{
	for (int i = 0; i < 8; i++) {
		char path[96], type[32] = "";
		unsigned level = 0, kib = 0;
		FILE *f;
		int n;

		snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/cache/index%d/level", cpu, i);
		f = fopen(path, "re");
		if (!f)
			return 0;
		n = fscanf(f, "%u", &level);
		fclose(f);
		if (n != 1 || level != 2)
			continue;
		snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/cache/index%d/type", cpu, i);
		f = fopen(path, "re");
		if (!f)
			continue;
		n = fscanf(f, "%31s", type);
		fclose(f);
		if (n != 1 || !strcmp(type, "Instruction"))
			continue;
		snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/cache/index%d/size", cpu, i);
		f = fopen(path, "re");
		if (!f)
			continue;
		n = fscanf(f, "%uK", &kib);
		fclose(f);
		if (n == 1 && kib > 0)
			return (uint64_t)kib << 10;
	}
	return 0;
}

/* The bundle this ring's thread (already on its CPU) asks for, and why, in r->bundle_rule. */
static uint32_t default_bundle(struct rx_ring *r, uint32_t buf_size)
{
	int cpu = sched_getcpu();
	uint64_t l2 = cpu >= 0 ? l2_bytes(cpu) : 0;
	uint64_t cap = l2 ? l2 / BUNDLE_L2_SHARE : BUNDLE_BYTES_UNKNOWN_L2;
	uint64_t n = cap / buf_size;

	n = n < 1 ? 1 : n > BUNDLE_MAX_DEFAULT ? BUNDLE_MAX_DEFAULT : n;
	if (l2)
		snprintf(r->bundle_rule, sizeof(r->bundle_rule), "L2 %llu KiB of CPU %d / %d / %u KiB buffers",
			 (unsigned long long)(l2 >> 10), cpu, BUNDLE_L2_SHARE, buf_size >> 10);
	else
		snprintf(r->bundle_rule, sizeof(r->bundle_rule), "L2 unknown: %u KiB / %u KiB buffers",
			 BUNDLE_BYTES_UNKNOWN_L2 >> 10, buf_size >> 10);
	return (uint32_t)n;
}

static int copy_ring_init(struct rx_ring *r, struct lg_error *err)
{
	const struct lg_config *cfg = r->cfg;
	struct copy_ring *c = calloc(1, sizeof(*c));
	int ret;

	if (!c) {
		lg_error_set(err, "calloc", ENOMEM, "ring %d state", r->index);
		return -1;
	}
	r->priv = c;
	c->shared = r->shared != NULL;
	if (c->shared) {
		c->pool = r->shared;
		c->target = (c->pool->nbufs + (uint32_t)r->nrings - 1) / (uint32_t)r->nrings;
		c->batch = calloc(c->pool->nbufs, sizeof(*c->batch));
		if (!c->batch) {
			lg_error_set(err, "calloc", ENOMEM, "ring %d refill batch", r->index);
			return -1;
		}
	} else {
		if (pool_init(&c->own, cfg, err))
			return -1;
		c->pool = &c->own;
	}
	c->entries = pow2_at_least(c->pool->nbufs);
	c->used = calloc((c->pool->nbufs + 63) / 64, sizeof(*c->used));
	if (!c->used) {
		lg_error_set(err, "calloc", ENOMEM, "ring %d buffer bitmap", r->index);
		return -1;
	}
	c->lifo = !c->shared && !cfg->reuse_fifo;
	r->reuse = c->lifo ? "lifo" : "fifo";
	r->reuse_rule = cfg->reuse_set ? (c->lifo ? "--reuse lifo" : "--reuse fifo") :
			c->shared ? "shared-ifq: one refill queue, in order" :
			"default: the buffer given back last first";
	if (c->lifo) {
		c->batch = calloc(c->pool->nbufs, sizeof(*c->batch));
		if (!c->batch) {
			lg_error_set(err, "calloc", ENOMEM, "ring %d refill batch", r->index);
			return -1;
		}
	}
	if (cfg->bundle_set) {
		r->bundle = cfg->bundle;
		snprintf(r->bundle_rule, sizeof(r->bundle_rule), "--bundle %u", cfg->bundle);
	} else {
		r->bundle = default_bundle(r, c->pool->buf_size);
	}
	if (r->bundle > 1 && !(r->ring.features & IORING_FEAT_RECVSEND_BUNDLE)) {
		r->bundle = 1;
		snprintf(r->bundle_rule, sizeof(r->bundle_rule), "kernel without bundled receives");
	}
	if (r->bundle > 1 && !mshot_cap_supported(&r->ring, bundle_cap(r, c))) {
		r->bundle = 1;          /* bundles without a cap would drain whole sockets at once */
		snprintf(r->bundle_rule, sizeof(r->bundle_rule), "kernel without a per-receive cap");
	}
	if (r->bundle > 1 || c->lifo) {
		c->ring_bid = calloc(c->entries, sizeof(*c->ring_bid));
		c->bid_slot = calloc(c->pool->nbufs, sizeof(*c->bid_slot));
		if (!c->ring_bid || !c->bid_slot) {
			lg_error_set(err, "calloc", ENOMEM, "ring %d bundle bookkeeping", r->index);
			return -1;
		}
	}
	c->br = io_uring_setup_buf_ring(&r->ring, c->entries, COPY_BGID, 0, &ret);
	if (!c->br) {
		lg_error_set(err, "io_uring_setup_buf_ring", -ret,
			     "ring %d: cannot register a provided-buffer ring of %u entries%s", r->index,
			     c->entries, -ret == EINVAL ? " (kernel < 5.19 has no buffer rings)" : "");
		return -1;
	}
	if (c->shared) {
		shared_refill(c);
	} else {
		for (uint32_t i = 0; i < c->pool->nbufs; i++)
			add_buf(c, i);
	}
	io_uring_buf_ring_advance(c->br, c->adds);
	c->adds = 0;
	return 0;
}

static void copy_ring_fini(struct rx_ring *r)
{
	struct copy_ring *c = r->priv;

	if (!c)
		return;
	for (uint32_t i = 0; c->used && i < (c->pool->nbufs + 63) / 64; i++)
		r->buffers_used += (uint32_t)__builtin_popcountll(c->used[i]);
	if (c->br)
		io_uring_free_buf_ring(&r->ring, c->br, c->entries, COPY_BGID);
	if (!c->shared)
		pool_fini(&c->own);
	free(c->batch);
	free(c->ring_bid);
	free(c->bid_slot);
	free(c->used);
	free(c);
	r->priv = NULL;
}

static void copy_registration(struct rx_ring *r, struct rx_registration *out)
{
	struct copy_ring *c = r->priv;

	memset(out, 0, sizeof(*out));
	out->zcrx_id = -1;
	out->ifq = c->shared ? 0 : r->index;
	out->rq_entries = c->entries;
	out->area_bytes = (uint64_t)c->pool->nbufs * c->pool->buf_size;
	out->rx_buf_len = c->pool->buf_size;
}

static void copy_prep_recv(struct rx_ring *r, struct io_uring_sqe *sqe, int fd)
{
	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = COPY_BGID;
	if (r->bundle > 1) {
		sqe->ioprio |= IORING_RECVSEND_BUNDLE;
		sqe->len = bundle_cap(r, r->priv);
	}
}

static void copy_put(struct rx_ring *r, const struct rx_buf *buf)
{
	struct copy_ring *c = r->priv;

	if (c->shared || c->lifo)
		c->batch[c->nbatch++] = (uint16_t)buf->token;
	else
		add_buf(c, (uint32_t)buf->token);
}

/* Buffer bid came back from the kernel: point buf at it (the caller sets the length). */
static void delivered(struct copy_ring *c, uint32_t bid, struct rx_buf *buf)
{
	c->used[bid / 64] |= 1ULL << (bid % 64);
	if (c->shared)
		c->in_kernel--;
	buf->ptr = c->pool->area + (size_t)bid * c->pool->buf_size;
	buf->token = bid;
}

static enum rx_cqe_kind copy_decode(struct rx_ring *r, const struct io_uring_cqe *cqe,
				    struct rx_buf *buf, struct rx_event *ev, int *err)
{
	struct copy_ring *c = r->priv;
	uint32_t bid;

	c->bundle_left = 0;
	if (!(cqe->flags & IORING_CQE_F_BUFFER)) {
		if (cqe->res < 0) {
			*err = cqe->res;
			return RX_CQE_ERROR;
		}
		if (cqe->res == 0)
			return RX_CQE_EOF;
		*err = -EINVAL;         /* data without a buffer: not our SQE */
		return RX_CQE_ERROR;
	}
	bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
	delivered(c, bid, buf);
	if (c->lifo) {  /* the kernel took this buffer's slot and, bundled, the ones after it */
		uint32_t taken = cqe->res > 0 ?
				 ((uint32_t)cqe->res + c->pool->buf_size - 1) / c->pool->buf_size : 1;

		c->head = (uint16_t)(c->bid_slot[bid] + taken);
	}
	if (cqe->res <= 0) {            /* a buffer came back without data: return it at once */
		buf->len = 0;
		copy_put(r, buf);
		if (cqe->res == 0)
			return RX_CQE_EOF;
		*err = cqe->res;
		return RX_CQE_ERROR;
	}
	buf->len = (uint32_t)cqe->res;
	if (buf->len > c->pool->buf_size) {            /* bundled */
		c->bundle_left = buf->len - c->pool->buf_size;
		c->next_slot = (uint16_t)(c->bid_slot[bid] + 1);
		buf->len = c->pool->buf_size;
	}
	return RX_CQE_DATA;
}

static bool copy_next_buf(struct rx_ring *r, struct rx_buf *buf)
{
	struct copy_ring *c = r->priv;
	uint32_t bid;

	if (!c->bundle_left)
		return false;
	bid = c->ring_bid[c->next_slot++ & (c->entries - 1)];
	delivered(c, bid, buf);
	buf->len = c->bundle_left < c->pool->buf_size ? c->bundle_left : c->pool->buf_size;
	c->bundle_left -= buf->len;
	return true;
}

static int copy_refill(struct rx_ring *r, struct lg_error *err)
{
	struct copy_ring *c = r->priv;

	if (c->shared)
		shared_refill(c);
	else if (c->lifo)
		lifo_refill(r, c);
	if (c->adds) {
		io_uring_buf_ring_advance(c->br, c->adds);
		c->adds = 0;
	}
	return 0;
}

static uint64_t copy_refill_backlog(struct rx_ring *r)
{
	struct copy_ring *c = r->priv;

	if (c->shared)
		return __atomic_load_n(&c->pool->tail, __ATOMIC_RELAXED) -
		       __atomic_load_n(&c->pool->head, __ATOMIC_RELAXED);
	return (uint64_t)c->adds;
}

const struct rx_backend rx_backend_copy = {
	.name = LG_BACKEND_COPY,
	.check = copy_check,
	.emulated = copy_emulated,
	.shared_init = copy_shared_init,
	.shared_fini = copy_shared_fini,
	.ring_params = copy_ring_params,
	.ring_init = copy_ring_init,
	.ring_fini = copy_ring_fini,
	.registration = copy_registration,
	.prep_recv = copy_prep_recv,
	.decode = copy_decode,
	.next_buf = copy_next_buf,
	.put = copy_put,
	.refill = copy_refill,
	.refill_backlog = copy_refill_backlog,
	.stats = NULL,
};
