/* sender.c - sender threads: send() the per-connection pattern, paced if --rate is set. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "netaddr.h"
#include "pattern.h"
#include "receiver.h"
#include "report.h"
#include "sender.h"

static bool stopping(struct sender *s)
{
	return __atomic_load_n(&s->stop, __ATOMIC_ACQUIRE);
}

static void tx_fail(struct sender *s, const struct lg_error *e)
{
	pthread_mutex_lock(&s->lock);
	if (!s->failed) {
		s->failed = true;
		s->fail = *e;
	}
	pthread_mutex_unlock(&s->lock);
}

bool sender_failed(struct sender *s, struct lg_error *out)
{
	bool f;

	pthread_mutex_lock(&s->lock);
	f = s->failed;
	if (f && out)
		*out = s->fail;
	pthread_mutex_unlock(&s->lock);
	return f;
}

/* Sleep until absolute CLOCK_MONOTONIC ns, in slices so a stop is noticed. */
static void pace_until(struct sender *s, uint64_t until)
{
	for (;;) {
		uint64_t now = now_ns();
		struct timespec ts;

		if (now >= until || stopping(s))
			return;
		if (until - now > 10000000ULL)
			now += 10000000ULL;
		else
			now = until;
		ts.tv_sec = (time_t)(now / 1000000000ULL);
		ts.tv_nsec = (long)(now % 1000000000ULL);
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	}
}

static void *tx_main(void *arg)
{
	struct tx_thread *t = arg;
	struct sender *s = t->snd;
	const struct lg_config *cfg = s->cfg;
	double bytes_per_ns = cfg->rate_gbit > 0 ? cfg->rate_gbit / 8.0 / cfg->connections : 0;
	uint8_t *scratch = NULL;
	uint64_t off = 0, start;
	struct lg_error e;
	char name[16];

	snprintf(name, sizeof(name), "tx%d", t->index);
	pthread_setname_np(pthread_self(), name);
	pin_self(cfg->tx_cpus, cfg->n_tx_cpus, t->index);
	pthread_mutex_lock(&s->lock);
	while (!s->go)
		pthread_cond_wait(&s->go_cv, &s->lock);
	pthread_mutex_unlock(&s->lock);
	stats_begin(&t->st, name, "tx", -1);
	start = now_ns();
	while (!stopping(s)) {
		size_t n = cfg->send_size;
		const uint8_t *p = pattern_at(t->phase, off);
		ssize_t r;

		if (t->index == 0 && cfg->corrupt_offset >= 0 && (uint64_t)cfg->corrupt_offset >= off &&
		    (uint64_t)cfg->corrupt_offset < off + n) {
			if (!scratch)
				scratch = malloc(cfg->send_size);
			if (scratch) {
				memcpy(scratch, p, n);
				scratch[cfg->corrupt_offset - off] ^= 0x5a;
				p = scratch;
			}
		}
		r = send(t->fd, p, n, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				goto tick;
			lg_error_set(&e, "send", errno, "connection %d", t->index);
			tx_fail(s, &e);
			break;
		}
		off += (uint64_t)r;
		t->st.cur.bytes += (uint64_t)r;
		t->st.cur.completions++;
		if (bytes_per_ns > 0)
			pace_until(s, start + (uint64_t)((double)off / bytes_per_ns));
tick:
		stats_tick(&t->st);
	}
	shutdown(t->fd, SHUT_WR);
	free(scratch);
	stats_end(&t->st);
	__atomic_fetch_sub(&s->running, 1, __ATOMIC_ACQ_REL);
	return NULL;
}

int sender_start(struct sender *s, const struct lg_config *cfg, const int *fds, int n, struct lg_error *err)
{
	struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };

	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->go_cv, NULL);
	s->tx = calloc((size_t)n, sizeof(*s->tx));
	if (!s->tx) {
		lg_error_set(err, "calloc", ENOMEM, "sender threads");
		return -1;
	}
	s->n = n;
	for (int i = 0; i < n; i++)
		s->tx[i].fd = fds[i];
	for (int i = 0; i < n; i++) {
		struct tx_thread *t = &s->tx[i];

		t->index = i;
		t->snd = s;
		t->phase = pattern_phase(sock_port(fds[i], 0));
		/* a blocked send() wakes every 100 ms to notice a stop */
		if (setsockopt(fds[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
			lg_error_set(err, "setsockopt", errno, "SO_SNDTIMEO");
			return -1;
		}
		if (pthread_create(&t->th, NULL, tx_main, t)) {
			lg_error_set(err, "pthread_create", EAGAIN, "sender %d", i);
			return -1;
		}
		t->started = true;
		__atomic_fetch_add(&s->running, 1, __ATOMIC_ACQ_REL);
	}
	return 0;
}

void sender_go(struct sender *s)
{
	pthread_mutex_lock(&s->lock);
	s->go = true;
	pthread_cond_broadcast(&s->go_cv);
	pthread_mutex_unlock(&s->lock);
}

void sender_stop(struct sender *s)
{
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
}

bool sender_done(struct sender *s)
{
	return __atomic_load_n(&s->running, __ATOMIC_ACQUIRE) == 0;
}

void sender_join(struct sender *s)
{
	if (!s->go) {
		sender_stop(s);
		sender_go(s);
	}
	for (int i = 0; s->tx && i < s->n; i++) {
		if (s->tx[i].started)
			pthread_join(s->tx[i].th, NULL);
		close(s->tx[i].fd);
	}
}
