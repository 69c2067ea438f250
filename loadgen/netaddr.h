/* netaddr.h - ADDR:PORT parsing, listening, connecting, ports. */
#ifndef LOADGEN_NETADDR_H
#define LOADGEN_NETADDR_H

#include <stdint.h>
#include <sys/socket.h>

#include "lgerror.h"

/* "10.0.0.1:5201", "[fd00::1]:5201", "[fe80::1%eth0]:5201" → address (numeric only, no name lookup). Returns 0, or -1 with err set. */
int addr_parse(const char *spec, struct sockaddr_storage *ss, socklen_t *len, struct lg_error *err);
/* The port of an address, and the address with its port + k. */
unsigned addr_port(const struct sockaddr_storage *ss);
void addr_add_port(struct sockaddr_storage *ss, int k);
int listen_on(const struct sockaddr_storage *ss, socklen_t len, int backlog, struct lg_error *err);
int connect_to(const struct sockaddr_storage *ss, socklen_t len, struct lg_error *err);
/* Local (peer = 0) or remote (peer = 1) port of a socket, 0 on failure. */
uint16_t sock_port(int fd, int peer);
/* "ADDR" text of a socket's local address. */
void sock_addr_text(int fd, char *out, size_t len);

#endif
