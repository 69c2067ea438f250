/* sender.h - sender threads txN: one per connection, writing the connection's pattern. */
#ifndef LOADGEN_SENDER_H
#define LOADGEN_SENDER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "lgerror.h"
#include "stats.h"

struct tx_thread {
	pthread_t th;
	bool started;
	int index;
	int fd;
	uint32_t phase;
	struct thread_stats st;
	struct sender *snd;
};

struct sender {
	const struct lg_config *cfg;
	struct tx_thread *tx;
	int n;
	int stop;
	int running;
	pthread_mutex_t lock;
	pthread_cond_t go_cv;
	bool go, failed;
	struct lg_error fail;
};

/* Threads for the n connected sockets fds (closed by sender_join); they wait for sender_go(). */
int sender_start(struct sender *s, const struct lg_config *cfg, const int *fds, int n, struct lg_error *err);
void sender_go(struct sender *s);
void sender_stop(struct sender *s);     /* finish the current send, then shut the write side */
bool sender_done(struct sender *s);
void sender_join(struct sender *s);
bool sender_failed(struct sender *s, struct lg_error *out);

#endif
