/* nic_model.c - the modelled NIC of --nic-model (see nic_model.h): a small reader for its JSON file,
 * then one function per kind of operation, answering from the state and changing it as a driver
 * would. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <linux/ethtool.h>
#include <linux/ethtool_netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nic.h"
#include "nic_model.h"

#define MODEL_MAX_RSS 4096
#define MODEL_MAX_RULES 256
#define MODEL_MAX_FAILS 16
#define MODEL_DEFAULT_RSS 128

struct model_rule {
	uint32_t location;
	uint16_t dst_port;
	uint32_t queue;
	bool v6;
};

static struct {
	bool active;
	char ifname[IF_NAMESIZE];
	unsigned ifindex;
	char driver[32];
	unsigned rx_queues;
	int split;                      /* the setting: ETHTOOL_TCP_DATA_SPLIT_* (UNKNOWN = auto) or NIC_SPLIT_NONE */
	int auto_shows;                 /* what a read shows while the setting is auto */
	int64_t hds;                    /* -1: not reported */
	uint32_t rss[MODEL_MAX_RSS];
	uint32_t rss_size;
	bool ntuple, ntuple_fixed;
	uint32_t rule_table;
	struct model_rule rules[MODEL_MAX_RULES];
	unsigned nrules;
	struct {
		char op[40];
		int err;
		long long times;        /* calls left to fail; -1: every call */
	} fails[MODEL_MAX_FAILS];
	unsigned nfails;
} m;

/* ---- the file: one JSON object of names, numbers, booleans and lists ------------------------ */

struct reader {
	const char *p, *start;
	char problem[96];               /* the first one, "" while none */
};

static bool problem(struct reader *r, const char *what)
{
	if (!r->problem[0])
		snprintf(r->problem, sizeof(r->problem), "%s at byte %td", what, r->p - r->start);
	return false;
}

/* Consume c (after blanks) if it comes next. */
static bool next_is(struct reader *r, char c)
{
	while (isspace((unsigned char)*r->p))
		r->p++;
	if (*r->p != c)
		return false;
	r->p++;
	return true;
}

static bool expect(struct reader *r, char c)
{
	char what[24];

	if (next_is(r, c))
		return true;
	snprintf(what, sizeof(what), "expected '%c'", c);
	return problem(r, what);
}

static bool read_string(struct reader *r, char *out, size_t len)
{
	size_t n = 0;

	if (!expect(r, '"'))
		return false;
	for (; *r->p != '"'; r->p++) {
		if (!*r->p || *r->p == '\\' || (unsigned char)*r->p < 0x20)
			return problem(r, "a string with an escape or without its end");
		if (n + 1 >= len)
			return problem(r, "a string too long");
		out[n++] = *r->p;
	}
	out[n] = 0;
	r->p++;
	return true;
}

static bool read_int(struct reader *r, long long lo, long long hi, long long *out)
{
	char *end;

	while (isspace((unsigned char)*r->p))
		r->p++;
	if (!isdigit((unsigned char)*r->p))
		return problem(r, "expected a number (digits)");
	errno = 0;
	*out = strtoll(r->p, &end, 10);
	if (errno || *end == '.' || *end == 'e' || *end == 'E' || *out < lo || *out > hi)
		return problem(r, "a number out of range");
	r->p = end;
	return true;
}

/* true, false or null, if it comes next */
static bool read_word(struct reader *r, const char *word)
{
	while (isspace((unsigned char)*r->p))
		r->p++;
	if (strncmp(r->p, word, strlen(word)))
		return false;
	r->p += strlen(word);
	return true;
}

static bool read_bool(struct reader *r, bool *out)
{
	if (read_word(r, "true"))
		*out = true;
	else if (read_word(r, "false"))
		*out = false;
	else
		return problem(r, "expected true or false");
	return true;
}

typedef bool (*member_fn)(struct reader *r, const char *key, void *ctx);
typedef bool (*item_fn)(struct reader *r, unsigned i, void *ctx);

/* {"key": value, ...}: member() reads each value. */
static bool read_object(struct reader *r, member_fn member, void *ctx)
{
	char key[32];

	if (!expect(r, '{'))
		return false;
	if (next_is(r, '}'))
		return true;
	do {
		if (!read_string(r, key, sizeof(key)) || !expect(r, ':') || !member(r, key, ctx))
			return false;
	} while (next_is(r, ','));
	return expect(r, '}');
}

/* [value, ...]: item() reads each. */
static bool read_array(struct reader *r, item_fn item, void *ctx)
{
	unsigned i = 0;

	if (!expect(r, '['))
		return false;
	if (next_is(r, ']'))
		return true;
	do {
		if (!item(r, i++, ctx))
			return false;
	} while (next_is(r, ','));
	return expect(r, ']');
}

static bool unknown(struct reader *r, const char *key)
{
	char what[64];

	snprintf(what, sizeof(what), "unknown key \"%s\"", key);
	return problem(r, what);
}

static bool read_split(struct reader *r, int *out)
{
	char s[8];

	if (!read_string(r, s, sizeof(s)))
		return false;
	if (!strcmp(s, "on"))
		*out = ETHTOOL_TCP_DATA_SPLIT_ENABLED;
	else if (!strcmp(s, "off"))
		*out = ETHTOOL_TCP_DATA_SPLIT_DISABLED;
	else if (!strcmp(s, "auto"))
		*out = ETHTOOL_TCP_DATA_SPLIT_UNKNOWN;
	else if (!strcmp(s, "n/a"))
		*out = NIC_SPLIT_NONE;
	else
		return problem(r, "tcp-data-split must be on, off, auto or n/a");
	return true;
}

static bool rss_item(struct reader *r, unsigned i, void *ctx)
{
	long long v;

	if (i >= MODEL_MAX_RSS)
		return problem(r, "an RSS table longer than 4096 entries");
	if (!read_int(r, 0, 4095, &v))
		return false;
	m.rss[i] = (uint32_t)v;
	m.rss_size = i + 1;
	return true;
}

static bool rule_member(struct reader *r, const char *key, void *ctx)
{
	struct model_rule *rule = ctx;
	long long v;

	if (!strcmp(key, "location") && read_int(r, 0, 0x7fffffff, &v))
		rule->location = (uint32_t)v;
	else if (!strcmp(key, "dst_port") && read_int(r, 1, 65535, &v))
		rule->dst_port = (uint16_t)v;
	else if (!strcmp(key, "queue") && read_int(r, 0, 4095, &v))
		rule->queue = (uint32_t)v;
	else if (!strcmp(key, "tcp6"))
		return read_bool(r, &rule->v6);
	else
		return r->problem[0] ? false : unknown(r, key);
	return true;
}

static bool rule_item(struct reader *r, unsigned i, void *ctx)
{
	if (i >= MODEL_MAX_RULES)
		return problem(r, "more than 256 rules");
	m.nrules = i + 1;
	return read_object(r, rule_member, &m.rules[i]);
}

static bool fail_member(struct reader *r, const char *key, void *ctx)
{
	unsigned i = *(unsigned *)ctx;
	char name[24];

	if (!strcmp(key, "op"))
		return read_string(r, m.fails[i].op, sizeof(m.fails[i].op));
	if (!strcmp(key, "times"))
		return read_int(r, 1, 1000000, &m.fails[i].times);
	if (strcmp(key, "errno"))
		return unknown(r, key);
	if (!read_string(r, name, sizeof(name)))
		return false;
	m.fails[i].err = errno_number(name);
	return m.fails[i].err ? true : problem(r, "an errno name lgerror.c does not know");
}

static bool fail_item(struct reader *r, unsigned i, void *ctx)
{
	if (i >= MODEL_MAX_FAILS)
		return problem(r, "more than 16 failures");
	m.nfails = i + 1;
	m.fails[i].times = -1;
	if (!read_object(r, fail_member, &i))
		return false;
	return m.fails[i].op[0] && m.fails[i].err ? true : problem(r, "a failure needs \"op\" and \"errno\"");
}

static bool model_member(struct reader *r, const char *key, void *ctx)
{
	long long v;

	if (!strcmp(key, "ifname"))
		return read_string(r, m.ifname, sizeof(m.ifname));
	if (!strcmp(key, "driver"))
		return read_string(r, m.driver, sizeof(m.driver));
	if (!strcmp(key, "tcp_data_split"))
		return read_split(r, &m.split);
	if (!strcmp(key, "auto_shows"))
		return read_split(r, &m.auto_shows);
	if (!strcmp(key, "ntuple"))
		return read_bool(r, &m.ntuple);
	if (!strcmp(key, "ntuple_fixed"))
		return read_bool(r, &m.ntuple_fixed);
	if (!strcmp(key, "rss"))
		return read_array(r, rss_item, NULL);
	if (!strcmp(key, "rules"))
		return read_array(r, rule_item, NULL);
	if (!strcmp(key, "fail"))
		return read_array(r, fail_item, NULL);
	if (!strcmp(key, "hds_thresh") && read_word(r, "null")) {
		m.hds = -1;
		return true;
	}
	if (!strcmp(key, "ifindex") && read_int(r, 1, 0x7fffffff, &v))
		m.ifindex = (unsigned)v;
	else if (!strcmp(key, "rx_queues") && read_int(r, 1, 4096, &v))
		m.rx_queues = (unsigned)v;
	else if (!strcmp(key, "hds_thresh") && read_int(r, 0, 0xffffffff, &v))
		m.hds = v;
	else if (!strcmp(key, "rule_table") && read_int(r, 1, 65536, &v))
		m.rule_table = (uint32_t)v;
	else
		return r->problem[0] ? false : unknown(r, key);
	return true;
}

/* What the file cannot describe consistently: "" or the first problem. */
static void check_model(struct reader *r)
{
	if (r->problem[0])
		return;
	if (!m.ifname[0] || !m.rx_queues) {
		snprintf(r->problem, sizeof(r->problem), "\"ifname\" and \"rx_queues\" are required");
		return;
	}
	if (m.auto_shows != ETHTOOL_TCP_DATA_SPLIT_ENABLED && m.auto_shows != ETHTOOL_TCP_DATA_SPLIT_DISABLED) {
		snprintf(r->problem, sizeof(r->problem), "\"auto_shows\" must be on or off");
		return;
	}
	for (uint32_t i = 0; i < m.rss_size; i++) {
		if (m.rss[i] >= m.rx_queues) {
			snprintf(r->problem, sizeof(r->problem), "RSS entry %u names queue %u of %u", i, m.rss[i], m.rx_queues);
			return;
		}
	}
	for (unsigned i = 0; i < m.nrules; i++) {
		if (m.rules[i].location >= m.rule_table || !m.rules[i].dst_port || m.rules[i].queue >= m.rx_queues) {
			snprintf(r->problem, sizeof(r->problem), "rule %u needs a location below \"rule_table\", a "
				 "\"dst_port\" and one of the \"rx_queues\"", i);
			return;
		}
	}
}

int nic_model_load(const char *path, struct lg_error *err)
{
	static char text[1 << 20];
	struct reader r = { .p = text, .start = text };
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f) {
		lg_error_set(err, "fopen", errno, "--nic-model %s", path);
		return -1;
	}
	n = fread(text, 1, sizeof(text) - 1, f);
	if (ferror(f)) {
		lg_error_set(err, "read", errno ? errno : EIO, "--nic-model %s", path);
		fclose(f);
		return -1;
	}
	fclose(f);
	text[n] = 0;
	memset(&m, 0, sizeof(m));
	m.ifindex = 2;
	snprintf(m.driver, sizeof(m.driver), "model");
	m.split = ETHTOOL_TCP_DATA_SPLIT_ENABLED;
	m.auto_shows = ETHTOOL_TCP_DATA_SPLIT_ENABLED;
	m.rule_table = 1024;
	if (n == sizeof(text) - 1)
		problem(&r, "a file larger than 1 MiB");
	else if (read_object(&r, model_member, NULL)) {
		while (isspace((unsigned char)*r.p))
			r.p++;
		if (*r.p)
			problem(&r, "text after the object");
	}
	check_model(&r);
	if (r.problem[0]) {
		lg_error_set(err, NULL, 0, "--nic-model %s: not a NIC model: %s (loadgen/nic_model.h describes the file)",
			     path, r.problem);
		return -1;
	}
	if (!m.rss_size) {              /* the driver's default spread */
		m.rss_size = MODEL_DEFAULT_RSS;
		for (uint32_t i = 0; i < m.rss_size; i++)
			m.rss[i] = i % m.rx_queues;
	}
	m.active = true;
	return 0;
}

bool nic_model_active(void)
{
	return m.active;
}

/* ---- the operations -------------------------------------------------------------------------- */

/* A "fail" entry for op: -errno (and one call fewer left to fail), else 0. */
static int failing(const char *op)
{
	for (unsigned i = 0; i < m.nfails; i++) {
		if (strcmp(m.fails[i].op, op) || !m.fails[i].times)
			continue;
		if (m.fails[i].times > 0)
			m.fails[i].times--;
		return -m.fails[i].err;
	}
	return 0;
}

int nic_model_ifindex(const char *ifname, unsigned *ifindex)
{
	int ret = failing("if_nametoindex");

	if (ret)
		return ret;
	if (strcmp(ifname, m.ifname))
		return -ENODEV;
	*ifindex = m.ifindex;
	return 0;
}

/* ETHTOOL_SFLAGS: the model has ntuple only; a driver with it fixed refuses a change. */
static int set_flags(struct ethtool_value *v)
{
	bool on = v->data & ETH_FLAG_NTUPLE;

	if (v->data & ~(uint32_t)ETH_FLAG_NTUPLE)
		return -EINVAL;
	if (on != m.ntuple && m.ntuple_fixed)
		return -EOPNOTSUPP;
	m.ntuple = on;
	return 0;
}

/* ETHTOOL_GRXFHINDIR: size 0 asks for the size; any other size must be the table's. */
static int get_indir(struct ethtool_rxfh_indir *t)
{
	if (t->size && t->size != m.rss_size)
		return -EINVAL;
	if (t->size)
		memcpy(t->ring_index, m.rss, m.rss_size * sizeof(uint32_t));
	t->size = m.rss_size;
	return 0;
}

/* ETHTOOL_SRXFHINDIR: size 0 resets the default spread; else a whole table of existing queues. */
static int set_indir(const struct ethtool_rxfh_indir *t)
{
	if (!t->size) {
		for (uint32_t i = 0; i < m.rss_size; i++)
			m.rss[i] = i % m.rx_queues;
		return 0;
	}
	if (t->size != m.rss_size)
		return -EINVAL;
	for (uint32_t i = 0; i < t->size; i++)
		if (t->ring_index[i] >= m.rx_queues)
			return -EINVAL;
	memcpy(m.rss, t->ring_index, t->size * sizeof(uint32_t));
	return 0;
}

static struct model_rule *find_rule(uint32_t location)
{
	for (unsigned i = 0; i < m.nrules; i++)
		if (m.rules[i].location == location)
			return &m.rules[i];
	return NULL;
}

static int list_rules(struct ethtool_rxnfc *all)
{
	if (all->rule_cnt < m.nrules)
		return -EMSGSIZE;
	for (unsigned i = 0; i < m.nrules; i++)
		all->rule_locs[i] = m.rules[i].location;
	all->rule_cnt = m.nrules;
	all->data = m.rule_table;
	return 0;
}

static int get_rule(struct ethtool_rxnfc *rule)
{
	const struct model_rule *r = find_rule(rule->fs.location);

	if (!r)
		return -ENOENT;
	memset(&rule->fs, 0, sizeof(rule->fs));
	rule->fs.location = r->location;
	rule->fs.flow_type = r->v6 ? TCP_V6_FLOW : TCP_V4_FLOW;
	if (r->v6) {
		rule->fs.h_u.tcp_ip6_spec.pdst = htons(r->dst_port);
		rule->fs.m_u.tcp_ip6_spec.pdst = 0xffff;
	} else {
		rule->fs.h_u.tcp_ip4_spec.pdst = htons(r->dst_port);
		rule->fs.m_u.tcp_ip4_spec.pdst = 0xffff;
	}
	rule->fs.ring_cookie = r->queue;
	return 0;
}

/* ETHTOOL_SRXCLSRLINS: TCP flows to one port, to one queue, at a free location; ntuple must be on. */
static int add_rule(struct ethtool_rxnfc *rule)
{
	const struct ethtool_rx_flow_spec *fs = &rule->fs;
	bool v6 = fs->flow_type == TCP_V6_FLOW;
	uint16_t port = ntohs(v6 ? fs->h_u.tcp_ip6_spec.pdst : fs->h_u.tcp_ip4_spec.pdst);

	if (!m.ntuple)
		return -EOPNOTSUPP;
	if ((fs->flow_type != TCP_V4_FLOW && !v6) || !port || fs->ring_cookie >= m.rx_queues ||
	    fs->location >= m.rule_table)
		return -EINVAL;
	if (find_rule(fs->location))
		return -EBUSY;
	if (m.nrules == MODEL_MAX_RULES)
		return -ENOSPC;
	m.rules[m.nrules++] = (struct model_rule){ .location = fs->location, .dst_port = port,
						   .queue = (uint32_t)fs->ring_cookie, .v6 = v6 };
	return 0;
}

static int del_rule(const struct ethtool_rxnfc *rule)
{
	struct model_rule *r = find_rule(rule->fs.location);

	if (!r)
		return -ENOENT;
	*r = m.rules[--m.nrules];
	return 0;
}

int nic_model_ethtool(const char *op, const char *ifname, void *cmd)
{
	struct ethtool_rxnfc *nfc = cmd;
	uint32_t c;
	int ret = failing(op);

	if (ret)
		return ret;
	if (strcmp(ifname, m.ifname))
		return -ENODEV;
	memcpy(&c, cmd, sizeof(c));
	switch (c) {
	case ETHTOOL_GDRVINFO:
		snprintf(((struct ethtool_drvinfo *)cmd)->driver, sizeof(((struct ethtool_drvinfo *)cmd)->driver), "%s",
			 m.driver);
		return 0;
	case ETHTOOL_GCHANNELS:
		((struct ethtool_channels *)cmd)->combined_count = m.rx_queues;
		((struct ethtool_channels *)cmd)->max_combined = m.rx_queues;
		return 0;
	case ETHTOOL_GFLAGS:
		((struct ethtool_value *)cmd)->data = m.ntuple ? ETH_FLAG_NTUPLE : 0;
		return 0;
	case ETHTOOL_SFLAGS:
		return set_flags(cmd);
	case ETHTOOL_GRXRINGS:
		nfc->data = m.rx_queues;
		return 0;
	case ETHTOOL_GRXFHINDIR:
		return get_indir(cmd);
	case ETHTOOL_SRXFHINDIR:
		return set_indir(cmd);
	case ETHTOOL_GRXCLSRLCNT:
		nfc->rule_cnt = m.nrules;
		nfc->data = m.rule_table;
		return 0;
	case ETHTOOL_GRXCLSRLALL:
		return list_rules(nfc);
	case ETHTOOL_GRXCLSRULE:
		return get_rule(nfc);
	case ETHTOOL_SRXCLSRLINS:
		return add_rule(nfc);
	case ETHTOOL_SRXCLSRLDEL:
		return del_rule(nfc);
	default:
		return -EOPNOTSUPP;
	}
}

int nic_model_rings_get(const char *ifname, int *split, int64_t *hds)
{
	int ret = failing("ETHTOOL_MSG_RINGS_GET");

	*split = NIC_SPLIT_NONE;
	*hds = -1;
	if (ret)
		return ret;
	if (strcmp(ifname, m.ifname))
		return -ENODEV;
	if (m.split == NIC_SPLIT_NONE)  /* no ring parameters at all, as veth */
		return -EOPNOTSUPP;
	*split = m.split == ETHTOOL_TCP_DATA_SPLIT_UNKNOWN ? m.auto_shows : m.split;
	*hds = m.hds;
	return 0;
}

/* As the kernel: the setting (auto included) is compared, and a change is notified. */
int nic_model_rings_set(const char *ifname, int split, int64_t hds, int *notified)
{
	int ret = failing("ETHTOOL_MSG_RINGS_SET");

	*notified = 0;
	if (ret)
		return ret;
	if (strcmp(ifname, m.ifname))
		return -ENODEV;
	if (m.split == NIC_SPLIT_NONE || (hds >= 0 && m.hds < 0))
		return -EOPNOTSUPP;
	if (split >= 0 && split != m.split) {
		m.split = split;
		*notified = 1;
	}
	if (hds >= 0 && hds != m.hds) {
		m.hds = hds;
		*notified = 1;
	}
	return 0;
}
