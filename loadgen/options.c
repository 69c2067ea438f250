/* options.c - command line → struct lg_config. Every bad flag: one line on stderr, exit 2. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>

#include "config.h"

static const char usage_text[] =
"usage: zcrx-loadgen [options]\n"
"\n"
"TCP receive load generator for io_uring receive topologies. By default one process runs the\n"
"senders (threads txN) and the receiver over loopback; --listen/--connect split them across\n"
"network namespaces or hosts.\n"
"\n"
"topology and backend:\n"
"  --topology T          " LG_TOPOLOGY_CHOICES " (default " LG_TOPOLOGY_SINGLE ")\n"
"                          single:       1 ring (thread rx0) receives and works\n"
"                          workers:      1 ring hands (buffer, length) to --workers threads\n"
"                                        (worker0..) over a queue; buffers go back via rx0\n"
"                                        (copy) or the workers write the RQEs (zcrx backends)\n"
"                          ifq-per-ring: N rings (rx0..), each with its own buffer pool\n"
"                          shared-ifq:   N rings sharing one buffer pool and one refill queue\n"
"  --rings N             receive rings (ifq-per-ring, shared-ifq; default 2)\n"
"  --workers N           worker threads (workers; default 2)\n"
"  --backend B           " LG_BACKEND_CHOICES " (default " LG_DEFAULT_BACKEND ")\n"
"                          copy: multishot IORING_OP_RECV into provided-buffer rings; the\n"
"                          kernel copies, nothing is zero-copy. With --topology shared-ifq the\n"
"                          copy backend EMULATES ifq sharing: one userspace buffer pool and one\n"
"                          mutex-protected refill queue shared by all rings, each ring refilling\n"
"                          its own provided-buffer ring from it (no zcrx ifq, no export/import);\n"
"                          every record then says emulated: [\"shared-ifq\"].\n"
"                          zcrx-nodev (Linux >= 7.1): RECV_ZC into a NODEV ifq; the kernel copies\n"
"                          into the area (emulated: [\"nic\"]), never zero-copy. zcrx: a real NIC.\n"
"  --ifname IF           --backend zcrx: the NIC\n"
"  --queue Q             --backend zcrx: its RX queue for zcrx\n"
"  --queues Q1,..,QN     --backend zcrx, ifq-per-ring: ring i registers queue Qi and listens on\n"
"                        PORT+i (--listen ADDR:PORT, PORT fixed); exactly one queue per ring\n"
"  --preflight           --listen: check (with --setup-nic: apply) the NIC settings and register\n"
"                        every ring's ifq, then release and restore everything and exit 0,\n"
"                        without listening; the first failure is the one error line\n"
"  --ports N             --connect ADDR:PORT: connection i goes to PORT + i mod N (default 1)\n"
"  --setup-nic           --backend zcrx: set tcp-data-split on, hds-thresh 0, RSS away from Q,\n"
"                        and with --listen ntuple on plus a flow rule steering the listening\n"
"                        port to Q; every setting is restored on exit\n"
"  --nic-transcript FILE --backend zcrx: write every operation on the NIC (ethtool ioctls, the\n"
"                        ethtool netlink ring parameters) to FILE, one JSON line each: op,\n"
"                        ifname, the values written and read, the result (docs/hardware.md)\n"
"  --nic-model FILE      --backend zcrx --preflight only: a modelled NIC described by FILE\n"
"                        (loadgen/nic_model.h) answers instead of the kernel, to test the order\n"
"                        of --setup-nic and its restore; nothing is registered or measured, and\n"
"                        every record and line says the NIC is modelled\n"
"\n"
"load:\n"
"  --connections C       TCP connections, 1..16384 (default: rings). Receiver: connection i\n"
"                        (accept order) goes to ring i mod --rings. Sender: one thread per\n"
"                        connection up to 64 (tx0..), beyond that 64 threads, connection i on\n"
"                        thread i mod 64. Needs about 2 open files per connection in loopback\n"
"                        (1 with --listen/--connect): the soft RLIMIT_NOFILE is raised up to the\n"
"                        hard one; above the hard one the run is refused (raise: ulimit -n)\n"
"  --duration S          seconds of sending (default 5); with --listen, a receive time limit\n"
"                        (default: until every connection closed)\n"
"  --interval S          seconds between interval records (default 1)\n"
"  --send-size B         bytes per send() (default 1M; suffixes K, M = KiB, MiB)\n"
"  --rate GBIT           total sender rate in Gbit/s, spread over connections (default unpaced)\n"
"  --buf-size B          receive buffer size (default 64K)\n"
"  --bufs N              buffers per pool (default 128; shared-ifq has one pool for all rings)\n"
"  --rx-cpus LIST        CPUs for rx and worker threads, round-robin (e.g. 0 or 0,1 or 0-3)\n"
"  --tx-cpus LIST        CPUs for sender threads, round-robin\n"
"  --work W              checksum (default: read every byte) | none\n"
"  --work-ns-per-kib N   extra busy cost per KiB received, in ns of thread CPU time (default 0)\n"
"  --wait-batch N        a ring sleeps until N completions are ready, or ...\n"
"  --wait-min-us U       ... U microseconds passed since it last woke and at least one is\n"
"                        (default 8 and 100; Linux >= 6.12, older kernels wait for one): a ring\n"
"                        busy for longer never idles. --wait-batch 1 wakes per completion.\n"
"                        U is a ceiling: while one sleep lets a connection queue a quarter of its\n"
"                        socket buffer (SO_RCVBUF), the ring halves its wait (down to 10 us)\n"
"  --verify, --no-verify check every byte against the per-connection pattern (default on);\n"
"                        use --no-verify for senders that are not zcrx-loadgen\n"
"  --bundle N            copy backend: one receive completion carries up to N buffers (1 = one\n"
"                        buffer each). A bundled receive (IORING_RECVSEND_BUNDLE, capped at\n"
"                        N x --buf-size bytes; a kernel with bundles but without that cap gets 1)\n"
"                        takes the socket lock and updates the TCP window once per bundle, not\n"
"                        once per buffer. Default: the buffers that fill an eighth of the\n"
"                        receiving CPU's L2 cache (256 KiB if unknown), 1..16: larger receives\n"
"                        copy from and into memory that no longer fits it. params.bundle is the\n"
"                        N the rings used, params.bundle_rule why\n"
"  --reuse R             copy backend: which free buffer the kernel receives into next.\n"
"                        lifo (default): the one given back last, still in the CPU's cache, so\n"
"                        the pool's size does not decide how much memory the copy sweeps; fifo:\n"
"                        every buffer of the pool in turn. shared-ifq is always fifo (its rings\n"
"                        refill from one queue, in order). params.reuse is the order the rings\n"
"                        used, params.reuse_rule why\n"
"\n"
"placement:\n"
"  --listen ADDR:PORT    receiver only: accept C connections from any TCP client\n"
"  --connect ADDR:PORT   sender only: connect C connections to a --listen receiver\n"
"                        ADDR is numeric: 10.0.0.1, [fd00::1], [fe80::1%eth0] (no name lookup)\n"
"\n"
"  --share-uapi U        how shared-ifq rings share ring 0's ifq: export (default: ZCRX_CTRL_EXPORT\n"
"                        + ZCRX_REG_IMPORT, merged in Linux 6.19) or v4 (the never-merged v4\n"
"                        ifq-sharing series: IORING_ZCRX_IFQ_REG_SHARE with ring 0's fd and ifq\n"
"                        id; --backend zcrx on a 6.15-6.18 kernel carrying that series)\n"
"\n"
"output:\n"
"  --json                one JSON object per line (docs/loadgen-output.md), else a table\n"
"  --kernel-features     print what the running kernel offers for zcrx (version, then\n"
"                        IORING_REGISTER_QUERY where it exists) as one JSON line, and exit\n"
"\n"
"testing:\n"
"  --test-corrupt-offset N  sender flips the byte at stream offset N of connection 0\n"
"\n"
"Exit status: 0 ok (also after SIGINT/SIGTERM, summary status \"interrupted\"), 1 runtime failure\n"
"or verification errors, 2 usage.\n";

enum {
	OPT_TOPOLOGY = 256, OPT_RINGS, OPT_WORKERS, OPT_BACKEND, OPT_CONNECTIONS, OPT_DURATION,
	OPT_INTERVAL, OPT_SEND_SIZE, OPT_RATE, OPT_BUF_SIZE, OPT_BUFS, OPT_RX_CPUS, OPT_TX_CPUS,
	OPT_WORK, OPT_WORK_NS, OPT_VERIFY, OPT_NO_VERIFY, OPT_LISTEN, OPT_CONNECT, OPT_JSON,
	OPT_CORRUPT, OPT_HELP, OPT_IFNAME, OPT_QUEUE, OPT_SETUP_NIC, OPT_WAIT_BATCH, OPT_WAIT_MIN_US,
	OPT_BUNDLE, OPT_REUSE, OPT_SHARE_UAPI, OPT_KERNEL_FEATURES, OPT_QUEUES, OPT_PREFLIGHT, OPT_PORTS,
	OPT_NIC_TRANSCRIPT, OPT_NIC_MODEL,
};

static const struct option longopts[] = {
	{ "topology", required_argument, NULL, OPT_TOPOLOGY },
	{ "rings", required_argument, NULL, OPT_RINGS },
	{ "workers", required_argument, NULL, OPT_WORKERS },
	{ "backend", required_argument, NULL, OPT_BACKEND },
	{ "connections", required_argument, NULL, OPT_CONNECTIONS },
	{ "duration", required_argument, NULL, OPT_DURATION },
	{ "interval", required_argument, NULL, OPT_INTERVAL },
	{ "send-size", required_argument, NULL, OPT_SEND_SIZE },
	{ "rate", required_argument, NULL, OPT_RATE },
	{ "buf-size", required_argument, NULL, OPT_BUF_SIZE },
	{ "bufs", required_argument, NULL, OPT_BUFS },
	{ "rx-cpus", required_argument, NULL, OPT_RX_CPUS },
	{ "tx-cpus", required_argument, NULL, OPT_TX_CPUS },
	{ "work", required_argument, NULL, OPT_WORK },
	{ "work-ns-per-kib", required_argument, NULL, OPT_WORK_NS },
	{ "verify", no_argument, NULL, OPT_VERIFY },
	{ "no-verify", no_argument, NULL, OPT_NO_VERIFY },
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "connect", required_argument, NULL, OPT_CONNECT },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "test-corrupt-offset", required_argument, NULL, OPT_CORRUPT },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "ifname", required_argument, NULL, OPT_IFNAME },
	{ "queue", required_argument, NULL, OPT_QUEUE },
	{ "setup-nic", no_argument, NULL, OPT_SETUP_NIC },
	{ "queues", required_argument, NULL, OPT_QUEUES },
	{ "preflight", no_argument, NULL, OPT_PREFLIGHT },
	{ "ports", required_argument, NULL, OPT_PORTS },
	{ "nic-transcript", required_argument, NULL, OPT_NIC_TRANSCRIPT },
	{ "nic-model", required_argument, NULL, OPT_NIC_MODEL },
	{ "wait-batch", required_argument, NULL, OPT_WAIT_BATCH },
	{ "wait-min-us", required_argument, NULL, OPT_WAIT_MIN_US },
	{ "bundle", required_argument, NULL, OPT_BUNDLE },
	{ "reuse", required_argument, NULL, OPT_REUSE },
	{ "share-uapi", required_argument, NULL, OPT_SHARE_UAPI },
	{ "kernel-features", no_argument, NULL, OPT_KERNEL_FEATURES },
	{ NULL, 0, NULL, 0 },
};

static int bad(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "zcrx-loadgen: ");
	fprintf(stderr, fmt, a, b);
	fprintf(stderr, " (see --help)\n");
	return -1;
}

/* Integer with optional K/M/G (binary) suffix, in [lo, hi]. */
static int parse_size(const char *opt, const char *s, unsigned long long lo, unsigned long long hi,
		      unsigned long long *out)
{
	char *end;
	unsigned long long v, mul = 1;

	if (!*s || *s == '-')
		return bad("%s: '%s' is not a size", opt, s);
	v = strtoull(s, &end, 10);
	if (end == s)
		return bad("%s: '%s' is not a size", opt, s);
	if (*end == 'K' || *end == 'k')
		mul = 1ULL << 10, end++;
	else if (*end == 'M' || *end == 'm')
		mul = 1ULL << 20, end++;
	else if (*end == 'G' || *end == 'g')
		mul = 1ULL << 30, end++;
	if (*end)
		return bad("%s: '%s' is not a size (digits, optional K/M/G)", opt, s);
	v *= mul;
	if (v < lo || v > hi) {
		char range[64];

		snprintf(range, sizeof(range), "%llu..%llu", lo, hi);
		return bad("%s: must be in %s", opt, range);
	}
	*out = v;
	return 0;
}

/* --queues "4,5,6": NIC RX queues 0..4095, at most LG_MAX_RINGS, no queue twice. */
static int parse_queues(const char *s, struct lg_config *cfg)
{
	char tok[16];
	unsigned long long v;

	cfg->nqueues = 0;
	while (*s) {
		size_t n = strcspn(s, ",");

		if (n == 0 || n >= sizeof(tok))
			return bad("--queues: '%s' is not a list of queue numbers (e.g. 4,5,6)%s", s, "");
		memcpy(tok, s, n);
		tok[n] = 0;
		if (parse_size("--queues", tok, 0, 4095, &v))
			return -1;
		for (int i = 0; i < cfg->nqueues; i++)
			if (cfg->queues[i] == (int)v)
				return bad("--queues: queue %s is given twice (one ring per queue)%s", tok, "");
		if (cfg->nqueues == LG_MAX_RINGS)
			return bad("--queues: more queues than the %s rings a receiver may have%s", "64", "");
		cfg->queues[cfg->nqueues++] = (int)v;
		s += n + (s[n] == ',');
	}
	if (!cfg->nqueues)
		return bad("--queues: empty list%s%s", "", "");
	return 0;
}

static int parse_double(const char *opt, const char *s, double lo, double *out)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || v != v)
		return bad("%s: '%s' is not a number", opt, s);
	if (v < lo || v > 1e9) {
		char lim[32];

		snprintf(lim, sizeof(lim), "%g", lo);
		return bad("%s: must be >= %s", opt, lim);
	}
	*out = v;
	return 0;
}

/* "0,2-3" → {0,2,3}. */
static int parse_cpus(const char *opt, const char *s, int *cpus, int *n)
{
	int ncpu = get_nprocs_conf();
	const char *p = s;

	*n = 0;
	while (*p) {
		char *end;
		long a = strtol(p, &end, 10), b;

		if (end == p || a < 0)
			return bad("%s: '%s' is not a CPU list (e.g. 0,2-3)", opt, s);
		b = a;
		p = end;
		if (*p == '-') {
			b = strtol(p + 1, &end, 10);
			if (end == p + 1 || b < a)
				return bad("%s: '%s' is not a CPU list (e.g. 0,2-3)", opt, s);
			p = end;
		}
		if (b >= ncpu) {
			char num[16];

			snprintf(num, sizeof(num), "%d", ncpu);
			return bad("%s: CPU out of range (this machine has %s)", opt, num);
		}
		for (long c = a; c <= b; c++) {
			if (*n >= LG_MAX_CPUS)
				return bad("%s: too many CPUs in '%s'", opt, s);
			cpus[(*n)++] = (int)c;
		}
		if (*p == ',')
			p++;
		else if (*p)
			return bad("%s: '%s' is not a CPU list (e.g. 0,2-3)", opt, s);
	}
	if (!*n)
		return bad("%s: empty CPU list%s", opt, "");
	return 0;
}

/* A topology name (vocab.h) → its enum value; -1 when unknown. */
static int parse_topology(const char *name, enum lg_topology *out)
{
#define LG_TOPOLOGY_MATCH(e, text, several_rings) \
	if (!strcmp(name, text)) { \
		*out = e; \
		return 0; \
	}
	LG_TOPOLOGIES(LG_TOPOLOGY_MATCH)
#undef LG_TOPOLOGY_MATCH
	return -1;
}

int parse_options(int argc, char **argv, struct lg_config *cfg)
{
	unsigned long long v;
	bool rings_set = false, workers_set = false, conns_set = false;
	int c;

	memset(cfg, 0, sizeof(*cfg));
	cfg->topology = TOPO_SINGLE;
	cfg->topology_name = LG_TOPOLOGY_SINGLE;
	cfg->backend_name = LG_DEFAULT_BACKEND;
	cfg->mode = MODE_LOOPBACK;
	cfg->rings = 1;
	cfg->duration_s = 5;
	cfg->interval_s = 1;
	cfg->send_size = 1 << 20;
	cfg->buf_size = 64 << 10;
	cfg->bufs = 128;
	cfg->work = WORK_CHECKSUM;
	cfg->verify = true;
	cfg->bundle = 0;                /* unset: the ring decides (rx_copy.c) */
	cfg->corrupt_offset = -1;
	cfg->queue = -1;
	cfg->ports = 1;
	cfg->wait_batch = 8;
	cfg->wait_min_us = 100;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		const char *a = optarg;

		switch (c) {
		case OPT_TOPOLOGY:
			if (parse_topology(a, &cfg->topology))
				return bad("--topology: unknown '%s' (" LG_TOPOLOGY_LIST ")%s", a, "");
			cfg->topology_name = a;
			break;
		case OPT_RINGS:
			if (parse_size("--rings", a, 1, LG_MAX_RINGS, &v))
				return -1;
			cfg->rings = (int)v;
			rings_set = true;
			break;
		case OPT_WORKERS:
			if (parse_size("--workers", a, 1, LG_MAX_WORKERS, &v))
				return -1;
			cfg->workers = (int)v;
			workers_set = true;
			break;
		case OPT_BACKEND:
			cfg->backend_name = a;
			break;
		case OPT_CONNECTIONS:
			if (parse_size("--connections", a, 1, LG_MAX_CONNS, &v))
				return -1;
			cfg->connections = (int)v;
			conns_set = true;
			break;
		case OPT_DURATION:
			if (parse_double("--duration", a, 0.001, &cfg->duration_s))
				return -1;
			cfg->duration_set = true;
			break;
		case OPT_INTERVAL:
			if (parse_double("--interval", a, 0.01, &cfg->interval_s))
				return -1;
			break;
		case OPT_SEND_SIZE:
			if (parse_size("--send-size", a, 1, 64ULL << 20, &v))
				return -1;
			cfg->send_size = v;
			break;
		case OPT_RATE:
			if (parse_double("--rate", a, 0, &cfg->rate_gbit))
				return -1;
			break;
		case OPT_BUF_SIZE:
			if (parse_size("--buf-size", a, 64, 16ULL << 20, &v))
				return -1;
			cfg->buf_size = (uint32_t)v;
			break;
		case OPT_WAIT_BATCH:
			if (parse_size("--wait-batch", a, 1, 4096, &v))
				return -1;
			cfg->wait_batch = (unsigned)v;
			break;
		case OPT_WAIT_MIN_US:
			if (parse_size("--wait-min-us", a, 1, 1000000, &v))
				return -1;
			cfg->wait_min_us = (unsigned)v;
			break;
		case OPT_BUFS:
			if (parse_size("--bufs", a, 1, 32768, &v))
				return -1;
			cfg->bufs = (uint32_t)v;
			break;
		case OPT_RX_CPUS:
			if (parse_cpus("--rx-cpus", a, cfg->rx_cpus, &cfg->n_rx_cpus))
				return -1;
			break;
		case OPT_TX_CPUS:
			if (parse_cpus("--tx-cpus", a, cfg->tx_cpus, &cfg->n_tx_cpus))
				return -1;
			break;
		case OPT_WORK:
			if (!strcmp(a, "checksum"))
				cfg->work = WORK_CHECKSUM;
			else if (!strcmp(a, "none"))
				cfg->work = WORK_NONE;
			else
				return bad("--work: unknown '%s' (checksum, none)%s", a, "");
			break;
		case OPT_WORK_NS:
			if (parse_size("--work-ns-per-kib", a, 0, 100000000, &v))
				return -1;
			cfg->work_ns_per_kib = (uint32_t)v;
			break;
		case OPT_VERIFY:
			cfg->verify = true;
			break;
		case OPT_NO_VERIFY:
			cfg->verify = false;
			break;
		case OPT_BUNDLE:
			if (parse_size("--bundle", a, 1, 4096, &v))
				return -1;
			cfg->bundle = (uint32_t)v;
			cfg->bundle_set = true;
			break;
		case OPT_REUSE:
			if (strcmp(a, "lifo") && strcmp(a, "fifo"))
				return bad("--reuse: unknown '%s' (lifo, fifo)%s", a, "");
			cfg->reuse_fifo = !strcmp(a, "fifo");
			cfg->reuse_set = true;
			break;
		case OPT_SHARE_UAPI:
			if (strcmp(a, "export") && strcmp(a, "v4"))
				return bad("--share-uapi: unknown '%s' (export, v4)%s", a, "");
			cfg->share_v4 = !strcmp(a, "v4");
			break;
		case OPT_KERNEL_FEATURES:
			cfg->kernel_features = true;
			break;
		case OPT_LISTEN:
		case OPT_CONNECT:
			if (cfg->mode != MODE_LOOPBACK)
				return bad("--listen and --connect exclude each other%s%s", "", "");
			cfg->mode = c == OPT_LISTEN ? MODE_LISTEN : MODE_CONNECT;
			cfg->addr = a;
			break;
		case OPT_JSON:
			cfg->json = true;
			break;
		case OPT_CORRUPT:
			if (parse_size("--test-corrupt-offset", a, 0, 1ULL << 62, &v))
				return -1;
			cfg->corrupt_offset = (int64_t)v;
			break;
		case OPT_IFNAME:
			cfg->ifname = a;
			break;
		case OPT_QUEUE:
			if (parse_size("--queue", a, 0, 4095, &v))
				return -1;
			cfg->queue = (int)v;
			break;
		case OPT_SETUP_NIC:
			cfg->setup_nic = true;
			break;
		case OPT_QUEUES:
			if (parse_queues(a, cfg))
				return -1;
			break;
		case OPT_PREFLIGHT:
			cfg->preflight = true;
			break;
		case OPT_PORTS:
			if (parse_size("--ports", a, 1, LG_MAX_RINGS, &v))
				return -1;
			cfg->ports = (int)v;
			break;
		case OPT_NIC_TRANSCRIPT:
		case OPT_NIC_MODEL:
			if (!*a)
				return bad("%s: empty file name%s", c == OPT_NIC_MODEL ? "--nic-model" : "--nic-transcript", "");
			*(c == OPT_NIC_MODEL ? &cfg->nic_model : &cfg->nic_transcript) = a;
			break;
		case 'h':
		case OPT_HELP:
			fputs(usage_text, stdout);
			return 1;
		case ':':
			return bad("option %s needs a value%s", argv[optind - 1], "");
		default:
			if (optopt && optopt < 256)
				return bad("unknown option -%s%s", (char[]){ (char)optopt, 0 }, "");
			if (optopt)
				return bad("option %s needs a value%s", argv[optind - 1], "");
			return bad("unknown option %s%s", argv[optind - 1], "");
		}
	}
	if (optind < argc)
		return bad("unexpected argument '%s'%s", argv[optind], "");

	switch (cfg->topology) {
	case TOPO_SINGLE:
		if (rings_set && cfg->rings != 1)
			return bad("--topology single has exactly 1 ring (use ifq-per-ring or shared-ifq for more)%s%s", "", "");
		if (workers_set)
			return bad("--workers needs --topology workers%s%s", "", "");
		cfg->rings = 1;
		break;
	case TOPO_WORKERS:
		if (rings_set && cfg->rings != 1)
			return bad("--topology workers has exactly 1 ring (set --workers instead)%s%s", "", "");
		cfg->rings = 1;
		if (!workers_set)
			cfg->workers = 2;
		break;
	case TOPO_IFQ_PER_RING:
	case TOPO_SHARED_IFQ:
		if (workers_set)
			return bad("--workers needs --topology workers%s%s", "", "");
		if (!rings_set)
			cfg->rings = 2;
		break;
	}
	if (!conns_set)
		cfg->connections = cfg->rings;
	if (cfg->connections < cfg->rings)
		return bad("--connections must be >= --rings (every ring needs a connection)%s%s", "", "");
	if (cfg->share_v4 && cfg->topology != TOPO_SHARED_IFQ)
		return bad("--share-uapi v4 goes with --topology shared-ifq (how its rings share one ifq)%s%s", "", "");
	if (cfg->share_v4 && strcmp(cfg->backend_name, LG_BACKEND_ZCRX))
		return bad("--share-uapi v4 needs --backend zcrx on a kernel carrying the v4 ifq-sharing series (never "
			   "merged; 6.15-6.18): NODEV kernels (>= 7.1) give its flag bit to ZCRX_REG_IMPORT, and %s "
			   "shares with --share-uapi export%s", strcmp(cfg->backend_name, LG_BACKEND_COPY) ?
			   LG_BACKEND_ZCRX_NODEV : "copy emulates the sharing: it", "");
	if ((cfg->nic_transcript || cfg->nic_model) && strcmp(cfg->backend_name, LG_BACKEND_ZCRX))
		return bad("%s goes with --backend " LG_BACKEND_ZCRX " (the NIC of --ifname)%s",
			   cfg->nic_model ? "--nic-model" : "--nic-transcript", "");
	if (cfg->nic_model && !cfg->preflight)
		return bad("--nic-model: a modelled NIC measures nothing, so it goes with --preflight only (the "
			   "order of --setup-nic and its restore)%s%s", "", "");
	if (cfg->preflight && cfg->mode != MODE_LISTEN)
		return bad("--preflight checks a receiver: it goes with --listen%s%s", "", "");
	if (cfg->ports > 1 && cfg->mode != MODE_CONNECT)
		return bad("--ports is a sender flag: it goes with --connect%s%s", "", "");
	if (cfg->mode == MODE_LISTEN && cfg->corrupt_offset >= 0)
		return bad("--test-corrupt-offset is a sender flag; it cannot go with --listen%s%s", "", "");
	if (cfg->mode == MODE_LISTEN && !cfg->duration_set)
		cfg->duration_s = 0;
	if (cfg->topology == TOPO_SHARED_IFQ && cfg->bufs < (uint32_t)cfg->rings)
		return bad("--bufs must be >= --rings for shared-ifq (one pool split between rings)%s%s", "", "");
	cfg->conns_per_ring = (cfg->connections + cfg->rings - 1) / cfg->rings;
	cfg->ring_entries = 64;
	while (cfg->ring_entries < (unsigned)cfg->conns_per_ring * 2 && cfg->ring_entries < LG_MAX_SQ_ENTRIES)
		cfg->ring_entries <<= 1;
	return 0;
}
