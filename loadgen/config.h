/* config.h - one run's parameters, parsed from the command line by options.c. */
#ifndef LOADGEN_CONFIG_H
#define LOADGEN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vocab.h"

#define LG_MAX_CPUS 256
#define LG_MAX_RINGS 64
#define LG_MAX_WORKERS 64
/* Connections: the receiver spreads them round-robin over its rings; the sender over at most
 * LG_MAX_TX_THREADS threads (one per connection up to that many, then connection i on thread
 * i mod LG_MAX_TX_THREADS, each thread polling its sockets). */
#define LG_MAX_CONNS 16384
#define LG_MAX_TX_THREADS 64
/* Per ring: SQ entries (arming submits early when the SQ is full) and CQ entries (a fuller CQ
 * ends multishot receives, which are re-armed; the kernel keeps overflowed CQEs until flushed). */
#define LG_MAX_SQ_ENTRIES 4096
#define LG_MAX_CQ_ENTRIES 32768

#define LG_TOPOLOGY_ENUM(e, name, several_rings) e,
enum lg_topology { LG_TOPOLOGIES(LG_TOPOLOGY_ENUM) };
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
	int conns_per_ring;              /* most connections one ring receives: ceil(connections / rings) */
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
	bool reuse_fifo;                /* copy: --reuse fifo (buffers go back to the kernel in turn) */
	bool reuse_set;                 /* --reuse was given */
	bool json;
	int64_t corrupt_offset;         /* test only: sender flips the byte at this offset of conn 0 */
	unsigned ring_entries;          /* SQ entries per ring */
	unsigned wait_batch;            /* completions a ring waits for before waking (>= 1) */
	unsigned wait_min_us;           /* ... for at most this long, then for any one */
	const char *ifname;             /* --backend zcrx: NIC (rx_zcrx.c) */
	int queue;                      /* --backend zcrx: RX queue, -1 = unset */
	int queues[LG_MAX_RINGS];       /* --queues: ifq-per-ring, ring i on queues[i] and port PORT+i */
	int nqueues;                    /* 0 = unset (every ring on --queue) */
	bool preflight;                 /* --preflight: check, set up and register, release, exit */
	int ports;                      /* --ports N (sender): connection i to PORT + i mod N; 1 = one port */
	bool setup_nic;                 /* --backend zcrx: apply and restore NIC settings */
	const char *nic_transcript;     /* --nic-transcript FILE: every NIC operation, one JSON line each */
	const char *nic_model;          /* --nic-model FILE: a modelled NIC answers (--preflight only) */
	bool kernel_features;           /* --kernel-features: print the zcrx kernel facts and exit */
	bool share_v4;                  /* --share-uapi v4: shared-ifq rings join ring 0's ifq with the
	                                 * never-merged v4 series' IORING_ZCRX_IFQ_REG_SHARE */
};

/* Fill cfg from argv. Returns 0, 1 when --help was printed, or -1 after printing one usage line. */
int parse_options(int argc, char **argv, struct lg_config *cfg);

#endif
