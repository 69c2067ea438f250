/* receiver.h - the receive topologies: ring threads rxN, worker threads workerN. */
#ifndef LOADGEN_RECEIVER_H
#define LOADGEN_RECEIVER_H

#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "stats.h"

struct conn {                   /* one accepted TCP connection */
	int fd;
	int index;              /* 0..C-1, accept order */
	uint16_t client_port;   /* the sender's port: keys the pattern */
	uint32_t phase;
	uint64_t offset;        /* bytes received so far = stream offset of the next byte */
	uint64_t offset_at_wake;        /* offset when the ring last woke */
	uint32_t rcvbuf;        /* SO_RCVBUF as last read (autotuned by TCP) */
	bool eof, need_arm, starved;
	uint64_t starved_ns;
};

struct handoff {                /* workers: rx -> workers (work) and workers -> rx (ret) */
	pthread_mutex_t lock;
	pthread_cond_t work_cv, ret_cv;
	struct rx_buf *work, *ret;
	uint32_t mask;
	uint32_t whead, wtail, rhead, rtail;
	bool closing;
	int live_workers;
};

struct receiver;

struct ring_thread {
	pthread_t th;
	bool started;
	int index;
	struct rx_ring r;
	bool ring_ok;
	unsigned wait_batch;    /* completions to wait for (1 when the kernel has no min timeout) */
	unsigned wait_min_us;   /* current minimum wait: <= --wait-min-us, shortened by adapt_min_wait() */
	unsigned wakes;         /* waits so far (paces the SO_RCVBUF reads) */
	uint64_t woke_ns;       /* when the ring last came back from waiting */
	struct thread_stats st;
	struct conn **conns;
	int nconns, open;
	int arm_start;          /* round-robin start for re-arming */
	uint32_t outstanding;   /* buffers handed to workers, not yet back */
	uint64_t puts_seen;
	sem_t inited;
	int init_ret;
	struct receiver *rcv;
};

struct worker_thread {
	pthread_t th;
	bool started;
	int index;
	struct thread_stats st;
	uint64_t sink;
	struct receiver *rcv;
};

struct receiver {
	const struct lg_config *cfg;
	const struct rx_backend *be;
	void *shared;
	bool shared_ok;
	struct conn *conns;
	int nconns;
	struct ring_thread *rings;
	struct worker_thread *workers;
	struct handoff ho;
	pthread_mutex_t go_lock;
	pthread_cond_t go_cv;
	bool go, aborted;
	int stop;               /* set: every thread ends now */
	int rings_running;
	pthread_mutex_t fail_lock;
	bool failed;
	struct lg_error fail;
	uint64_t verify_errors; /* bytes that differed from the pattern */
	int verify_reports;
	int64_t first_bad_conn;
	uint64_t first_bad_offset;
};

/* The backend's per-run state (shared_init), before any connection is accepted: a zcrx NIC is
 * checked and set up here, so its flow steering holds from a connection's first packet. Returns
 * -1 with err set (the caller still calls receiver_join). */
int receiver_init(struct receiver *rcv, const struct lg_config *cfg, const struct rx_backend *be,
		  struct lg_error *err);
/* Create rings (in order, each initialised before the next starts) and workers over the accepted
 * connections; threads then wait for receiver_go(). Returns -1 with err set (the caller still
 * calls receiver_join). */
int receiver_start(struct receiver *rcv, struct conn *conns, int nconns, struct lg_error *err);
void receiver_go(struct receiver *rcv);         /* after g_run.t0_ns is set */
bool receiver_done(struct receiver *rcv);       /* every ring thread has finished */
void receiver_stop(struct receiver *rcv);       /* end now, even before EOF */
void receiver_join(struct receiver *rcv);       /* join threads, release the backend */
/* First runtime failure of any receive thread, if any. */
bool receiver_failed(struct receiver *rcv, struct lg_error *out);

/* Pin the calling thread to cpus[k % ncpus] (the k-th thread of a role); no-op if ncpus is 0. */
void pin_self(const int *cpus, int ncpus, int k);

#endif
