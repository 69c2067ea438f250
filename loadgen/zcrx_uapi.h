/* zcrx_uapi.h - the kernel-facing part of the zcrx backends: registration (NODEV or a NIC queue),
 * export/import, the refill-ring protocol, flush, events/stats, feature detection, and errno ->
 * one precise line. Nothing here knows about topologies or threads; see rx_zcrx.c for that.
 *
 * The kernel that brought each feature is in vocab.h (LG_SINCE_*, from zcrxprof/vocab.py): zcrx,
 * query, ZCRX_CTRL (flush, export) + IMPORT (SHARING), rx_buf_len, ZCRX_REG_NODEV, events/stats.
 */
#ifndef LOADGEN_ZCRX_UAPI_H
#define LOADGEN_ZCRX_UAPI_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "lgerror.h"
#include "vocab.h"

#define ZCRX_PAGE_SIZE 4096u

/* 7.2 uAPI that liburing 2.15's bundled io_uring.h lacks (it still calls event_desc __resv[0]).
 * Same layout as <linux/io_uring/zcrx.h>, which cannot be included beside liburing's copy. */
#define LG_ZCRX_CTRL_ARM_EVENT 2
enum { LG_ZCRX_EVENT_ALLOC_FAIL = 0, LG_ZCRX_EVENT_COPY = 1, LG_ZCRX_EVENT_LAST = 2 };
#define LG_ZCRX_EVENT_DESC_FLAG_STATS 1u

struct lg_zcrx_stats {
	uint64_t copy_count;    /* cumulative copy-fallback CQEs */
	uint64_t copy_bytes;    /* cumulative bytes copied */
};

struct lg_zcrx_event_desc {
	uint64_t user_data;
	uint32_t type_mask;
	uint32_t flags;
	uint64_t stats_offset;  /* from the start of the refill region */
	uint64_t resv[9];
};

struct lg_zcrx_ctrl_arm {       /* struct zcrx_ctrl with op ZCRX_CTRL_ARM_EVENT */
	uint32_t zcrx_id;
	uint32_t op;
	uint64_t resv[2];
	uint32_t event_type;
	uint32_t resv2[11];
};

struct zcrx_kernel {            /* what the running kernel offers */
	int major, minor;
	char release[65];
	bool have_query;        /* IORING_REGISTER_QUERY answered for zcrx */
	uint64_t reg_flags;     /* ZCRX_REG_* the kernel accepts (query, else by version) */
	uint32_t nr_ctrl_ops;   /* ZCRX_CTRL_* opcodes (query, else by version) */
	uint32_t features;      /* ZCRX_FEATURE_* (query, else by version) */
	uint32_t rq_hdr_size;   /* refill ring header size (query; 0 = unknown) */
	bool have_events;       /* 7.2 events/stats */
	uint32_t stats_align;   /* alignment of the stats struct in the region */
};

/* The never-merged v4 ifq-sharing series ("io_uring zcrx ifq sharing", PATCH v4 8/8,
 * <20251028174639.1244592-9-dw@davidwei.uk>): enum io_uring_zcrx_ifq_reg_flags
 * { IORING_ZCRX_IFQ_REG_SHARE = 1 } in io_uring_zcrx_ifq_reg.flags, with the source ring's fd in
 * if_idx and its ifq's zcrx_id in if_rxq; the kernel answers the new zcrx_id. Merged kernels (6.19)
 * gave the same bit to ZCRX_REG_IMPORT instead. */
#define LG_ZCRX_IFQ_REG_SHARE_V4 1u

/* Fill k from uname(2) and, where the kernel has it, IORING_REGISTER_QUERY (a throw-away ring). */
void zcrx_kernel_detect(struct zcrx_kernel *k);

/* Detect the running kernel's zcrx facts and print them as one JSON line ("type": "kernel"). */
void zcrx_kernel_print_json(FILE *out);

/* 0 if the kernel can run backend "zcrx" / "zcrx-nodev" with nrings sharing (shared=true needs
 * export/import); else -1 and one line naming the feature and the kernel it needs. */
int zcrx_kernel_check(const struct zcrx_kernel *k, bool nodev, bool shared, struct lg_error *err);

/* 0 if the kernel may carry the v4 sharing series (zcrx, older than the merged sharing), else -1
 * and one line naming the kernel --share-uapi v4 needs. */
int zcrx_kernel_check_v4(const struct zcrx_kernel *k, struct lg_error *err);

/* One registered zcrx instance as seen from one ring. */
struct zcrx_ifq {
	uint32_t id;                    /* zcrx_id on this ring */
	uint8_t *area;                  /* payload area (owned by the exporting/registering side) */
	uint64_t area_len;
	uint64_t area_token;
	uint32_t rx_buf_len;
	/* the refill ring (one per ifq, shared by importers) */
	void *region;
	uint64_t region_len;
	uint32_t rq_entries;
	uint32_t *khead, *ktail;
	struct io_uring_zcrx_rqe *rqes;
	uint32_t rq_tail;               /* userspace's private tail, published by zcrx_rq_commit */
	struct lg_zcrx_stats *stats;    /* 7.2 stats in the region, or NULL */
	bool owner;                     /* this struct owns area/region memory */
};

struct zcrx_reg_opts {
	bool nodev;                     /* ZCRX_REG_NODEV (if_idx = if_rxq = 0) */
	uint32_t ifindex, rxq;          /* hardware queue (not nodev) */
	const char *ifname;             /* for messages */
	const char *driver;             /* for messages (may be NULL) */
	uint32_t rq_entries;            /* power of two, <= 32768 */
	uint64_t area_len;
	uint32_t rx_buf_len;            /* 0 = kernel default (7.0+) */
	bool events;                    /* 7.2: ask for COPY/ALLOC_FAIL events + stats */
	uint64_t event_user_data;
};

/* Allocate area and refill region, register them on ring; on failure -1 and a precise line. */
int zcrx_register(struct io_uring *ring, const struct zcrx_reg_opts *o, const struct zcrx_kernel *k,
		  struct zcrx_ifq *ifq, struct lg_error *err);
/* ZCRX_CTRL_EXPORT: a file descriptor other rings can import. */
int zcrx_export(struct io_uring *ring, uint32_t zcrx_id, int *fd, struct lg_error *err);
/* ZCRX_REG_IMPORT of fd on ring; out shares src's area and refill ring (fd is closed). */
int zcrx_import(struct io_uring *ring, int fd, const struct zcrx_ifq *src, struct zcrx_ifq *out,
		struct lg_error *err);
/* v4 series: register onto src_ring_fd's ifq src (IORING_ZCRX_IFQ_REG_SHARE); out shares its area
 * and refill ring. One line naming the kernel it needs when the kernel refuses the flag. */
int zcrx_share_v4(struct io_uring *ring, int src_ring_fd, const struct zcrx_ifq *src, struct zcrx_ifq *out,
		  const struct zcrx_kernel *k, struct lg_error *err);
/* ZCRX_CTRL_FLUSH_RQ: the kernel consumes the refill ring now (NODEV needs it). */
int zcrx_flush(struct io_uring *ring, uint32_t zcrx_id, struct lg_error *err);
/* ZCRX_CTRL_ARM_EVENT for one ZCRX_EVENT_* type (7.2). */
int zcrx_arm_event(struct io_uring *ring, uint32_t zcrx_id, uint32_t type, struct lg_error *err);
/* Free what zcrx_register allocated (after the ring that registered it is gone). */
void zcrx_ifq_free(struct zcrx_ifq *ifq);

/* Multishot IORING_OP_RECV_ZC on fd through ifq zcrx_id (len 0 = no byte limit). */
void zcrx_prep_recv(struct io_uring_sqe *sqe, int fd, uint32_t zcrx_id);
/* Payload of a data CQE (CQE32 second half) and the area offset to give back. */
void *zcrx_cqe_payload(const struct zcrx_ifq *ifq, const struct io_uring_cqe *cqe, uint64_t *off);

/* Refill ring: queue one RQE (returns false when the ring is full), then publish the tail. */
bool zcrx_rq_push(struct zcrx_ifq *ifq, uint64_t off, uint32_t len);
void zcrx_rq_commit(struct zcrx_ifq *ifq);
/* Entries published and not yet consumed by the kernel. */
uint32_t zcrx_rq_backlog(const struct zcrx_ifq *ifq);

/* The one-line meaning of errno err from registering (op "register", "import", "export",
 * "flush", "arm", "recv"): what the kernel refuses, and which kernel or NIC would accept it. */
const char *zcrx_explain(const char *op, int err, bool nodev, const struct zcrx_kernel *k);

#endif
