/* lgerror.c - errno names and one-line failure messages. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lgerror.h"

static const struct { int err; const char *name; } names[] = {
	{ EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { EINTR, "EINTR" }, { EIO, "EIO" },
	{ EBADF, "EBADF" }, { EAGAIN, "EAGAIN" }, { ENOMEM, "ENOMEM" }, { EACCES, "EACCES" },
	{ EFAULT, "EFAULT" }, { EBUSY, "EBUSY" }, { EEXIST, "EEXIST" }, { ENODEV, "ENODEV" },
	{ EINVAL, "EINVAL" }, { ENFILE, "ENFILE" }, { EMFILE, "EMFILE" }, { ENOSPC, "ENOSPC" },
	{ EPIPE, "EPIPE" }, { ERANGE, "ERANGE" }, { ENOSYS, "ENOSYS" }, { ENXIO, "ENXIO" },
	{ EOPNOTSUPP, "EOPNOTSUPP" }, { EPROTONOSUPPORT, "EPROTONOSUPPORT" },
	{ EADDRINUSE, "EADDRINUSE" }, { EADDRNOTAVAIL, "EADDRNOTAVAIL" },
	{ ENETUNREACH, "ENETUNREACH" }, { ECONNRESET, "ECONNRESET" }, { ENOBUFS, "ENOBUFS" },
	{ ETIMEDOUT, "ETIMEDOUT" }, { ECONNREFUSED, "ECONNREFUSED" }, { EHOSTUNREACH, "EHOSTUNREACH" },
	{ ETIME, "ETIME" }, { ECANCELED, "ECANCELED" }, { ENOTSOCK, "ENOTSOCK" },
	{ EAFNOSUPPORT, "EAFNOSUPPORT" }, { EISDIR, "EISDIR" }, { EMSGSIZE, "EMSGSIZE" },
};

const char *errno_name(int err)
{
	static __thread char buf[16];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].err == err)
			return names[i].name;
	snprintf(buf, sizeof(buf), "E%d", err);
	return buf;
}

int errno_number(const char *name)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(names[i].name, name))
			return names[i].err;
	return 0;
}

void lg_error_set(struct lg_error *e, const char *call, int err, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	e->call = call ? call : "";
	e->err = err;
	n = strlen(e->msg);
	if (err && n < sizeof(e->msg))
		snprintf(e->msg + n, sizeof(e->msg) - n, "%s%s failed: %s (%s)", n ? ": " : "",
			 e->call, errno_name(err), strerror(err));
}
