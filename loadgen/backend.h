/* backend.h - the receive backend seam of zcrx-loadgen.
 *
 * A backend owns buffers and the io_uring receive operation; the topology code (receiver.c) owns
 * threads, sockets, hand-off, verification and counters. One struct rx_backend per backend:
 * rx_copy.c (copy), rx_zcrx.c (zcrx-nodev, zcrx); the names come from vocab.h.
 *
 * Call order, for a run with N rings:
 *   check(cfg)                         main thread, before anything is created (usage errors)
 *   shared_init(cfg, &shared)          main thread, once per run, before any connection is
 *                                      accepted (a NIC's steering holds from the first packet)
 *   for ring 0..N-1, strictly in order (ring i+1 starts only after ring i's init returned):
 *     ring_params(cfg, &params, &entries); io_uring_queue_init_params()   in the ring's thread
 *     ring_init(r)                     ring's thread (ring 0 may export, rings > 0 may import)
 *     registration(r, &reg)            facts for the JSON "registration" record
 *   prep_recv(r, sqe, fd)              per connection, re-armed whenever a CQE lacks F_MORE
 *   decode(r, cqe, &buf, &err)         every CQE of the ring (see RX_UDATA_BACKEND)
 *   next_buf(r, &buf)                  optional: after RX_CQE_DATA, the CQE's further buffers
 *                                      (a bundled receive), one per call, until it returns false
 *   put(r, &buf)                       give a consumed buffer back; ring's thread only
 *   refill(r)                          after each batch of CQEs/puts: publish what put() queued
 *   refill_backlog(r)                  instantaneous, sampled each interval
 *   stats(r, ev, max)                  optional end-of-run event/stat counters (may be NULL)
 *   ring_fini(r); shared_fini(shared)
 *   put_any(r, &buf)                   optional: give a buffer back from any thread (a worker)
 * put() and refill() are only ever called from the ring's own thread. In `workers`, a backend with
 * put_any() takes buffers back straight from the worker threads (zcrx: the worker writes the RQE
 * under the refill ring's lock); without it, workers hand buffers to the ring thread, which put()s
 * them. Either way the ring thread learns of every return and calls refill() (NODEV: FLUSH_RQ).
 */
#ifndef LOADGEN_BACKEND_H
#define LOADGEN_BACKEND_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "lgerror.h"

/* user_data of SQEs the topology code submits is the connection index. A backend that submits
 * SQEs of its own (events, ctrl) must set this bit in their user_data. */
#define RX_UDATA_BACKEND (1ULL << 63)

struct rx_buf {                 /* one received chunk */
	void *ptr;              /* payload (backend) */
	uint32_t len;           /* bytes (backend) */
	uint32_t conn;          /* connection index (topology code) */
	uint64_t offset;        /* stream offset of ptr[0] in the connection (topology code) */
	uint64_t token;         /* backend's handle to give it back: copy: buffer id; zcrx: area offset */
	int ring;               /* ring that received it (topology code) */
};

enum rx_cqe_kind {
	RX_CQE_DATA,            /* *buf filled: payload to consume, then put(); next_buf() may
				 * yield more buffers of the same CQE */
	RX_CQE_EOF,             /* peer closed the connection (res == 0) */
	RX_CQE_ERROR,           /* *err = negative errno (ENOBUFS/ENOSPC: out of buffers, re-armed) */
	RX_CQE_EVENT,           /* a backend event (zcrx events); *ev filled */
	RX_CQE_IGNORE,          /* a backend-private CQE that needs nothing from the caller */
};

struct rx_event {               /* one "event" JSON record: zcrx events and stats */
	char name[24];          /* "copy", "alloc_fail", "stats", ... */
	uint64_t count;
	uint64_t bytes;
};

struct rx_registration {        /* the JSON "registration" record, one per ring */
	int zcrx_id;            /* -1 when the backend has no zcrx ifq */
	int ifq;                /* index of the underlying ifq (copy: buffer pool) */
	bool exported, imported;
	uint32_t rq_entries;    /* refill ring entries (copy: provided-buffer ring entries) */
	uint64_t area_bytes;    /* bytes of the area / pool behind this ring */
	uint32_t rx_buf_len;    /* bytes per buffer */
};

struct rx_ring {                /* one receive ring, owned by its thread */
	struct io_uring ring;
	int index;              /* 0..nrings-1 */
	int nrings;
	const struct lg_config *cfg;
	void *shared;           /* from shared_init (NULL if none) */
	void *priv;             /* per-ring backend state, set by ring_init */
	uint32_t bundle;        /* set by ring_init: buffers one CQE may carry (> 1: see next_buf) */
	char bundle_rule[96];   /* set by ring_init: why bundle is what it is (params.bundle_rule) */
	const char *reuse;      /* set by ring_init (copy): "lifo" or "fifo" (params.reuse); NULL: none */
	const char *reuse_rule; /* ... and why (params.reuse_rule) */
	uint32_t buffers_used;  /* set by ring_fini (copy): distinct buffers of the pool the kernel
				 * received into (the memory the copies wrote; threads[].buffers_used) */
};

struct rx_backend {
	const char *name;
	/* 0, or -1 with err set (a usage error: exit 2). */
	int (*check)(const struct lg_config *cfg, struct lg_error *err);
	/* Tokens naming what this backend emulates for cfg->topology (docs/loadgen-output.md). */
	int (*emulated)(const struct lg_config *cfg, const char **out, int max);
	int (*shared_init)(const struct lg_config *cfg, void **shared, struct lg_error *err);
	void (*shared_fini)(void *shared);
	void (*ring_params)(const struct lg_config *cfg, struct io_uring_params *p, unsigned *entries);
	int (*ring_init)(struct rx_ring *r, struct lg_error *err);
	void (*ring_fini)(struct rx_ring *r);
	void (*registration)(struct rx_ring *r, struct rx_registration *out);
	void (*prep_recv)(struct rx_ring *r, struct io_uring_sqe *sqe, int fd);
	enum rx_cqe_kind (*decode)(struct rx_ring *r, const struct io_uring_cqe *cqe,
				   struct rx_buf *buf, struct rx_event *ev, int *err);
	/* The next buffer of the CQE decode() last returned as RX_CQE_DATA, or false when it has no
	 * more; NULL if the backend never bundles. */
	bool (*next_buf)(struct rx_ring *r, struct rx_buf *buf);
	void (*put)(struct rx_ring *r, const struct rx_buf *buf);
	/* Thread-safe put() from a thread that is not the ring's; NULL if the backend has none. */
	void (*put_any)(struct rx_ring *r, const struct rx_buf *buf);
	int (*refill)(struct rx_ring *r, struct lg_error *err);
	uint64_t (*refill_backlog)(struct rx_ring *r);
	int (*stats)(struct rx_ring *r, struct rx_event *ev, int max);   /* may be NULL */
};

/* The backends, named as in vocab.h. */
extern const struct rx_backend rx_backend_copy;
extern const struct rx_backend rx_backend_zcrx;
extern const struct rx_backend rx_backend_zcrx_nodev;

/* The backend named by name, or NULL with err set (unknown name). */
const struct rx_backend *backend_find(const char *name, struct lg_error *err);

#endif
