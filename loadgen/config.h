/* config.h - one run's parameters, parsed from the command line by options.c. */
#ifndef LOADGEN_CONFIG_H
#define LOADGEN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LG_MAX_CPUS 256
#define LG_MAX_RINGS 64
#define LG_MAX_WORKERS 64
#define LG_MAX_CONNS 1024

enum lg_topology { TOPO_SINGLE, TOPO_WORKERS, TOPO_IFQ_PER_RING, TOPO_SHARED_IFQ };
enum lg_mode { MODE_LOOPBACK, MODE_LISTEN, MODE_CONNECT };
enum lg_work { WORK_NONE, WORK_CHECKSUM };

struct lg_config {
	enum lg_topology topology;
	const char *topology_name;
	const char *backend_name;
	enum lg_mode mode;
	const char *addr;               /* --listen / --connect argument */
	int rings;                      /* receive rings */
	int workers;                    /* worker threads (workers topology) */
	int connections;
	double duration_s;
	bool duration_set;
	double interval_s;
	size_t send_size;
	double rate_gbit;               /* 0 = unpaced */
	uint32_t buf_size;
	uint32_t bufs;                  /* buffers per pool (one pool per ring, one shared for shared-ifq) */
	int rx_cpus[LG_MAX_CPUS], n_rx_cpus;
	int tx_cpus[LG_MAX_CPUS], n_tx_cpus;
	enum lg_work work;
	uint32_t work_ns_per_kib;
	bool verify;
	uint32_t bundle;                /* copy: at most this many buffers per receive completion (1: unbundled) */
	bool bundle_set;                /* --bundle was given */
	bool json;
	int64_t corrupt_offset;         /* test only: sender flips the byte at this offset of conn 0 */
	unsigned ring_entries;          /* SQ entries per ring */
	unsigned wait_batch;            /* completions a ring waits for before waking (>= 1) */
	unsigned wait_min_us;           /* ... for at most this long, then for any one */
	const char *ifname;             /* --backend zcrx: NIC (rx_zcrx.c) */
	int queue;                      /* --backend zcrx: RX queue, -1 = unset */
	bool setup_nic;                 /* --backend zcrx: apply and restore NIC settings */
};

/* Fill cfg from argv. Returns 0, 1 when --help was printed, or -1 after printing one usage line. */
int parse_options(int argc, char **argv, struct lg_config *cfg);

#endif
