/* sender.h - sender threads txN writing each connection's pattern: one thread per connection up
 * to LG_MAX_TX_THREADS, beyond that connection i on thread i mod LG_MAX_TX_THREADS. */
#ifndef LOADGEN_SENDER_H
#define LOADGEN_SENDER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "lgerror.h"
#include "stats.h"

struct tx_conn {                 /* one connected socket */
	int fd;
	int index;              /* 0..C-1, connect order */
	uint32_t phase;
	uint64_t off;           /* bytes sent so far */
};

struct tx_thread {
	pthread_t th;
	bool started;
	int index;
	struct tx_conn *conns;  /* its connections: blocking send() with one, poll() over several */
	int nconns;
	struct thread_stats st;
	struct sender *snd;
};

struct sender {
	const struct lg_config *cfg;
	struct tx_thread *tx;
	int n;                  /* threads */
	struct tx_conn *conns;
	int nconns;
	int stop;
	int running;
	pthread_mutex_t lock;
	pthread_cond_t go_cv;
	bool go, failed;
	struct lg_error fail;
};

/* Threads for the n connected sockets fds (closed by sender_join); they wait for sender_go().
 * Sets err and returns -1 on failure (the caller still calls sender_join). */
int sender_start(struct sender *s, const struct lg_config *cfg, const int *fds, int n, struct lg_error *err);
void sender_go(struct sender *s);
void sender_stop(struct sender *s);     /* finish the current send, then shut the write side */
bool sender_done(struct sender *s);
void sender_join(struct sender *s);
bool sender_failed(struct sender *s, struct lg_error *out);

#endif
