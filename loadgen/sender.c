/* sender.c - sender threads: send() the per-connection pattern, paced if --rate is set. A thread
 * with one connection blocks in send(); one with several poll()s them and gives each ready one a
 * non-blocking send() per round. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
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

/* What to send next on c: the pattern, or for connection 0 under --test-corrupt-offset a copy
 * with that byte flipped. */
static const uint8_t *next_bytes(const struct lg_config *cfg, const struct tx_conn *c, size_t n,
				 uint8_t **scratch)
{
	const uint8_t *p = pattern_at(c->phase, c->off);

	if (c->index != 0 || cfg->corrupt_offset < 0 || (uint64_t)cfg->corrupt_offset < c->off ||
	    (uint64_t)cfg->corrupt_offset >= c->off + n)
		return p;
	if (!*scratch)
		*scratch = malloc(cfg->send_size);
	if (!*scratch)
		return p;
	memcpy(*scratch, p, n);
	(*scratch)[cfg->corrupt_offset - c->off] ^= 0x5a;
	return *scratch;
}

/* One send() on c (flags: 0 blocks up to SO_SNDTIMEO, MSG_DONTWAIT not at all). Returns -1 after
 * recording a failure, else 0 (also when nothing could be sent). */
static int send_once(struct tx_thread *t, struct tx_conn *c, int flags, uint8_t **scratch)
{
	const struct lg_config *cfg = t->snd->cfg;
	size_t n = cfg->send_size;
	ssize_t r = send(c->fd, next_bytes(cfg, c, n, scratch), n, MSG_NOSIGNAL | flags);
	struct lg_error e;

	if (r < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return 0;
		lg_error_set(&e, "send", errno, "connection %d", c->index);
		tx_fail(t->snd, &e);
		return -1;
	}
	c->off += (uint64_t)r;
	t->st.cur.bytes += (uint64_t)r;
	t->st.cur.completions++;
	return 0;
}

/* TCP_INFO of every connection of t (at each interval boundary, by t itself): retransmitted
 * segments summed (cumulative; the interval record gives the delta), smoothed RTT mean and max.
 * A failed or short getsockopt() fails the sender. */
static int tcp_sample(struct thread_stats *st, void *arg)
{
	const size_t need = offsetof(struct tcp_info, tcpi_total_retrans) + sizeof(uint32_t);
	struct tx_thread *t = arg;
	uint64_t retrans = 0, rtt_sum = 0;
	uint32_t rtt_max = 0;
	struct lg_error e;

	for (int k = 0; k < t->nconns; k++) {
		struct tcp_info ti;
		socklen_t len = sizeof(ti);

		memset(&ti, 0, sizeof(ti));
		if (getsockopt(t->conns[k].fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 || len < need) {
			lg_error_set(&e, "getsockopt", len < need ? EPROTO : errno, "TCP_INFO connection %d",
				     t->conns[k].index);
			tx_fail(t->snd, &e);
			return -1;
		}
		retrans += ti.tcpi_total_retrans;
		rtt_sum += ti.tcpi_rtt;
		if (ti.tcpi_rtt > rtt_max)
			rtt_max = ti.tcpi_rtt;
	}
	st->cur.tcp_retrans = retrans;
	st->tcp_rtt_us = t->nconns ? (int64_t)(rtt_sum / (uint64_t)t->nconns) : -1;
	st->tcp_rtt_max_us = t->nconns ? (int64_t)rtt_max : -1;
	return 0;
}

/* Several connections: wait until some can take data, give each of those one send(). */
static int send_ready(struct tx_thread *t, struct pollfd *pfd, uint8_t **scratch)
{
	uint64_t ms = stats_ns_to_tick(&t->st) / 1000000 + 1;
	int ready = poll(pfd, (nfds_t)t->nconns, ms > 100 ? 100 : (int)ms);
	struct lg_error e;

	if (ready < 0) {
		if (errno == EINTR)
			return 0;
		lg_error_set(&e, "poll", errno, "sender %d", t->index);
		tx_fail(t->snd, &e);
		return -1;
	}
	for (int k = 0; k < t->nconns && ready > 0 && !stopping(t->snd); k++) {
		if (!pfd[k].revents)
			continue;
		ready--;
		pfd[k].revents = 0;
		if (send_once(t, &t->conns[k], MSG_DONTWAIT, scratch))
			return -1;
	}
	return 0;
}

static void *tx_main(void *arg)
{
	struct tx_thread *t = arg;
	struct sender *s = t->snd;
	const struct lg_config *cfg = s->cfg;
	/* --rate is spread evenly over connections: this thread's share */
	double bytes_per_ns = cfg->rate_gbit > 0 ? cfg->rate_gbit / 8.0 * t->nconns / cfg->connections : 0;
	struct pollfd *pfd = NULL;
	uint8_t *scratch = NULL;
	uint64_t start;
	struct lg_error e;
	char name[16];

	snprintf(name, sizeof(name), "tx%d", t->index);
	pthread_setname_np(pthread_self(), name);
	pin_self(cfg->tx_cpus, cfg->n_tx_cpus, t->index);
	pthread_mutex_lock(&s->lock);
	while (!s->go)
		pthread_cond_wait(&s->go_cv, &s->lock);
	pthread_mutex_unlock(&s->lock);
	t->st.tcp_sample = tcp_sample;
	t->st.tcp_arg = t;
	stats_begin(&t->st, name, "tx", -1);
	if (t->nconns > 1) {
		pfd = calloc((size_t)t->nconns, sizeof(*pfd));
		if (!pfd) {
			lg_error_set(&e, "calloc", ENOMEM, "sender %d poll set", t->index);
			tx_fail(s, &e);
		}
		for (int k = 0; pfd && k < t->nconns; k++)
			pfd[k] = (struct pollfd){ .fd = t->conns[k].fd, .events = POLLOUT };
	}
	start = now_ns();
	while (!stopping(s) && (t->nconns == 1 || pfd)) {
		if (t->nconns == 1 ? send_once(t, &t->conns[0], 0, &scratch) : send_ready(t, pfd, &scratch))
			break;
		if (bytes_per_ns > 0)
			pace_until(s, start + (uint64_t)((double)t->st.cur.bytes / bytes_per_ns));
		stats_tick(&t->st);
	}
	for (int k = 0; k < t->nconns; k++)
		shutdown(t->conns[k].fd, SHUT_WR);
	free(pfd);
	free(scratch);
	stats_end(&t->st);
	__atomic_fetch_sub(&s->running, 1, __ATOMIC_ACQ_REL);
	return NULL;
}

int sender_start(struct sender *s, const struct lg_config *cfg, const int *fds, int n, struct lg_error *err)
{
	struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
	int nthreads = n < LG_MAX_TX_THREADS ? n : LG_MAX_TX_THREADS, next = 0;

	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->go_cv, NULL);
	s->tx = calloc((size_t)nthreads, sizeof(*s->tx));
	s->conns = calloc((size_t)n, sizeof(*s->conns));
	if (!s->tx || !s->conns) {
		for (int i = 0; i < n; i++)
			close(fds[i]);
		lg_error_set(err, "calloc", ENOMEM, "sender threads");
		return -1;
	}
	s->n = nthreads;
	s->nconns = n;
	/* thread k sends on connections k, k + nthreads, ...: one contiguous slice of s->conns */
	for (int k = 0; k < nthreads; k++) {
		s->tx[k].conns = &s->conns[next];
		for (int i = k; i < n; i += nthreads) {
			struct tx_conn *c = &s->conns[next++];

			c->fd = fds[i];
			c->index = i;
			c->phase = pattern_phase(sock_port(fds[i], 0));
			s->tx[k].nconns++;
		}
	}
	for (int i = 0; i < n; i++) {
		/* a blocked send() wakes every 100 ms to notice a stop */
		if (setsockopt(fds[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
			lg_error_set(err, "setsockopt", errno, "SO_SNDTIMEO");
			return -1;
		}
	}
	for (int k = 0; k < nthreads; k++) {
		struct tx_thread *t = &s->tx[k];

		t->index = k;
		t->snd = s;
		if (pthread_create(&t->th, NULL, tx_main, t)) {
			lg_error_set(err, "pthread_create", EAGAIN, "sender %d", k);
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
	for (int i = 0; s->tx && i < s->n; i++)
		if (s->tx[i].started)
			pthread_join(s->tx[i].th, NULL);
	for (int i = 0; s->conns && i < s->nconns; i++)
		close(s->conns[i].fd);
}
