/* netaddr.c - addresses and TCP sockets. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "netaddr.h"

int addr_parse(const char *spec, struct sockaddr_storage *ss, socklen_t *len, struct lg_error *err)
{
	char host[256];
	const char *colon, *port;
	struct addrinfo hints, *res;
	int ret;

	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');

		if (!close || close[1] != ':' || (size_t)(close - spec - 1) >= sizeof(host))
			goto bad;
		snprintf(host, sizeof(host), "%.*s", (int)(close - spec - 1), spec + 1);
		port = close + 2;
	} else {
		colon = strrchr(spec, ':');
		if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(host))
			goto bad;
		snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
		port = colon + 1;
	}
	if (!*port || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 || atoi(port) > 65535)
		goto bad;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	ret = getaddrinfo(host, port, &hints, &res);
	if (ret) {
		lg_error_set(err, NULL, 0, "cannot resolve '%s': %s", host, gai_strerror(ret));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
bad:
	lg_error_set(err, NULL, 0, "'%s' is not ADDR:PORT (e.g. 10.0.0.1:5201 or [fd00::1]:5201)", spec);
	return -1;
}

int listen_on(const struct sockaddr_storage *ss, socklen_t len, int backlog, struct lg_error *err)
{
	int one = 1;
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		lg_error_set(err, "socket", errno, "listening socket");
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
		lg_error_set(err, "setsockopt", errno, "SO_REUSEADDR");
		close(fd);
		return -1;
	}
	if (bind(fd, (const struct sockaddr *)ss, len) < 0) {
		lg_error_set(err, "bind", errno, "cannot listen there");
		close(fd);
		return -1;
	}
	if (listen(fd, backlog) < 0) {
		lg_error_set(err, "listen", errno, "listening socket");
		close(fd);
		return -1;
	}
	return fd;
}

int connect_to(const struct sockaddr_storage *ss, socklen_t len, struct lg_error *err)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		lg_error_set(err, "socket", errno, "sender socket");
		return -1;
	}
	if (connect(fd, (const struct sockaddr *)ss, len) < 0) {
		lg_error_set(err, "connect", errno, "cannot reach the receiver");
		close(fd);
		return -1;
	}
	return fd;
}

uint16_t sock_port(int fd, int peer)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int ret = peer ? getpeername(fd, (struct sockaddr *)&ss, &len) :
			 getsockname(fd, (struct sockaddr *)&ss, &len);

	if (ret < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

void sock_addr_text(int fd, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	snprintf(out, len, "?");
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)len);
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)len);
}
