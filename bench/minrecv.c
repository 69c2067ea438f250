/* minrecv.c - the reference receiver for bench/loadgen.py: the least a liburing receiver can do.
 *
 * usage: minrecv BUF_SIZE
 * Listens on 127.0.0.1 (ephemeral port, printed as "port N"), accepts one connection and receives
 * with one single-shot IORING_OP_RECV at a time into one buffer, never reading the payload,
 * until the peer closes. Prints {"bytes": B, "seconds": S, "cpu_ns": C, "nvcsw": V} (first byte
 * to EOF; CPU = user + system of the whole process; V = its voluntary context switches, i.e. how
 * often it slept and had to be woken by the sender's side of loopback).
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
	int lfd, fd, ret;

	if (argc != 2 || (bufsize = strtoul(argv[1], NULL, 0)) == 0) {
		fprintf(stderr, "usage: minrecv BUF_SIZE\n");
		return 2;
	}
	buf = malloc(bufsize);
	if (!buf) {
		fprintf(stderr, "minrecv: malloc: %s\n", strerror(errno));
		return 1;
	}
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len) < 0) {
		fprintf(stderr, "minrecv: listen: %s\n", strerror(errno));
		return 1;
	}
	printf("port %d\n", ntohs(sa.sin_port));
	fflush(stdout);
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
