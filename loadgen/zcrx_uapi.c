/* zcrx_uapi.c - zcrx registration, sharing, refill ring, events and errors (see zcrx_uapi.h). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <linux/io_uring/query.h>   /* not in liburing 2.15's bundled header */

#include "zcrx_uapi.h"

/* The struct layouts this file was written against (7.2/7.3 uapi, measured in the guest). */
_Static_assert(sizeof(struct io_uring_zcrx_ifq_reg) == 96, "io_uring_zcrx_ifq_reg layout");
_Static_assert(offsetof(struct io_uring_zcrx_ifq_reg, __resv) == 72, "event_desc (liburing: __resv[0]) offset");
_Static_assert(sizeof(struct io_uring_zcrx_area_reg) == 48, "io_uring_zcrx_area_reg layout");
_Static_assert(sizeof(struct io_uring_region_desc) == 64, "io_uring_region_desc layout");
_Static_assert(sizeof(struct io_uring_zcrx_offsets) == 32, "io_uring_zcrx_offsets layout");
_Static_assert(sizeof(struct zcrx_ctrl) == 72, "zcrx_ctrl layout");
_Static_assert(sizeof(struct lg_zcrx_ctrl_arm) == 72, "zcrx_ctrl (arm event) layout");
_Static_assert(offsetof(struct lg_zcrx_ctrl_arm, event_type) == offsetof(struct zcrx_ctrl, zc_export),
	       "zcrx_ctrl union offset");
_Static_assert(sizeof(struct lg_zcrx_event_desc) == 96, "zcrx_event_desc layout");
_Static_assert(sizeof(struct lg_zcrx_stats) == 16, "zcrx_stats layout");
_Static_assert(sizeof(struct io_uring_zcrx_rqe) == 16, "io_uring_zcrx_rqe layout");

/* For messages about requests whose kernel support was checked before use. */
static const struct zcrx_kernel K_SHARING = { LG_SINCE_SHARING, .reg_flags = ZCRX_REG_IMPORT };
static const struct zcrx_kernel K_EVENTS = { LG_SINCE_EVENTS, .reg_flags = ZCRX_REG_IMPORT | ZCRX_REG_NODEV };

static bool at_least(const struct zcrx_kernel *k, int major, int minor)
{
	return k->major > major || (k->major == major && k->minor >= minor);
}

static void query_zcrx(struct zcrx_kernel *k)
{
	struct io_uring ring;
	struct io_uring_query_zcrx qz;
	struct io_uring_query_zcrx_event qe;
	struct io_uring_query_hdr hz, he;

	if (io_uring_queue_init(2, &ring, 0) < 0)
		return;
	memset(&qz, 0, sizeof(qz));
	memset(&qe, 0, sizeof(qe));
	memset(&hz, 0, sizeof(hz));
	memset(&he, 0, sizeof(he));
	hz.query_op = IO_URING_QUERY_ZCRX;
	hz.query_data = (uint64_t)(uintptr_t)&qz;
	hz.size = sizeof(qz);
	hz.next_entry = (uint64_t)(uintptr_t)&he;
	he.query_op = IO_URING_QUERY_ZCRX_EVENT;
	he.query_data = (uint64_t)(uintptr_t)&qe;
	he.size = sizeof(qe);
	if (io_uring_register(ring.ring_fd, IORING_REGISTER_QUERY, &hz, 0) == 0 && hz.result == 0) {
		k->have_query = true;
		k->reg_flags = qz.register_flags;
		k->nr_ctrl_ops = qz.nr_ctrl_opcodes;
		k->features = qz.features;
		k->rq_hdr_size = qz.rq_hdr_size;
		if (he.result == 0 && qe.stats_size >= sizeof(struct lg_zcrx_stats)) {
			k->have_events = true;
			k->stats_align = qe.stats_off_alignment ? qe.stats_off_alignment : 8;
		}
	}
	io_uring_queue_exit(&ring);
}

void zcrx_kernel_detect(struct zcrx_kernel *k)
{
	struct utsname u;

	memset(k, 0, sizeof(*k));
	if (uname(&u) == 0) {
		snprintf(k->release, sizeof(k->release), "%s", u.release);
		sscanf(u.release, "%d.%d", &k->major, &k->minor);
	}
	/* by version first; the query (vocab.h: LG_SINCE_QUERY) then says exactly */
	if (at_least(k, LG_SINCE_SHARING))
		k->reg_flags |= ZCRX_REG_IMPORT, k->nr_ctrl_ops = 2;
	if (at_least(k, LG_SINCE_NODEV))
		k->reg_flags |= ZCRX_REG_NODEV;
	if (at_least(k, LG_SINCE_EVENTS))
		k->have_events = true, k->stats_align = 8, k->nr_ctrl_ops = 3;
	if (at_least(k, LG_SINCE_QUERY))
		query_zcrx(k);
}

void zcrx_kernel_print_json(FILE *out)
{
	struct zcrx_kernel k;

	zcrx_kernel_detect(&k);
	/* the release comes from uname(2): no quote or backslash can appear in it */
	fprintf(out, "{\"type\": \"kernel\", \"release\": \"%s\", \"query\": %s, \"register_flags\": %llu, "
		"\"ctrl_opcodes\": %u, \"features\": %u, \"rq_hdr_size\": %u, \"nodev\": %s, \"sharing\": %s, "
		"\"events\": %s}\n",
		k.release, k.have_query ? "true" : "false", (unsigned long long)k.reg_flags, k.nr_ctrl_ops,
		k.features, k.rq_hdr_size, k.reg_flags & ZCRX_REG_NODEV ? "true" : "false",
		(k.reg_flags & ZCRX_REG_IMPORT) && k.nr_ctrl_ops >= 2 ? "true" : "false",
		k.have_events ? "true" : "false");
	fflush(out);
}

int zcrx_kernel_check(const struct zcrx_kernel *k, bool nodev, bool shared, struct lg_error *err)
{
	const char *lab = "; try `zcrxprof lab run -- ...` (a Debian kernel >= " LG_SINCE_NODEV_TEXT " under QEMU)";

	if (!at_least(k, LG_SINCE_ZCRX)) {
		lg_error_set(err, NULL, 0, "zcrx needs Linux >= " LG_SINCE_ZCRX_TEXT " (running %s)%s", k->release, lab);
		return -1;
	}
	if (nodev && !(k->reg_flags & ZCRX_REG_NODEV)) {
		lg_error_set(err, NULL, 0, "zcrx-nodev needs Linux >= " LG_SINCE_NODEV_TEXT " for ZCRX_REG_NODEV (running %s)%s",
			     k->release, lab);
		return -1;
	}
	if (shared && (!(k->reg_flags & ZCRX_REG_IMPORT) || k->nr_ctrl_ops < 2)) {
		lg_error_set(err, NULL, 0, "shared-ifq on zcrx needs Linux >= " LG_SINCE_SHARING_TEXT " for ZCRX_CTRL_EXPORT and "
			     "ZCRX_REG_IMPORT (running %s)%s", k->release, lab);
		return -1;
	}
	if (nodev && k->nr_ctrl_ops < 1) {
		lg_error_set(err, NULL, 0, "zcrx-nodev needs ZCRX_CTRL_FLUSH_RQ (Linux >= " LG_SINCE_SHARING_TEXT "; running %s)%s",
			     k->release, lab);
		return -1;
	}
	return 0;
}

const char *zcrx_explain(const char *op, int err, bool nodev, const struct zcrx_kernel *k)
{
	bool reg = !strcmp(op, "register"), imp = !strcmp(op, "import");

	switch (err) {
	case EPERM:
		return "zcrx registration needs CAP_NET_ADMIN";
	case ENODEV:
		return "no such network interface";
	case EOPNOTSUPP:
		if (nodev)
			return "NODEV rejected this area/buffer size (rx_buf_len larger than a page?)";
		return "the device has no DMA device or its driver has no queue-management ops "
		       "(virtio, veth, lo, netdevsim cannot host zcrx)";
	case ERANGE:
		if (reg && nodev)
			return "the stats offset overlaps the refill ring entries";
		return "the queue index is out of range for this device";
	case EEXIST:
		return "an XDP program is attached or the queue already has a memory provider";
	case EBUSY:
		return "the queue is used by AF_XDP or leased";
	case EBADF:
		return imp ? "the file descriptor is not an exported zcrx instance" : "bad file descriptor";
	case ENXIO:
		return "unknown zcrx id on this ring";
	case EPROTONOSUPPORT:
		return "zero-copy receive works on TCP sockets only";
	case ENOMEM:
		if (!strcmp(op, "recv"))
			return "the area ran dry: no free buffer for the copy fallback (refill ring not flushed?)";
		return "out of memory or RLIMIT_MEMLOCK too low for the area";
	case EINVAL:
		if (reg && !at_least(k, LG_SINCE_ZCRX))
			return "the kernel has no zcrx (IORING_REGISTER_ZCRX_IFQ needs Linux >= " LG_SINCE_ZCRX_TEXT ")";
		if (imp && !(k->reg_flags & ZCRX_REG_IMPORT))
			return "the kernel rejects ZCRX_REG_IMPORT (needs Linux >= " LG_SINCE_SHARING_TEXT ")";
		if (reg && nodev && !(k->reg_flags & ZCRX_REG_NODEV))
			return "the kernel rejects ZCRX_REG_NODEV (needs Linux >= " LG_SINCE_NODEV_TEXT ")";
		if (!strcmp(op, "export") || !strcmp(op, "flush"))
			return at_least(k, LG_SINCE_SHARING) ? "the kernel rejected the ZCRX_CTRL request"
						  : "IORING_REGISTER_ZCRX_CTRL needs Linux >= " LG_SINCE_SHARING_TEXT;
		if (!strcmp(op, "arm"))
			return "the kernel rejected ZCRX_CTRL_ARM_EVENT (events need Linux >= " LG_SINCE_EVENTS_TEXT ")";
		if (nodev)
			return "invalid NODEV registration: ring lacks DEFER_TASKRUN or CQE32/CQE_MIXED, "
			       "or bad flags, reserved fields, rq_entries (1..32768) or event descriptor";
		return "invalid registration: ring lacks DEFER_TASKRUN or CQE32/CQE_MIXED, bad "
		       "rq_entries, or tcp-data-split off / hds-thresh != 0 on the NIC (see dmesg)";
	default:
		return "zcrx request failed";
	}
}

static void *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void bind_rq(struct zcrx_ifq *ifq, const struct io_uring_zcrx_offsets *o)
{
	uint8_t *base = ifq->region;

	ifq->khead = (uint32_t *)(base + o->head);
	ifq->ktail = (uint32_t *)(base + o->tail);
	ifq->rqes = (struct io_uring_zcrx_rqe *)(base + o->rqes);
	ifq->rq_tail = __atomic_load_n(ifq->ktail, __ATOMIC_ACQUIRE);
}

int zcrx_register(struct io_uring *ring, const struct zcrx_reg_opts *o, const struct zcrx_kernel *k,
		  struct zcrx_ifq *ifq, struct lg_error *err)
{
	struct io_uring_zcrx_area_reg area;
	struct io_uring_region_desc rd;
	struct io_uring_zcrx_ifq_reg reg;
	struct lg_zcrx_event_desc ev;
	uint64_t hdr = k->rq_hdr_size ? k->rq_hdr_size : ZCRX_PAGE_SIZE, stats_off = 0;
	int ret;

	memset(ifq, 0, sizeof(*ifq));
	ifq->owner = true;
	ifq->area_len = o->area_len;
	ifq->rq_entries = o->rq_entries;
	ifq->region_len = (hdr + (uint64_t)o->rq_entries * sizeof(struct io_uring_zcrx_rqe) +
			   ZCRX_PAGE_SIZE - 1) / ZCRX_PAGE_SIZE * ZCRX_PAGE_SIZE;
	if (o->events) {
		stats_off = ifq->region_len;            /* the stats get a page of their own */
		ifq->region_len += ZCRX_PAGE_SIZE;
	}
	ifq->area = map_anon(o->area_len);
	ifq->region = map_anon(ifq->region_len);
	if (!ifq->area || !ifq->region) {
		lg_error_set(err, "mmap", ENOMEM, "cannot map a %llu-byte zcrx area and its refill ring",
			     (unsigned long long)o->area_len);
		zcrx_ifq_free(ifq);
		return -1;
	}

	memset(&area, 0, sizeof(area));
	area.addr = (uint64_t)(uintptr_t)ifq->area;
	area.len = o->area_len;
	memset(&rd, 0, sizeof(rd));
	rd.user_addr = (uint64_t)(uintptr_t)ifq->region;
	rd.size = ifq->region_len;
	rd.flags = IORING_MEM_REGION_TYPE_USER;
	memset(&reg, 0, sizeof(reg));
	reg.if_idx = o->nodev ? 0 : o->ifindex;
	reg.if_rxq = o->nodev ? 0 : o->rxq;
	reg.rq_entries = o->rq_entries;
	reg.flags = o->nodev ? ZCRX_REG_NODEV : 0;
	reg.area_ptr = (uint64_t)(uintptr_t)&area;
	reg.region_ptr = (uint64_t)(uintptr_t)&rd;
	reg.rx_buf_len = o->rx_buf_len;
	if (o->events) {
		memset(&ev, 0, sizeof(ev));
		ev.user_data = o->event_user_data;
		ev.type_mask = (1u << LG_ZCRX_EVENT_COPY) | (1u << LG_ZCRX_EVENT_ALLOC_FAIL);
		ev.flags = LG_ZCRX_EVENT_DESC_FLAG_STATS;
		ev.stats_offset = stats_off;
		reg.__resv[0] = (uint64_t)(uintptr_t)&ev;      /* event_desc */
	}
	ret = io_uring_register_ifq(ring, &reg);
	if (ret < 0) {
		if (o->nodev)
			lg_error_set(err, "io_uring_register(ZCRX_IFQ)", -ret, "NODEV zcrx registration failed: %s",
				     zcrx_explain("register", -ret, true, k));
		else
			lg_error_set(err, "io_uring_register(ZCRX_IFQ)", -ret, "%s (%s) queue %u cannot host zcrx: %s",
				     o->ifname ? o->ifname : "?", o->driver ? o->driver : "unknown driver",
				     o->rxq, zcrx_explain("register", -ret, false, k));
		zcrx_ifq_free(ifq);
		return -1;
	}
	ifq->id = reg.zcrx_id;
	ifq->area_token = area.rq_area_token;
	ifq->rx_buf_len = reg.rx_buf_len;
	bind_rq(ifq, &reg.offsets);
	if (o->events)
		ifq->stats = (struct lg_zcrx_stats *)((uint8_t *)ifq->region + stats_off);
	return 0;
}

int zcrx_export(struct io_uring *ring, uint32_t zcrx_id, int *fd, struct lg_error *err)
{
	struct zcrx_ctrl c;
	int ret;

	memset(&c, 0, sizeof(c));
	c.zcrx_id = zcrx_id;
	c.op = ZCRX_CTRL_EXPORT;
	ret = io_uring_register_zcrx_ctrl(ring, &c);
	if (ret < 0) {
		lg_error_set(err, "io_uring_register(ZCRX_CTRL_EXPORT)", -ret, "cannot export zcrx %u: %s",
			     zcrx_id, zcrx_explain("export", -ret, true, &K_SHARING));
		return -1;
	}
	*fd = (int)c.zc_export.zcrx_fd;
	return 0;
}

int zcrx_import(struct io_uring *ring, int fd, const struct zcrx_ifq *src, struct zcrx_ifq *out,
		struct lg_error *err)
{
	struct io_uring_zcrx_ifq_reg reg;
	int ret;

	memset(&reg, 0, sizeof(reg));
	reg.if_idx = (uint32_t)fd;
	reg.flags = ZCRX_REG_IMPORT;
	ret = io_uring_register_ifq(ring, &reg);
	close(fd);
	if (ret < 0) {
		lg_error_set(err, "io_uring_register(ZCRX_IFQ, ZCRX_REG_IMPORT)", -ret,
			     "cannot import the exported zcrx: %s", zcrx_explain("import", -ret, false, &K_SHARING));
		return -1;
	}
	*out = *src;            /* same area, same refill ring */
	out->owner = false;
	out->id = reg.zcrx_id;
	return 0;
}

#define V4_NEEDS "a kernel carrying the v4 ifq-sharing series (never merged; 6.15-6.18 + \"io_uring zcrx ifq sharing\" v4)"

int zcrx_kernel_check_v4(const struct zcrx_kernel *k, struct lg_error *err)
{
	if (at_least(k, LG_SINCE_SHARING) || (k->reg_flags & ZCRX_REG_IMPORT)) {
		lg_error_set(err, NULL, 0, "--share-uapi v4 needs %s; this kernel (%s) has the merged sharing, "
			     "whose ZCRX_REG_IMPORT uses the same flag bit: use --share-uapi export", V4_NEEDS, k->release);
		return -1;
	}
	return 0;
}

int zcrx_share_v4(struct io_uring *ring, int src_ring_fd, const struct zcrx_ifq *src, struct zcrx_ifq *out,
		  const struct zcrx_kernel *k, struct lg_error *err)
{
	struct io_uring_zcrx_ifq_reg reg;
	int ret;

	memset(&reg, 0, sizeof(reg));
	reg.flags = LG_ZCRX_IFQ_REG_SHARE_V4;
	reg.if_idx = (uint32_t)src_ring_fd;
	reg.if_rxq = src->id;
	ret = io_uring_register_ifq(ring, &reg);
	if (ret == -EINVAL) {
		lg_error_set(err, "io_uring_register(ZCRX_IFQ, IORING_ZCRX_IFQ_REG_SHARE)", EINVAL,
			     "this kernel (%s) refused IORING_ZCRX_IFQ_REG_SHARE: --share-uapi v4 needs " V4_NEEDS, k->release);
		return -1;
	}
	if (ret < 0) {
		lg_error_set(err, "io_uring_register(ZCRX_IFQ, IORING_ZCRX_IFQ_REG_SHARE)", -ret,
			     "cannot share ring 0's zcrx %u (--share-uapi v4): %s", src->id, strerror(-ret));
		return -1;
	}
	*out = *src;            /* same area, same refill ring (the series' rings share it in userspace) */
	out->owner = false;
	out->id = reg.zcrx_id;
	return 0;
}

int zcrx_flush(struct io_uring *ring, uint32_t zcrx_id, struct lg_error *err)
{
	struct zcrx_ctrl c;
	int ret;

	memset(&c, 0, sizeof(c));
	c.zcrx_id = zcrx_id;
	c.op = ZCRX_CTRL_FLUSH_RQ;
	ret = io_uring_register_zcrx_ctrl(ring, &c);
	if (ret < 0) {
		lg_error_set(err, "io_uring_register(ZCRX_CTRL_FLUSH_RQ)", -ret, "cannot flush zcrx %u: %s",
			     zcrx_id, zcrx_explain("flush", -ret, true, &K_SHARING));
		return -1;
	}
	return 0;
}

int zcrx_arm_event(struct io_uring *ring, uint32_t zcrx_id, uint32_t type, struct lg_error *err)
{
	struct lg_zcrx_ctrl_arm c;
	int ret;

	memset(&c, 0, sizeof(c));
	c.zcrx_id = zcrx_id;
	c.op = LG_ZCRX_CTRL_ARM_EVENT;
	c.event_type = type;
	ret = io_uring_register(ring->ring_fd, IORING_REGISTER_ZCRX_CTRL, &c, 0);
	if (ret < 0) {
		lg_error_set(err, "io_uring_register(ZCRX_CTRL_ARM_EVENT)", -ret, "cannot arm zcrx event %u: %s",
			     type, zcrx_explain("arm", -ret, true, &K_EVENTS));
		return -1;
	}
	return 0;
}

void zcrx_ifq_free(struct zcrx_ifq *ifq)
{
	if (!ifq->owner)
		return;
	if (ifq->area)
		munmap(ifq->area, ifq->area_len);
	if (ifq->region)
		munmap(ifq->region, ifq->region_len);
	ifq->area = NULL;
	ifq->region = NULL;
}

void zcrx_prep_recv(struct io_uring_sqe *sqe, int fd, uint32_t zcrx_id)
{
	io_uring_prep_rw(IORING_OP_RECV_ZC, sqe, fd, NULL, 0, 0);
	sqe->ioprio |= IORING_RECV_MULTISHOT;
	sqe->zcrx_ifq_idx = zcrx_id;
}

void *zcrx_cqe_payload(const struct zcrx_ifq *ifq, const struct io_uring_cqe *cqe, uint64_t *off)
{
	const struct io_uring_zcrx_cqe *z = (const struct io_uring_zcrx_cqe *)(cqe + 1);

	*off = z->off & ~IORING_ZCRX_AREA_MASK;
	return ifq->area + *off;
}

bool zcrx_rq_push(struct zcrx_ifq *ifq, uint64_t off, uint32_t len)
{
	uint32_t mask = ifq->rq_entries - 1;
	struct io_uring_zcrx_rqe *rqe;

	if (ifq->rq_tail - __atomic_load_n(ifq->khead, __ATOMIC_ACQUIRE) >= ifq->rq_entries)
		return false;
	rqe = &ifq->rqes[ifq->rq_tail & mask];
	rqe->off = off | ifq->area_token;
	rqe->len = len;
	rqe->__pad = 0;
	ifq->rq_tail++;
	return true;
}

void zcrx_rq_commit(struct zcrx_ifq *ifq)
{
	__atomic_store_n(ifq->ktail, ifq->rq_tail, __ATOMIC_RELEASE);
}

uint32_t zcrx_rq_backlog(const struct zcrx_ifq *ifq)
{
	return __atomic_load_n(ifq->ktail, __ATOMIC_ACQUIRE) - __atomic_load_n(ifq->khead, __ATOMIC_ACQUIRE);
}
