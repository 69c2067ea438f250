/* netaddr.c - addresses and TCP sockets. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
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
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	char *scope;

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
	/* numeric addresses only: no name service (the binary is static; glibc's NSS would need
	 * the shared libraries of the host it runs on) */
	memset(ss, 0, sizeof(*ss));
	scope = strchr(host, '%');
	if (scope)
		*scope++ = 0;
	if (!scope && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)atoi(port));
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)atoi(port));
		if (scope && !(sin6->sin6_scope_id = if_nametoindex(scope))) {
			lg_error_set(err, NULL, 0, "'%s': no interface %s", spec, scope);
			return -1;
		}
		*len = sizeof(*sin6);
		return 0;
	}
	lg_error_set(err, NULL, 0, "'%s' is not a numeric IPv4 or IPv6 address (names are not resolved)", host);
	return -1;
bad:
	lg_error_set(err, NULL, 0, "'%s' is not ADDR:PORT (e.g. 10.0.0.1:5201 or [fd00::1]:5201)", spec);
	return -1;
}

unsigned addr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

void addr_add_port(struct sockaddr_storage *ss, int k)
{
	uint16_t port = (uint16_t)(addr_port(ss) + (unsigned)k);

	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons(port);
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
