/* nic.c - the NIC checks and set-up of --backend zcrx (see nic.h).
 *
 * Driver, channels, ntuple-filters, RSS and ntuple rules go through the ethtool ioctls; the ring
 * parameters tcp-data-split and hds-thresh through ethtool netlink (the ioctl has neither, and
 * Debian 12's ethtool 6.1 cannot set tcp-data-split nor show hds-thresh). Every operation on the
 * NIC passes one door (nic_ifindex, nic_ethtool, nic_rings_get, nic_rings_set): the kernel answers,
 * or the modelled NIC of --nic-model (nic_model.c); with --nic-transcript each is one JSON line.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <linux/ethtool.h>
#include <linux/ethtool_netlink.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "nic.h"
#include "nic_model.h"
#include "report.h"

#define RESTORE_TRIES 40        /* x 50 ms: the kernel releases a closed ring's queue asynchronously */

/* ---- ethtool ioctl ------------------------------------------------------------------------ */

static int ethtool_ioctl(const char *ifname, void *cmd)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret;

	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_data = cmd;
	ret = ioctl(fd, SIOCETHTOOL, &ifr) < 0 ? -errno : 0;
	close(fd);
	return ret;
}

/* ---- ethtool netlink: the ring parameters ------------------------------------------------- */

struct genl {
	int fd;
	uint16_t family;                /* generic netlink id of "ethtool" */
	uint32_t monitor;               /* its "monitor" multicast group (change notifications) */
	uint32_t seq;
	unsigned ifindex;
	const char *ifname;             /* the device, for the transcript and the model */
	int notified;                   /* RINGS_NTF seen for ifindex during the last call */
	char extack[160];               /* the kernel's message with the last error, "" if none */
};

struct nlreq {
	union {
		struct nlmsghdr h;
		char b[256];            /* every request here is < 64 bytes */
	};
};

struct rings {
	int split;                      /* NIC_SPLIT_NONE or ETHTOOL_TCP_DATA_SPLIT_* */
	int64_t hds;                    /* -1 = not reported */
};

static void req_init(struct nlreq *r, uint16_t type, uint8_t cmd, uint8_t version)
{
	struct genlmsghdr *gh;

	memset(r, 0, sizeof(*r));
	r->h.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
	r->h.nlmsg_type = type;
	r->h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	gh = NLMSG_DATA(&r->h);
	gh->cmd = cmd;
	gh->version = version;
}

static struct nlattr *req_put(struct nlreq *r, uint16_t type, const void *data, uint16_t len)
{
	struct nlattr *a = (struct nlattr *)(r->b + NLMSG_ALIGN(r->h.nlmsg_len));

	a->nla_type = type;
	a->nla_len = (uint16_t)(NLA_HDRLEN + len);
	if (len)
		memcpy((char *)a + NLA_HDRLEN, data, len);
	r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + NLA_ALIGN(a->nla_len);
	return a;
}

/* The request header every ethtool message carries: a nest holding the device index. */
static void req_dev(struct nlreq *r, uint16_t header_attr, uint32_t ifindex)
{
	struct nlattr *nest = req_put(r, header_attr | NLA_F_NESTED, NULL, 0);

	req_put(r, ETHTOOL_A_HEADER_DEV_INDEX, &ifindex, sizeof(ifindex));
	nest->nla_len = (uint16_t)(r->b + r->h.nlmsg_len - (char *)nest);
}

/* Attributes: walk [a, end); each must fit. */
#define NLA_OK_IN(a, end) ((char *)(a) + NLA_HDRLEN <= (end) && (a)->nla_len >= NLA_HDRLEN && \
			   (char *)(a) + (a)->nla_len <= (end))
#define NLA_NEXT(a) ((struct nlattr *)((char *)(a) + NLA_ALIGN((a)->nla_len)))
#define NLA_DATA(a) ((void *)((char *)(a) + NLA_HDRLEN))
#define NLA_END(a) ((char *)(a) + (a)->nla_len)
#define NLA_TYPE(a) ((a)->nla_type & NLA_TYPE_MASK)

static uint32_t nla_u32(const struct nlattr *a)
{
	uint32_t v = 0;

	memcpy(&v, NLA_DATA(a), a->nla_len - NLA_HDRLEN < 4 ? a->nla_len - NLA_HDRLEN : 4);
	return v;
}

typedef void (*reply_fn)(struct genl *g, uint8_t cmd, struct nlattr *attrs, char *end, void *ctx);

/* Does a RINGS_NTF (attrs) concern g's device? */
static bool ntf_for_us(const struct genl *g, struct nlattr *a, char *end)
{
	for (; NLA_OK_IN(a, end); a = NLA_NEXT(a)) {
		if (NLA_TYPE(a) != ETHTOOL_A_RINGS_HEADER)
			continue;
		for (struct nlattr *h = NLA_DATA(a); NLA_OK_IN(h, NLA_END(a)); h = NLA_NEXT(h))
			if (NLA_TYPE(h) == ETHTOOL_A_HEADER_DEV_INDEX && nla_u32(h) == g->ifindex)
				return true;
	}
	return false;
}

/* The kernel's extended-ack message in an error reply, if any. */
static void read_extack(struct genl *g, struct nlmsghdr *h)
{
	struct nlmsgerr *e = NLMSG_DATA(h);
	char *end = (char *)h + h->nlmsg_len;
	struct nlattr *a;

	if (!(h->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	a = (struct nlattr *)((char *)e + NLMSG_ALIGN(sizeof(*e)) +
			      (h->nlmsg_flags & NLM_F_CAPPED ? 0 : e->msg.nlmsg_len - NLMSG_HDRLEN));
	for (; NLA_OK_IN(a, end); a = NLA_NEXT(a))
		if (NLA_TYPE(a) == NLMSGERR_ATTR_MSG)
			snprintf(g->extack, sizeof(g->extack), "%.*s", (int)(a->nla_len - NLA_HDRLEN),
				 (char *)NLA_DATA(a));
}

/* Send r and read until its ACK or error; data replies go to fn. 0 or -errno. */
static int genl_call(struct genl *g, struct nlreq *r, reply_fn fn, void *ctx)
{
	char buf[16384] __attribute__((aligned(NLMSG_ALIGNTO)));
	ssize_t n;
	int len;

	r->h.nlmsg_seq = ++g->seq;
	g->notified = 0;
	g->extack[0] = 0;
	if (send(g->fd, r, r->h.nlmsg_len, 0) < 0)
		return -errno;
	for (;;) {
		n = recv(g->fd, buf, sizeof(buf), 0);
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		len = (int)n;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
			struct genlmsghdr *gh = NLMSG_DATA(h);
			struct nlattr *attrs = (struct nlattr *)((char *)gh + GENL_HDRLEN);
			char *end = (char *)h + h->nlmsg_len;

			if (h->nlmsg_seq != g->seq) {   /* a notification (multicast, seq 0) */
				if (h->nlmsg_type == g->family && g->family && gh->cmd == ETHTOOL_MSG_RINGS_NTF &&
				    ntf_for_us(g, attrs, end))
					g->notified++;
				continue;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);

				if (e->error)
					read_extack(g, h);
				return e->error;
			}
			if (h->nlmsg_type != NLMSG_DONE && fn)
				fn(g, gh->cmd, attrs, end, ctx);
		}
	}
}

static void family_reply(struct genl *g, uint8_t cmd, struct nlattr *a, char *end, void *ctx)
{
	for (; NLA_OK_IN(a, end); a = NLA_NEXT(a)) {
		if (NLA_TYPE(a) == CTRL_ATTR_FAMILY_ID)
			g->family = (uint16_t)nla_u32(a);
		if (NLA_TYPE(a) != CTRL_ATTR_MCAST_GROUPS)
			continue;
		for (struct nlattr *grp = NLA_DATA(a); NLA_OK_IN(grp, NLA_END(a)); grp = NLA_NEXT(grp)) {
			const char *name = NULL;
			uint32_t id = 0;

			for (struct nlattr *f = NLA_DATA(grp); NLA_OK_IN(f, NLA_END(grp)); f = NLA_NEXT(f)) {
				if (NLA_TYPE(f) == CTRL_ATTR_MCAST_GRP_NAME)
					name = NLA_DATA(f);
				if (NLA_TYPE(f) == CTRL_ATTR_MCAST_GRP_ID)
					id = nla_u32(f);
			}
			if (name && !strcmp(name, ETHTOOL_MCGRP_MONITOR_NAME))
				g->monitor = id;
		}
	}
}

/* A netlink socket on the ethtool family, joined to its monitor group (change notifications). */
static int genl_open(struct genl *g, const struct nic_state *st, struct lg_error *err)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	struct timeval tv = { .tv_sec = 5 };
	struct nlreq r;
	int one = 1, ret;

	memset(g, 0, sizeof(*g));
	g->ifindex = st->ifindex;
	g->ifname = st->ifname;
	g->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	if (g->fd < 0) {
		lg_error_set(err, "socket(NETLINK_GENERIC)", errno, "%s (%s): ethtool netlink", st->ifname, st->driver);
		return -1;
	}
	if (bind(g->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    setsockopt(g->fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one)) < 0 ||
	    setsockopt(g->fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one)) < 0 ||
	    setsockopt(g->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		lg_error_set(err, "bind/setsockopt(NETLINK_GENERIC)", errno, "%s (%s): ethtool netlink", st->ifname,
			     st->driver);
		goto fail;
	}
	req_init(&r, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1);
	req_put(&r, CTRL_ATTR_FAMILY_NAME, ETHTOOL_GENL_NAME, sizeof(ETHTOOL_GENL_NAME));
	ret = genl_call(g, &r, family_reply, NULL);
	if (ret || !g->family || !g->monitor) {
		lg_error_set(err, "CTRL_CMD_GETFAMILY", ret ? -ret : ENOENT, "%s (%s): this kernel has no ethtool "
			     "netlink family (Linux >= 5.6 has one)", st->ifname, st->driver);
		goto fail;
	}
	if (setsockopt(g->fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g->monitor, sizeof(g->monitor)) < 0) {
		lg_error_set(err, "setsockopt(NETLINK_ADD_MEMBERSHIP)", errno, "%s (%s): ethtool monitor group",
			     st->ifname, st->driver);
		goto fail;
	}
	return 0;
fail:
	close(g->fd);
	g->fd = -1;
	return -1;
}

static void rings_reply(struct genl *g, uint8_t cmd, struct nlattr *a, char *end, void *ctx)
{
	struct rings *out = ctx;

	if (cmd != ETHTOOL_MSG_RINGS_GET_REPLY)
		return;
	for (; NLA_OK_IN(a, end); a = NLA_NEXT(a)) {
		if (NLA_TYPE(a) == ETHTOOL_A_RINGS_TCP_DATA_SPLIT)
			out->split = *(uint8_t *)NLA_DATA(a);
		if (NLA_TYPE(a) == ETHTOOL_A_RINGS_HDS_THRESH)
			out->hds = nla_u32(a);
	}
}

/* tcp-data-split and hds-thresh as the kernel reports them. 0, or -errno (EOPNOTSUPP: no ring
 * parameters at all, as on veth and lo). */
static int genl_rings_get(struct genl *g, struct rings *out)
{
	struct nlreq r;

	out->split = NIC_SPLIT_NONE;
	out->hds = -1;
	req_init(&r, g->family, ETHTOOL_MSG_RINGS_GET, ETHTOOL_GENL_VERSION);
	req_dev(&r, ETHTOOL_A_RINGS_HEADER, g->ifindex);
	return genl_call(g, &r, rings_reply, out);
}

/* Set tcp-data-split (split >= 0) and/or hds-thresh (hds >= 0). 0, or -errno with g->extack;
 * g->notified says whether the kernel changed anything (it notifies only then). */
static int genl_rings_set(struct genl *g, int split, int64_t hds)
{
	struct nlreq r;
	uint8_t s = (uint8_t)split;
	uint32_t h = (uint32_t)hds;

	req_init(&r, g->family, ETHTOOL_MSG_RINGS_SET, ETHTOOL_GENL_VERSION);
	req_dev(&r, ETHTOOL_A_RINGS_HEADER, g->ifindex);
	if (split >= 0)
		req_put(&r, ETHTOOL_A_RINGS_TCP_DATA_SPLIT, &s, sizeof(s));
	if (hds >= 0)
		req_put(&r, ETHTOOL_A_RINGS_HDS_THRESH, &h, sizeof(h));
	return genl_call(g, &r, NULL, NULL);
}

static const char *split_name(int split)
{
	switch (split) {
	case ETHTOOL_TCP_DATA_SPLIT_UNKNOWN:
		return "auto";
	case ETHTOOL_TCP_DATA_SPLIT_DISABLED:
		return "off";
	case ETHTOOL_TCP_DATA_SPLIT_ENABLED:
		return "on";
	default:
		return "n/a";
	}
}

/* ---- the one door to the NIC: the kernel or the model, each operation transcribed ---------- */

static FILE *transcript;        /* --nic-transcript: one JSON line per operation, line-buffered */
static unsigned transcript_seq;

int nic_transcript_open(const char *path, struct lg_error *err)
{
	transcript = fopen(path, "we");
	if (!transcript) {
		lg_error_set(err, "fopen", errno, "--nic-transcript %s", path);
		return -1;
	}
	setvbuf(transcript, NULL, _IOLBF, 0);   /* a run killed part-way keeps every line written */
	return 0;
}

static const char *ethtool_op(uint32_t cmd)
{
	switch (cmd) {
	case ETHTOOL_GDRVINFO: return "ETHTOOL_GDRVINFO";
	case ETHTOOL_GCHANNELS: return "ETHTOOL_GCHANNELS";
	case ETHTOOL_GFLAGS: return "ETHTOOL_GFLAGS";
	case ETHTOOL_SFLAGS: return "ETHTOOL_SFLAGS";
	case ETHTOOL_GRXRINGS: return "ETHTOOL_GRXRINGS";
	case ETHTOOL_GRXFHINDIR: return "ETHTOOL_GRXFHINDIR";
	case ETHTOOL_SRXFHINDIR: return "ETHTOOL_SRXFHINDIR";
	case ETHTOOL_GRXCLSRLCNT: return "ETHTOOL_GRXCLSRLCNT";
	case ETHTOOL_GRXCLSRLALL: return "ETHTOOL_GRXCLSRLALL";
	case ETHTOOL_GRXCLSRULE: return "ETHTOOL_GRXCLSRULE";
	case ETHTOOL_SRXCLSRLINS: return "ETHTOOL_SRXCLSRLINS";
	case ETHTOOL_SRXCLSRLDEL: return "ETHTOOL_SRXCLSRLDEL";
	default: return "ETHTOOL_?";
	}
}

/* A transcript line begins {"seq":N,"op":..,"ifname":..,"answered_by":"kernel"|"model"; false: none. */
static bool line_begin(struct jbuf *j, const char *op, const char *ifname)
{
	if (!transcript)
		return false;
	memset(j, 0, sizeof(*j));
	jb_raw(j, "{");
	jb_u64(j, "seq", ++transcript_seq);
	jb_str(j, "op", op);
	jb_str(j, "ifname", ifname);
	jb_str(j, "answered_by", nic_model_active() ? "model" : "kernel");
	return true;
}

/* ... and ends with "result": "ok" or the errno's name. */
static void line_end(struct jbuf *j, int ret, const char *extack)
{
	jb_str(j, "result", ret ? errno_name(-ret) : "ok");
	if (extack && extack[0])
		jb_str(j, "extack", extack);
	jb_raw(j, "}\n");
	fputs(j->s, transcript);
	free(j->s);
}

static void list_u32(struct jbuf *j, const char *key, const uint32_t *v, uint32_t n)
{
	char num[16];

	jb_key(j, key);
	jb_raw(j, "[");
	for (uint32_t i = 0; i < n; i++) {
		snprintf(num, sizeof(num), "%s%u", i ? "," : "", v[i]);
		jb_raw(j, num);
	}
	jb_raw(j, "]");
}

static void rule_fields(struct jbuf *j, const struct ethtool_rx_flow_spec *fs)
{
	uint32_t flow = fs->flow_type & ~(uint32_t)(FLOW_EXT | FLOW_MAC_EXT | FLOW_RSS);

	jb_u64(j, "location", fs->location);
	jb_str(j, "flow_type", flow == TCP_V4_FLOW ? "tcp4" : flow == TCP_V6_FLOW ? "tcp6" : "other");
	jb_u64(j, "dst_port", ntohs(flow == TCP_V6_FLOW ? fs->h_u.tcp_ip6_spec.pdst : fs->h_u.tcp_ip4_spec.pdst));
	if (fs->ring_cookie == RX_CLS_FLOW_DISC)
		jb_str(j, "queue", "drop");
	else
		jb_u64(j, "queue", ethtool_get_flow_spec_ring(fs->ring_cookie));
}

/* "write": what the request carries to the device (the settings written, the entry asked for). */
static void ethtool_written(struct jbuf *j, uint32_t c, const void *cmd)
{
	const struct ethtool_value *v = cmd;
	const struct ethtool_rxfh_indir *t = cmd;
	const struct ethtool_rxnfc *nfc = cmd;

	if (c != ETHTOOL_SFLAGS && c != ETHTOOL_GRXFHINDIR && c != ETHTOOL_SRXFHINDIR && c != ETHTOOL_GRXCLSRULE &&
	    c != ETHTOOL_SRXCLSRLINS && c != ETHTOOL_SRXCLSRLDEL)
		return;
	jb_key(j, "write");
	jb_raw(j, "{");
	if (c == ETHTOOL_SFLAGS) {
		jb_u64(j, "flags", v->data);
		jb_bool(j, "ntuple", v->data & ETH_FLAG_NTUPLE);
	} else if (c == ETHTOOL_GRXFHINDIR) {
		jb_u64(j, "size", t->size);
	} else if (c == ETHTOOL_SRXFHINDIR) {   /* size 0: back to the driver's default spread */
		jb_u64(j, "size", t->size);
		if (t->size)
			list_u32(j, "table", t->ring_index, t->size);
	} else if (c == ETHTOOL_SRXCLSRLINS) {
		rule_fields(j, &nfc->fs);
	} else {
		jb_u64(j, "location", nfc->fs.location);
	}
	jb_raw(j, "}");
}

/* "read": what the device answered (operations that read, when they succeeded); table: a
 * GRXFHINDIR asked for the entries, not only the size. */
static void ethtool_read(struct jbuf *j, uint32_t c, const void *cmd, bool table)
{
	const struct ethtool_drvinfo *di = cmd;
	const struct ethtool_channels *ch = cmd;
	const struct ethtool_value *v = cmd;
	const struct ethtool_rxfh_indir *t = cmd;
	const struct ethtool_rxnfc *nfc = cmd;

	if (c == ETHTOOL_SFLAGS || c == ETHTOOL_SRXFHINDIR || c == ETHTOOL_SRXCLSRLDEL)
		return;
	jb_key(j, "read");
	jb_raw(j, "{");
	if (c == ETHTOOL_GDRVINFO) {
		jb_str(j, "driver", di->driver);
	} else if (c == ETHTOOL_GCHANNELS) {
		jb_u64(j, "combined", ch->combined_count);
		jb_u64(j, "rx", ch->rx_count);
	} else if (c == ETHTOOL_GFLAGS) {
		jb_u64(j, "flags", v->data);
		jb_bool(j, "ntuple", v->data & ETH_FLAG_NTUPLE);
	} else if (c == ETHTOOL_GRXRINGS) {
		jb_u64(j, "rings", nfc->data);
	} else if (c == ETHTOOL_GRXFHINDIR) {
		jb_u64(j, "size", t->size);
		if (table)
			list_u32(j, "table", t->ring_index, t->size);
	} else if (c == ETHTOOL_GRXCLSRLCNT) {
		jb_u64(j, "rules", nfc->rule_cnt);
		jb_u64(j, "table_size", nfc->data & ~(uint64_t)RX_CLS_LOC_SPECIAL);
		jb_bool(j, "driver_picks_location", nfc->data & RX_CLS_LOC_SPECIAL);
	} else if (c == ETHTOOL_GRXCLSRLALL) {
		list_u32(j, "locations", nfc->rule_locs, nfc->rule_cnt);
	} else if (c == ETHTOOL_GRXCLSRULE) {
		rule_fields(j, &nfc->fs);
	} else if (c == ETHTOOL_SRXCLSRLINS) {  /* where the rule went (the driver's pick for "any") */
		jb_u64(j, "location", nfc->fs.location);
	}
	jb_raw(j, "}");
}

/* The registration of a zcrx ifq on the queue (rx_zcrx.c; never with a model): its place among the
 * set-up and the restore. err: its positive errno, 0 when it succeeded. */
void nic_transcribe_registration(const struct nic_state *st, unsigned queue, int err)
{
	struct jbuf j;

	if (!line_begin(&j, "io_uring_register(ZCRX_IFQ)", st->ifname))
		return;
	jb_key(&j, "write");
	jb_raw(&j, "{");
	jb_u64(&j, "ifindex", st->ifindex);
	jb_u64(&j, "queue", queue);
	jb_raw(&j, "}");
	line_end(&j, -err, NULL);
}

static int nic_ifindex(const char *ifname, unsigned *ifindex)
{
	struct jbuf j;
	bool t = line_begin(&j, "if_nametoindex", ifname);
	int ret;

	if (nic_model_active()) {
		ret = nic_model_ifindex(ifname, ifindex);
	} else {
		*ifindex = if_nametoindex(ifname);
		ret = *ifindex ? 0 : -errno;
	}
	if (t) {
		if (ret == 0) {
			jb_key(&j, "read");
			jb_raw(&j, "{");
			jb_u64(&j, "ifindex", *ifindex);
			jb_raw(&j, "}");
		}
		line_end(&j, ret, NULL);
	}
	return ret;
}

/* An ethtool ioctl (cmd starts with its ETHTOOL_* command). 0 or -errno. */
static int nic_ethtool(const char *ifname, void *cmd)
{
	struct jbuf j;
	uint32_t c;
	bool t, table;
	int ret;

	memcpy(&c, cmd, sizeof(c));
	table = c == ETHTOOL_GRXFHINDIR && ((struct ethtool_rxfh_indir *)cmd)->size;   /* size 0: the size only */
	t = line_begin(&j, ethtool_op(c), ifname);
	if (t)
		ethtool_written(&j, c, cmd);
	ret = nic_model_active() ? nic_model_ethtool(ethtool_op(c), ifname, cmd) : ethtool_ioctl(ifname, cmd);
	if (t) {
		if (ret == 0)
			ethtool_read(&j, c, cmd, table);
		line_end(&j, ret, NULL);
	}
	return ret;
}

static int nic_rings_get(struct genl *g, struct rings *out)
{
	struct jbuf j;
	bool t = line_begin(&j, "ETHTOOL_MSG_RINGS_GET", g->ifname);
	int ret;

	g->extack[0] = 0;
	if (nic_model_active())
		ret = nic_model_rings_get(g->ifname, &out->split, &out->hds);
	else
		ret = genl_rings_get(g, out);
	if (t) {
		if (ret == 0) {
			jb_key(&j, "read");
			jb_raw(&j, "{");
			jb_str(&j, "tcp_data_split", split_name(out->split));
			jb_i64(&j, "hds_thresh", out->hds);
			jb_raw(&j, "}");
		}
		line_end(&j, ret, g->extack);
	}
	return ret;
}

/* tcp-data-split (split >= 0) and/or hds-thresh (hds >= 0); g->notified: the device changed. */
static int nic_rings_set(struct genl *g, int split, int64_t hds)
{
	struct jbuf j;
	bool t = line_begin(&j, "ETHTOOL_MSG_RINGS_SET", g->ifname);
	int ret;

	if (t) {
		jb_key(&j, "write");
		jb_raw(&j, "{");
		if (split >= 0)
			jb_str(&j, "tcp_data_split", split_name(split));
		if (hds >= 0)
			jb_i64(&j, "hds_thresh", hds);
		jb_raw(&j, "}");
	}
	g->extack[0] = 0;
	if (nic_model_active())
		ret = nic_model_rings_set(g->ifname, split, hds, &g->notified);
	else
		ret = genl_rings_set(g, split, hds);
	if (t) {
		jb_bool(&j, "notified", g->notified > 0);
		line_end(&j, ret, g->extack);
	}
	return ret;
}

/* ---- identification ------------------------------------------------------------------------ */

static bool valid_ifname(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= IF_NAMESIZE)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("-_.@", *s))
			return false;
	return true;
}

/* ifindex, driver, RX queue count and the queue range check. */
static int identify(struct nic_state *st, struct lg_error *err)
{
	struct ethtool_drvinfo di = { .cmd = ETHTOOL_GDRVINFO };
	struct ethtool_channels ch = { .cmd = ETHTOOL_GCHANNELS };
	int ret;

	if (!valid_ifname(st->ifname)) {
		lg_error_set(err, NULL, 0, "--ifname '%s' is not an interface name", st->ifname);
		return -1;
	}
	ret = nic_ifindex(st->ifname, &st->ifindex);
	if (ret) {
		lg_error_set(err, "if_nametoindex", -ret, "no network interface %s here", st->ifname);
		return -1;
	}
	if (nic_ethtool(st->ifname, &di) == 0 && di.driver[0])
		snprintf(st->driver, sizeof(st->driver), "%s", di.driver);
	else
		snprintf(st->driver, sizeof(st->driver), "no driver");
	if (nic_ethtool(st->ifname, &ch) == 0) {
		st->rx_queues = ch.combined_count + ch.rx_count;
		for (unsigned i = 0; i < st->nqueues; i++) {
			if (st->queues[i] >= st->rx_queues) {
				lg_error_set(err, NULL, 0, "%s (%s) has %u RX queue(s): queue %u is out of range", st->ifname,
					     st->driver, st->rx_queues, st->queues[i]);
				return -1;
			}
		}
	}
	return 0;
}

/* Is q one of zcrx's queues? */
static bool steered(const struct nic_state *st, unsigned q)
{
	for (unsigned i = 0; i < st->nqueues; i++)
		if (st->queues[i] == q)
			return true;
	return false;
}

/* "queue 4" or "queues 4,5,6" (shortened with "..." past the buffer). */
static void queues_text(struct nic_state *st)
{
	size_t used = (size_t)snprintf(st->qtext, sizeof(st->qtext), "queue%s ", st->nqueues > 1 ? "s" : "");

	for (unsigned i = 0; i < st->nqueues && used < sizeof(st->qtext); i++)
		used += (size_t)snprintf(st->qtext + used, sizeof(st->qtext) - used, "%s%u", i ? "," : "", st->queues[i]);
	if (used >= sizeof(st->qtext))
		memcpy(st->qtext + sizeof(st->qtext) - 4, "...", 4);
}

/* ---- the settings, one by one: read, then fail (no --setup-nic) or apply ------------------- */

static int fix_split(struct genl *g, struct nic_state *st, struct lg_error *err)
{
	int ret, shown = st->split;

	if (!st->setup) {
		if (shown == ETHTOOL_TCP_DATA_SPLIT_ENABLED)
			return 0;       /* shown on; an automatic "on" only the registration can tell */
		lg_error_set(err, NULL, 0, "%s (%s) has tcp-data-split %s; zcrx needs it on%s: pass --setup-nic or "
			     "run `ethtool -G %s tcp-data-split on%s` (ethtool 6.1 lacks these options)", st->ifname,
			     st->driver, split_name(shown), st->hds >= 0 ? " and hds-thresh 0" : "", st->ifname,
			     st->hds >= 0 ? " hds-thresh 0" : "");
		return -1;
	}
	/* The value shown may be the driver's own choice ("auto"), which zcrx refuses, and only the
	 * kernel's change notification tells the two apart: set the value shown; a notification means
	 * the setting was "auto", and "auto" is what nic_restore() puts back. */
	ret = nic_rings_set(g, shown, -1);
	if (ret == 0 && g->notified) {
		st->split_changed = true;
		st->split_old = ETHTOOL_TCP_DATA_SPLIT_UNKNOWN;
	} else if (ret == 0) {
		st->split_old = (uint8_t)shown;
	}
	if (ret == 0 && shown != ETHTOOL_TCP_DATA_SPLIT_ENABLED) {
		ret = nic_rings_set(g, ETHTOOL_TCP_DATA_SPLIT_ENABLED, -1);
		st->split_changed |= ret == 0;
	}
	if (ret) {
		lg_error_set(err, "ETHTOOL_MSG_RINGS_SET", -ret, "--setup-nic: %s (%s): setting tcp-data-split on "
			     "failed%s%s", st->ifname, st->driver, g->extack[0] ? ": " : "", g->extack);
		return -1;
	}
	return 0;
}

static int fix_hds(struct genl *g, struct nic_state *st, struct lg_error *err)
{
	int ret;

	if (st->hds <= 0)       /* 0, or not reported: the kernel's value is then 0 */
		return 0;
	if (!st->setup) {
		lg_error_set(err, NULL, 0, "%s (%s) has hds-thresh %lld; zcrx needs 0: pass --setup-nic or run "
			     "`ethtool -G %s hds-thresh 0` (ethtool 6.1 lacks the option)", st->ifname, st->driver,
			     (long long)st->hds, st->ifname);
		return -1;
	}
	ret = nic_rings_set(g, -1, 0);
	if (ret) {
		lg_error_set(err, "ETHTOOL_MSG_RINGS_SET", -ret, "--setup-nic: %s (%s): setting hds-thresh 0 failed%s%s",
			     st->ifname, st->driver, g->extack[0] ? ": " : "", g->extack);
		return -1;
	}
	st->hds_changed = true;
	st->hds_old = (uint32_t)st->hds;
	return 0;
}

/* "1 1 0 1": ethtool -X weights with zcrx's queues left out (n <= 16; else a description). */
static void weights_text(const struct nic_state *st, char *out, size_t len, unsigned n)
{
	size_t used = 0;

	if (n > 16) {
		snprintf(out, len, "<one weight per queue, 0 for %s>", st->qtext);
		return;
	}
	out[0] = 0;
	for (unsigned i = 0; i < n && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "%s%u", i ? " " : "", steered(st, i) ? 0u : 1u);
}

/* RSS must spread flows over every queue but zcrx's (the steered flows alone go to those). */
static int fix_rss(struct nic_state *st, struct lg_error *err)
{
	struct ethtool_rxnfc rings = { .cmd = ETHTOOL_GRXRINGS };
	struct ethtool_rxfh_indir head = { .cmd = ETHTOOL_GRXFHINDIR, .size = 0 };
	struct ethtool_rxfh_indir *tab;
	unsigned on_q = 0, n, k = 0;
	char weights[96];
	int ret;

	ret = nic_ethtool(st->ifname, &rings);
	if (ret == 0)
		ret = nic_ethtool(st->ifname, &head);
	if (ret == 0 && head.size == 0)
		ret = -EOPNOTSUPP;
	if (ret) {
		lg_error_set(err, "ETHTOOL_GRXFHINDIR", -ret, "%s (%s): no RSS indirection table to keep other flows off "
			     "%s", st->ifname, st->driver, st->qtext);
		return -1;
	}
	n = (unsigned)rings.data;
	if (n <= st->nqueues) {
		lg_error_set(err, NULL, 0, "%s (%s) has %u RSS ring(s); zcrx takes %s and needs another for the rest "
			     "of the traffic: run `ethtool -L %s combined %u`", st->ifname, st->driver, n, st->qtext,
			     st->ifname, st->nqueues + 1);
		return -1;
	}
	tab = calloc(1, sizeof(*tab) + head.size * sizeof(uint32_t));
	if (!tab) {
		lg_error_set(err, "calloc", ENOMEM, "%s: RSS indirection table", st->ifname);
		return -1;
	}
	tab->cmd = ETHTOOL_GRXFHINDIR;
	tab->size = head.size;
	ret = nic_ethtool(st->ifname, tab);
	if (ret) {
		lg_error_set(err, "ETHTOOL_GRXFHINDIR", -ret, "%s (%s): reading the RSS indirection table", st->ifname,
			     st->driver);
		free(tab);
		return -1;
	}
	for (uint32_t i = 0; i < tab->size; i++)
		on_q += steered(st, tab->ring_index[i]);
	if (!on_q) {
		free(tab);
		return 0;
	}
	if (!st->setup) {
		weights_text(st, weights, sizeof(weights), n);
		lg_error_set(err, NULL, 0, "%s (%s) spreads flows over %s by RSS (%u of %u table entries); zcrx "
			     "needs it for the steered flows only: pass --setup-nic or run `ethtool -X %s weight %s`",
			     st->ifname, st->driver, st->qtext, on_q, tab->size, st->ifname, weights);
		free(tab);
		return -1;
	}
	/* keep the old table (was it the driver's default spread?), then every queue but zcrx's in turn */
	st->rss_size = tab->size;
	st->rss_old = malloc(tab->size * sizeof(uint32_t));
	if (!st->rss_old) {
		lg_error_set(err, "malloc", ENOMEM, "%s: saving the RSS indirection table", st->ifname);
		free(tab);
		return -1;
	}
	memcpy(st->rss_old, tab->ring_index, tab->size * sizeof(uint32_t));
	st->rss_was_default = true;
	for (uint32_t i = 0; i < tab->size; i++) {
		st->rss_was_default &= tab->ring_index[i] == i % n;
		while (steered(st, k % n))
			k++;
		tab->ring_index[i] = k++ % n;
	}
	tab->cmd = ETHTOOL_SRXFHINDIR;
	ret = nic_ethtool(st->ifname, tab);
	free(tab);
	if (ret) {
		lg_error_set(err, "ETHTOOL_SRXFHINDIR", -ret, "--setup-nic: %s (%s): moving RSS off %s failed",
			     st->ifname, st->driver, st->qtext);
		return -1;
	}
	st->rss_changed = true;
	return 0;
}

static int fix_ntuple(struct nic_state *st, struct lg_error *err)
{
	struct ethtool_value flags = { .cmd = ETHTOOL_GFLAGS };
	int ret = nic_ethtool(st->ifname, &flags);

	if (ret) {
		lg_error_set(err, "ETHTOOL_GFLAGS", -ret, "%s (%s): reading ntuple-filters", st->ifname, st->driver);
		return -1;
	}
	if (flags.data & ETH_FLAG_NTUPLE)
		return 0;
	if (!st->setup) {
		lg_error_set(err, NULL, 0, "%s (%s) has ntuple-filters off, so no flow can be steered to %s: "
			     "pass --setup-nic or run `ethtool -K %s ntuple on`", st->ifname, st->driver, st->qtext,
			     st->ifname);
		return -1;
	}
	flags.cmd = ETHTOOL_SFLAGS;     /* the other flags as they are: only ntuple changes */
	flags.data |= ETH_FLAG_NTUPLE;
	ret = nic_ethtool(st->ifname, &flags);
	if (ret) {
		lg_error_set(err, "ETHTOOL_SFLAGS", -ret, "--setup-nic: %s (%s): turning ntuple-filters on failed%s",
			     st->ifname, st->driver, ret == -EOPNOTSUPP ? " (fixed off by the driver)" : "");
		return -1;
	}
	st->ntuple_changed = true;
	return 0;
}

/* The rule locations in use (caller frees) and the GRXCLSRLCNT data (table size, LOC_SPECIAL). */
static struct ethtool_rxnfc *rule_locations(const struct nic_state *st, uint64_t *data, struct lg_error *err)
{
	struct ethtool_rxnfc cnt = { .cmd = ETHTOOL_GRXCLSRLCNT }, *all;
	int ret = nic_ethtool(st->ifname, &cnt);

	if (ret) {
		lg_error_set(err, "ETHTOOL_GRXCLSRLCNT", -ret, "%s (%s): listing ntuple rules", st->ifname, st->driver);
		return NULL;
	}
	*data = cnt.data;
	all = calloc(1, sizeof(*all) + (cnt.rule_cnt + 1) * sizeof(uint32_t));
	if (!all) {
		lg_error_set(err, "calloc", ENOMEM, "%s: ntuple rule list", st->ifname);
		return NULL;
	}
	all->cmd = ETHTOOL_GRXCLSRLALL;
	all->rule_cnt = cnt.rule_cnt;
	ret = nic_ethtool(st->ifname, all);
	if (ret) {
		lg_error_set(err, "ETHTOOL_GRXCLSRLALL", -ret, "%s (%s): listing ntuple rules", st->ifname, st->driver);
		free(all);
		return NULL;
	}
	return all;
}

static bool rule_directs_to(const struct ethtool_rx_flow_spec *fs, unsigned queue)
{
	return fs->ring_cookie != RX_CLS_FLOW_DISC && !(fs->flow_type & FLOW_RSS) &&
	       !ethtool_get_flow_spec_ring_vf(fs->ring_cookie) && ethtool_get_flow_spec_ring(fs->ring_cookie) == queue;
}

static bool rule_to_steered(const struct nic_state *st, const struct ethtool_rx_flow_spec *fs)
{
	for (unsigned i = 0; i < st->nqueues; i++)
		if (rule_directs_to(fs, st->queues[i]))
			return true;
	return false;
}

/* Where a new rule goes: "any" when the driver chooses (RX_CLS_LOC_SPECIAL), else the last free
 * slot of the table (as ethtool -N does). */
static int rule_slot(const struct ethtool_rxnfc *all, uint64_t data, uint32_t *loc)
{
	uint32_t size = (uint32_t)(data & ~(uint64_t)RX_CLS_LOC_SPECIAL);

	if (data & RX_CLS_LOC_SPECIAL) {
		*loc = RX_CLS_LOC_ANY;
		return 0;
	}
	for (uint32_t l = size; l-- > 0;) {
		bool used = false;

		for (uint32_t i = 0; i < all->rule_cnt; i++)
			used |= all->rule_locs[i] == l;
		if (!used) {
			*loc = l;
			return 0;
		}
	}
	return -ENOSPC;
}

/* Does some rule direct flows to queue q? */
static bool has_rule_to(const struct nic_state *st, const struct ethtool_rxnfc *all, unsigned q)
{
	struct ethtool_rxnfc rule = { .cmd = ETHTOOL_GRXCLSRULE };

	for (uint32_t i = 0; i < all->rule_cnt; i++) {
		rule.fs.location = all->rule_locs[i];
		if (nic_ethtool(st->ifname, &rule) == 0 && rule_directs_to(&rule.fs, q))
			return true;
	}
	return false;
}

/* Is there a rule steering TCP flows to destination port `port` to queue q (what add_rule makes)? */
static bool has_rule_for_port(const struct nic_state *st, const struct ethtool_rxnfc *all, bool v6, long port,
			      unsigned q)
{
	struct ethtool_rxnfc rule = { .cmd = ETHTOOL_GRXCLSRULE };

	for (uint32_t i = 0; i < all->rule_cnt; i++) {
		uint32_t flow;
		uint16_t pdst, mask;

		rule.fs.location = all->rule_locs[i];
		if (nic_ethtool(st->ifname, &rule) || !rule_directs_to(&rule.fs, q))
			continue;
		flow = rule.fs.flow_type & ~(uint32_t)(FLOW_EXT | FLOW_MAC_EXT);
		pdst = v6 ? rule.fs.h_u.tcp_ip6_spec.pdst : rule.fs.h_u.tcp_ip4_spec.pdst;
		mask = v6 ? rule.fs.m_u.tcp_ip6_spec.pdst : rule.fs.m_u.tcp_ip4_spec.pdst;
		if (flow == (v6 ? TCP_V6_FLOW : TCP_V4_FLOW) && ntohs(pdst) == port && mask == 0xffff)
			return true;
	}
	return false;
}

/* One rule: TCP flows to destination port `port` go to queue q. Its location goes in rule_ids. */
static int add_rule(struct nic_state *st, bool v6, long port, unsigned q, struct lg_error *err)
{
	struct ethtool_rxnfc rule, *all;
	uint64_t data = 0;
	uint32_t loc = 0;
	int ret;

	all = rule_locations(st, &data, err);   /* again for each rule: the slots the last one took */
	if (!all)
		return -1;
	ret = rule_slot(all, data, &loc);
	free(all);
	memset(&rule, 0, sizeof(rule));
	rule.cmd = ETHTOOL_SRXCLSRLINS;
	rule.fs.flow_type = v6 ? TCP_V6_FLOW : TCP_V4_FLOW;
	if (v6) {
		rule.fs.h_u.tcp_ip6_spec.pdst = htons((uint16_t)port);
		rule.fs.m_u.tcp_ip6_spec.pdst = 0xffff;         /* mask bits set: compared */
	} else {
		rule.fs.h_u.tcp_ip4_spec.pdst = htons((uint16_t)port);
		rule.fs.m_u.tcp_ip4_spec.pdst = 0xffff;
	}
	rule.fs.ring_cookie = q;
	rule.fs.location = loc;
	if (ret == 0)
		ret = nic_ethtool(st->ifname, &rule);
	if (ret) {
		lg_error_set(err, "ETHTOOL_SRXCLSRLINS", -ret, "--setup-nic: %s (%s): adding a rule steering %s port "
			     "%ld to queue %u failed", st->ifname, st->driver, v6 ? "tcp6" : "tcp4", port, q);
		return -1;
	}
	st->rule_ids[st->nrules++] = rule.fs.location;
	return 0;
}

/* Without --setup-nic: some rule must direct flows to each queue. With it: add one per queue,
 * queues[i] getting the flows to the listen port + i, unless that very rule is there already. */
static int fix_rule(struct nic_state *st, const char *listen, struct lg_error *err)
{
	const char *colon = strrchr(listen, ':');
	bool v6 = strchr(listen, '[') || strchr(listen, ':') != colon;
	long port = colon ? strtol(colon + 1, NULL, 10) : 0;
	struct ethtool_rxnfc *all;
	uint64_t data = 0;

	if (!st->setup) {
		all = rule_locations(st, &data, err);
		if (!all)
			return -1;
		for (unsigned i = 0; i < st->nqueues; i++) {
			if (has_rule_to(st, all, st->queues[i]))
				continue;
			free(all);
			lg_error_set(err, NULL, 0, "%s (%s) has no ntuple rule directing flows to queue %u: pass --setup-nic "
				     "or run `ethtool -N %s flow-type %s dst-port %ld action %u`", st->ifname, st->driver,
				     st->queues[i], st->ifname, v6 ? "tcp6" : "tcp4", port + (long)i, st->queues[i]);
			return -1;
		}
		free(all);
		return 0;
	}
	if (port <= 0 || port + (long)st->nqueues - 1 > 65535) {
		lg_error_set(err, NULL, 0, "--setup-nic needs a fixed --listen port to steer to %s (got %s)", st->qtext,
			     listen);
		return -1;
	}
	all = rule_locations(st, &data, err);
	if (!all)
		return -1;
	for (unsigned i = 0; i < st->nqueues; i++) {
		if (has_rule_for_port(st, all, v6, port + (long)i, st->queues[i]))
			continue;       /* already steered: nothing to add, nothing to undo */
		if (add_rule(st, v6, port + (long)i, st->queues[i], err)) {
			free(all);
			return -1;
		}
	}
	free(all);
	return 0;
}

/* ---- the state, as read: the `nic` event before the set-up and after the restore ------------ */

struct nic_snap {
	int split;                      /* NIC_SPLIT_NONE or ETHTOOL_TCP_DATA_SPLIT_* */
	int64_t hds;                    /* -1: not reported */
	int ntuple;                     /* 1 on, 0 off, -1 not readable */
	int64_t rss_size, rss_on_q;     /* -1: no table */
	int64_t rules, rules_to_q;      /* -1: not readable */
};

static void snapshot(const struct nic_state *st, struct nic_snap *sn)
{
	struct ethtool_value flags = { .cmd = ETHTOOL_GFLAGS };
	struct ethtool_rxfh_indir head = { .cmd = ETHTOOL_GRXFHINDIR, .size = 0 };
	struct ethtool_rxnfc *all, rule = { .cmd = ETHTOOL_GRXCLSRULE };
	struct lg_error ignored;
	struct genl g = { .fd = -1 };
	struct rings r = { .split = NIC_SPLIT_NONE, .hds = -1 };
	uint64_t data = 0;

	memset(sn, 0, sizeof(*sn));
	if (genl_open(&g, st, &ignored) == 0) {
		nic_rings_get(&g, &r);
		close(g.fd);
	}
	sn->split = r.split;
	sn->hds = r.hds;
	sn->ntuple = nic_ethtool(st->ifname, &flags) ? -1 : !!(flags.data & ETH_FLAG_NTUPLE);
	sn->rss_size = sn->rss_on_q = -1;
	if (nic_ethtool(st->ifname, &head) == 0 && head.size) {
		struct ethtool_rxfh_indir *tab = calloc(1, sizeof(*tab) + head.size * sizeof(uint32_t));

		if (tab) {
			tab->cmd = ETHTOOL_GRXFHINDIR;
			tab->size = head.size;
			if (nic_ethtool(st->ifname, tab) == 0) {
				sn->rss_size = tab->size;
				sn->rss_on_q = 0;
				for (uint32_t i = 0; i < tab->size; i++)
					sn->rss_on_q += steered(st, tab->ring_index[i]);
			}
			free(tab);
		}
	}
	sn->rules = sn->rules_to_q = -1;
	all = rule_locations(st, &data, &ignored);
	if (all) {
		sn->rules = all->rule_cnt;
		sn->rules_to_q = 0;
		for (uint32_t i = 0; i < all->rule_cnt; i++) {
			rule.fs.location = all->rule_locs[i];
			sn->rules_to_q += nic_ethtool(st->ifname, &rule) == 0 && rule_to_steered(st, &rule.fs);
		}
		free(all);
	}
}

/* What --setup-nic changed, as a JSON list of the settings' ethtool names. */
static void changed_list(const struct nic_state *st, char *out, size_t len)
{
	const char *names[] = { "tcp-data-split", "hds-thresh", "rss", "ntuple", "rule" };
	bool on[] = { st->split_changed, st->hds_changed, st->rss_changed, st->ntuple_changed, st->nrules > 0 };
	size_t used = (size_t)snprintf(out, len, "[");

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && used < len; i++)
		if (on[i])
			used += (size_t)snprintf(out + used, len - used, "%s\"%s\"", used > 1 ? ", " : "", names[i]);
	if (used < len)
		snprintf(out + used, len - used, "]");
}

/* The `nic` event: the settings zcrx depends on, read now ("before" the set-up, "after" the
 * restore); `changed` (a JSON list, "after" only): what --setup-nic had changed and put back. */
static void nic_report(struct nic_state *st, const char *phase, const char *changed)
{
	struct nic_snap sn;
	struct jbuf j;
	char queues[NIC_MAX_QUEUES * 6 + 4];
	size_t used = (size_t)snprintf(queues, sizeof(queues), "[");

	for (unsigned i = 0; i < st->nqueues; i++)     /* 64 x "4095, " fits */
		used += (size_t)snprintf(queues + used, sizeof(queues) - used, "%s%u", i ? ", " : "", st->queues[i]);
	snprintf(queues + used, sizeof(queues) - used, "]");
	snapshot(st, &sn);
	if (!g_run.json) {
		out_printf("nic %s %s (%s) %s: %u RX queue(s), tcp-data-split %s, hds-thresh %lld, ntuple %s, "
			   "RSS entries on zcrx's queues %lld of %lld, rules to them %lld of %lld%s\n", phase, st->ifname,
			   st->driver, st->qtext, st->rx_queues, split_name(sn.split), (long long)sn.hds,
			   sn.ntuple < 0 ? "n/a" : sn.ntuple ? "on" : "off", (long long)sn.rss_on_q, (long long)sn.rss_size,
			   (long long)sn.rules_to_q, (long long)sn.rules, g_run.nic_model_note);
		return;
	}
	jb_begin(&j, "event");
	jb_str(&j, "event", "nic_state");
	jb_str(&j, "phase", phase);
	jb_str(&j, "ifname", st->ifname);
	jb_str(&j, "driver", st->driver);
	jb_u64(&j, "ifindex", st->ifindex);
	jb_u64(&j, "queue", st->queue);
	jb_key(&j, "queues");
	jb_raw(&j, queues);
	jb_u64(&j, "rx_queues", st->rx_queues);
	jb_str(&j, "tcp_data_split", split_name(sn.split));
	jb_i64(&j, "hds_thresh", sn.hds);
	jb_key(&j, "ntuple");
	jb_raw(&j, sn.ntuple < 0 ? "null" : sn.ntuple ? "true" : "false");
	jb_i64(&j, "rss_table_size", sn.rss_size);
	jb_i64(&j, "rss_entries_on_queue", sn.rss_on_q);
	jb_i64(&j, "ntuple_rules", sn.rules);
	jb_i64(&j, "ntuple_rules_to_queue", sn.rules_to_q);
	jb_bool(&j, "setup_nic", st->setup);
	if (changed) {
		jb_key(&j, "changed");
		jb_raw(&j, changed);
	}
	jb_emit(&j);
}

/* ---- the API ------------------------------------------------------------------------------- */

int nic_prepare(const char *ifname, const unsigned *queues, unsigned n, const char *listen, bool setup,
		struct nic_state *st, struct lg_error *err)
{
	struct genl g = { .fd = -1 };
	struct rings rings;
	int ret;

	memset(st, 0, sizeof(*st));
	st->queue = queues[0];
	st->nqueues = n < NIC_MAX_QUEUES ? n : NIC_MAX_QUEUES;
	memcpy(st->queues, queues, st->nqueues * sizeof(*queues));
	queues_text(st);
	st->setup = setup;
	st->split = NIC_SPLIT_NONE;
	st->hds = -1;
	snprintf(st->ifname, sizeof(st->ifname), "%s", ifname);
	if (strlen(ifname) >= sizeof(st->ifname)) {
		lg_error_set(err, NULL, 0, "--ifname '%s' is not an interface name", ifname);
		return -1;
	}
	if (identify(st, err))
		return -1;
	nic_report(st, "before", NULL);        /* as found, before anything is changed */
	st->reported = true;
	if (genl_open(&g, st, err)) {
		nic_restore(st);                /* nothing changed yet: reports "after" */
		return -1;
	}
	ret = nic_rings_get(&g, &rings);
	if (ret && ret != -EOPNOTSUPP) {
		lg_error_set(err, "ETHTOOL_MSG_RINGS_GET", -ret, "%s (%s): reading tcp-data-split", ifname, st->driver);
		goto fail;
	}
	st->split = rings.split;
	st->hds = rings.hds;
	if (st->split == NIC_SPLIT_NONE) {      /* cannot split headers: the registration says why */
		close(g.fd);
		return 0;
	}
	if (st->rx_queues && st->rx_queues <= st->nqueues) {
		lg_error_set(err, NULL, 0, "%s (%s) has %u RX queue(s); zcrx takes %s and needs another for the rest of "
			     "the traffic: run `ethtool -L %s combined %u`", ifname, st->driver, st->rx_queues, st->qtext,
			     ifname, st->nqueues + 1);
		goto fail;
	}
	if (fix_split(&g, st, err) || fix_hds(&g, st, err) || fix_rss(st, err))
		goto fail;
	if (listen && (fix_ntuple(st, err) || fix_rule(st, listen, err)))
		goto fail;
	close(g.fd);
	return 0;
fail:
	close(g.fd);
	nic_restore(st);
	return -1;
}

void nic_explain_register_error(const struct nic_state *st, struct lg_error *err)
{
	if (err->err != EINVAL)
		return;
	if (st->split == NIC_SPLIT_NONE)
		lg_error_set(err, "io_uring_register(ZCRX_IFQ)", EINVAL, "%s (%s) %s cannot host zcrx: it reports "
			     "no tcp-data-split setting (n/a), and zcrx needs header split on", st->ifname, st->driver,
			     st->qtext);
	else if (!st->setup)    /* preflight saw tcp-data-split on and hds-thresh 0 */
		lg_error_set(err, "io_uring_register(ZCRX_IFQ)", EINVAL, "%s (%s) %s cannot host zcrx: "
			     "tcp-data-split shows on, perhaps as the driver's automatic choice, which zcrx refuses: pass "
			     "--setup-nic or run `ethtool -G %s tcp-data-split on`", st->ifname, st->driver, st->qtext,
			     st->ifname);
}

/* One restore step, retried while the kernel still holds the closed rings' queue; a step that
 * keeps failing is reported with the command that finishes the job by hand. */
static void restore_step(struct nic_state *st, const char *what, const char *by_hand,
			 int (*step)(struct nic_state *st, struct genl *g), struct genl *g)
{
	struct timespec pause = { .tv_nsec = 50 * 1000 * 1000 };
	int ret = 0;

	for (int i = 0; i < RESTORE_TRIES; i++) {
		ret = step(st, g);
		if (ret == 0)
			return;
		if (ret == -EBADF)      /* no ethtool netlink socket: retrying cannot help */
			break;
		nanosleep(&pause, NULL);
	}
	err_printf("zcrx-loadgen: warning: %s (%s): restoring %s failed: %s%s%s; by hand: %s%s\n", st->ifname,
		   st->driver, what, errno_name(-ret), g && g->extack[0] ? ": " : "", g ? g->extack : "", by_hand,
		   g_run.nic_model_note);
}

static int undo_rule(struct nic_state *st, struct genl *g)
{
	struct ethtool_rxnfc del = { .cmd = ETHTOOL_SRXCLSRLDEL };

	del.fs.location = st->rule_ids[st->nrules - 1];     /* the last one added not yet removed */
	return nic_ethtool(st->ifname, &del);
}

static int undo_rss(struct nic_state *st, struct genl *g)
{
	struct ethtool_rxfh_indir *tab;
	int ret;

	if (st->rss_was_default) {      /* size 0: the driver's default spread, as before */
		struct ethtool_rxfh_indir reset = { .cmd = ETHTOOL_SRXFHINDIR, .size = 0 };

		return nic_ethtool(st->ifname, &reset);
	}
	tab = calloc(1, sizeof(*tab) + st->rss_size * sizeof(uint32_t));
	if (!tab)
		return -ENOMEM;
	tab->cmd = ETHTOOL_SRXFHINDIR;
	tab->size = st->rss_size;
	memcpy(tab->ring_index, st->rss_old, st->rss_size * sizeof(uint32_t));
	ret = nic_ethtool(st->ifname, tab);
	free(tab);
	return ret;
}

static int undo_ntuple(struct nic_state *st, struct genl *g)
{
	struct ethtool_value flags = { .cmd = ETHTOOL_GFLAGS };
	int ret = nic_ethtool(st->ifname, &flags);

	if (ret)
		return ret;
	flags.cmd = ETHTOOL_SFLAGS;
	flags.data &= ~(uint32_t)ETH_FLAG_NTUPLE;
	return nic_ethtool(st->ifname, &flags);
}

static int undo_hds(struct nic_state *st, struct genl *g)
{
	return g->fd < 0 ? -EBADF : nic_rings_set(g, -1, st->hds_old);
}

static int undo_split(struct nic_state *st, struct genl *g)
{
	return g->fd < 0 ? -EBADF : nic_rings_set(g, st->split_old, -1);
}

void nic_restore(struct nic_state *st)
{
	struct genl g = { .fd = -1 };
	struct lg_error err;
	char cmd[160], changed[96];

	changed_list(st, changed, sizeof(changed));
	/* the exact reverse of nic_prepare's fixes: rules, ntuple, RSS, hds-thresh, tcp-data-split */
	for (; st->nrules > 0; st->nrules--) {       /* the rules, last added first */
		snprintf(cmd, sizeof(cmd), "`ethtool -N %s delete %u`", st->ifname, st->rule_ids[st->nrules - 1]);
		restore_step(st, "an ntuple rule", cmd, undo_rule, NULL);
	}
	if (st->ntuple_changed) {
		snprintf(cmd, sizeof(cmd), "`ethtool -K %s ntuple off`", st->ifname);
		restore_step(st, "ntuple-filters off", cmd, undo_ntuple, NULL);
		st->ntuple_changed = false;
	}
	if (st->rss_changed) {
		if (st->rss_was_default)
			snprintf(cmd, sizeof(cmd), "`ethtool -X %s default`", st->ifname);
		else
			snprintf(cmd, sizeof(cmd), "`ethtool -X %s weight ...` giving the %u-entry table it had before",
				 st->ifname, st->rss_size);
		restore_step(st, "the RSS indirection table", cmd, undo_rss, NULL);
		st->rss_changed = false;
	}
	if ((st->hds_changed || st->split_changed) && genl_open(&g, st, &err))
		err_printf("zcrx-loadgen: warning: %s%s\n", err.msg, g_run.nic_model_note);   /* the steps below say what is left */
	if (st->hds_changed) {
		snprintf(cmd, sizeof(cmd), "`ethtool -G %s hds-thresh %u`", st->ifname, st->hds_old);
		restore_step(st, "hds-thresh", cmd, undo_hds, &g);
		st->hds_changed = false;
	}
	if (st->split_changed) {
		snprintf(cmd, sizeof(cmd), "`ethtool -G %s tcp-data-split %s`", st->ifname, split_name(st->split_old));
		restore_step(st, "tcp-data-split", cmd, undo_split, &g);
		st->split_changed = false;
	}
	if (g.fd >= 0)
		close(g.fd);
	free(st->rss_old);
	st->rss_old = NULL;
	if (st->reported) {             /* once, after a "before" */
		nic_report(st, "after", changed);
		st->reported = false;
	}
}
