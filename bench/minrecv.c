/* minrecv.c - the reference receiver for bench/loadgen.py: the least a liburing receiver can do.
 *
 * usage: minrecv BUF_SIZE [CONNECTIONS]
 * Listens on 127.0.0.1 (ephemeral port, printed as "port N"). Without CONNECTIONS: accepts one
 * connection and receives with one single-shot IORING_OP_RECV at a time into one buffer. With
 * CONNECTIONS: accepts that many and gives each one multishot IORING_OP_RECV from one
 * provided-buffer ring of 128 buffers (zcrx-loadgen's default pool), giving every buffer back at
 * once and arming again a receive that ended (no IORING_CQE_F_MORE). Never reads the payload;
 * runs until every peer closed. Prints {"bytes": B, "seconds": S, "cpu_ns": C, "nvcsw": V}
 * (first byte to the last EOF; CPU = user + system of the whole process; V = its voluntary
 * context switches, i.e. how often it slept and had to be woken by the sender's side of loopback).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long cpu_ns(long *nvcsw)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	*nvcsw = ru.ru_nvcsw;
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

#define NBUFS 128

/* Take an SQE, submitting what is queued when the SQ is full. */
static struct io_uring_sqe *get_sqe(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe) {
		io_uring_submit(ring);
		sqe = io_uring_get_sqe(ring);
	}
	return sqe;
}

static void arm(struct io_uring *ring, int fd, int index)
{
	struct io_uring_sqe *sqe = get_sqe(ring);

	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = 0;
	io_uring_sqe_set_data64(sqe, (unsigned long long)index);
}

/* CONNECTIONS mode: one multishot receive per socket over one provided-buffer ring. */
static int many(int lfd, size_t bufsize, int nconns)
{
	struct io_uring_params p = { .flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
					      IORING_SETUP_CQSIZE };
	unsigned cq = 2 * NBUFS + 4 * (unsigned)nconns;
	struct io_uring_buf_ring *br;
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	long long bytes = 0, cpu0 = 0, cpu1;
	long nvcsw0 = 0, nvcsw = 0;
	double t0 = 0, t1;
	int *fds = calloc((size_t)nconns, sizeof(*fds)), open = nconns, ret;
	char *bufs = malloc(NBUFS * bufsize);

	if (!fds || !bufs) {
		fprintf(stderr, "minrecv: malloc: %s\n", strerror(errno));
		return 1;
	}
	for (int i = 0; i < nconns; i++) {
		fds[i] = accept(lfd, NULL, NULL);
		if (fds[i] < 0) {
			fprintf(stderr, "minrecv: accept: %s\n", strerror(errno));
			return 1;
		}
	}
	unsigned sq = 64;

	while (sq < (unsigned)nconns && sq < 4096)
		sq <<= 1;
	p.cq_entries = cq > 32768 ? 32768 : cq < 2 * sq ? 2 * sq : cq;
	ret = io_uring_queue_init_params(sq, &ring, &p);
	br = ret < 0 ? NULL : io_uring_setup_buf_ring(&ring, NBUFS, 0, 0, &ret);
	if (!br) {
		fprintf(stderr, "minrecv: io_uring set-up: %s\n", strerror(-ret));
		return 1;
	}
	for (int b = 0; b < NBUFS; b++)
		io_uring_buf_ring_add(br, bufs + (size_t)b * bufsize, bufsize, b, io_uring_buf_ring_mask(NBUFS), b);
	io_uring_buf_ring_advance(br, NBUFS);
	for (int i = 0; i < nconns; i++)
		arm(&ring, fds[i], i);
	while (open > 0) {
		unsigned head, n = 0, back = 0;

		ret = io_uring_submit_and_wait(&ring, 1);
		if (ret < 0 && ret != -EINTR) {
			fprintf(stderr, "minrecv: io_uring_submit_and_wait: %s\n", strerror(-ret));
			return 1;
		}
		io_uring_for_each_cqe(&ring, head, cqe) {
			int i = (int)cqe->user_data;

			n++;
			if (cqe->flags & IORING_CQE_F_BUFFER) {
				int b = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

				io_uring_buf_ring_add(br, bufs + (size_t)b * bufsize, bufsize, b,
						      io_uring_buf_ring_mask(NBUFS), back++);
			}
			if (cqe->res > 0) {
				if (!bytes) {
					t0 = now_s();
					cpu0 = cpu_ns(&nvcsw0);
				}
				bytes += cqe->res;
			} else if (cqe->res == 0) {
				open--;
				continue;
			} else if (cqe->res != -ENOBUFS) {
				fprintf(stderr, "minrecv: recv: %s\n", strerror(-cqe->res));
				return 1;
			}
			if (!(cqe->flags & IORING_CQE_F_MORE))
				arm(&ring, fds[i], i);
		}
		io_uring_cq_advance(&ring, n);
		io_uring_buf_ring_advance(br, back);
	}
	t1 = now_s();
	cpu1 = cpu_ns(&nvcsw);
	printf("{\"bytes\": %lld, \"seconds\": %.6f, \"cpu_ns\": %lld, \"nvcsw\": %ld, \"connections\": %d}\n",
	       bytes, bytes ? t1 - t0 : 0.0, bytes ? cpu1 - cpu0 : 0LL, bytes ? nvcsw - nvcsw0 : 0L, nconns);
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	struct io_uring ring;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	long long bytes = 0, cpu0 = 0;
	long nvcsw0 = 0, nvcsw = 0;
	double t0 = 0, t1;
	long long cpu1;
	size_t bufsize;
	char *buf;
	int lfd, fd, ret, nconns = 0;
	struct rlimit rl;

	if (argc < 2 || argc > 3 || (bufsize = strtoul(argv[1], NULL, 0)) == 0 ||
	    (argc == 3 && (nconns = atoi(argv[2])) <= 0)) {
		fprintf(stderr, "usage: minrecv BUF_SIZE [CONNECTIONS]\n");
		return 2;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	buf = malloc(bufsize);
	if (!buf) {
		fprintf(stderr, "minrecv: malloc: %s\n", strerror(errno));
		return 1;
	}
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, nconns ? nconns : 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len) < 0) {
		fprintf(stderr, "minrecv: listen: %s\n", strerror(errno));
		return 1;
	}
	printf("port %d\n", ntohs(sa.sin_port));
	fflush(stdout);
	if (nconns)
		return many(lfd, bufsize, nconns);
	fd = accept(lfd, NULL, NULL);
	if (fd < 0) {
		fprintf(stderr, "minrecv: accept: %s\n", strerror(errno));
		return 1;
	}
	ret = io_uring_queue_init(8, &ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
	if (ret < 0) {
		fprintf(stderr, "minrecv: io_uring_queue_init: %s\n", strerror(-ret));
		return 1;
	}
	for (;;) {
		sqe = io_uring_get_sqe(&ring);
		io_uring_prep_recv(sqe, fd, buf, bufsize, 0);
		ret = io_uring_submit_and_wait(&ring, 1);
		if (ret < 0) {
			fprintf(stderr, "minrecv: io_uring_submit_and_wait: %s\n", strerror(-ret));
			return 1;
		}
		ret = io_uring_peek_cqe(&ring, &cqe);
		if (ret < 0) {
			fprintf(stderr, "minrecv: io_uring_peek_cqe: %s\n", strerror(-ret));
			return 1;
		}
		ret = cqe->res;
		io_uring_cqe_seen(&ring, cqe);
		if (ret < 0) {
			fprintf(stderr, "minrecv: recv: %s\n", strerror(-ret));
			return 1;
		}
		if (ret == 0)
			break;
		if (!bytes) {
			t0 = now_s();
			cpu0 = cpu_ns(&nvcsw0);
		}
		bytes += ret;
	}
	t1 = now_s();
	cpu1 = cpu_ns(&nvcsw);
	printf("{\"bytes\": %lld, \"seconds\": %.6f, \"cpu_ns\": %lld, \"nvcsw\": %ld}\n", bytes,
	       bytes ? t1 - t0 : 0.0, bytes ? cpu1 - cpu0 : 0LL, bytes ? nvcsw - nvcsw0 : 0L);
	io_uring_queue_exit(&ring);
	close(fd);
	close(lfd);
	return 0;
}
