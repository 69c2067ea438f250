/* lgerror.h - one-line failures: which call, which errno, what it means. */
#ifndef LOADGEN_LGERROR_H
#define LOADGEN_LGERROR_H

struct lg_error {
	char msg[320];          /* one line, no trailing newline */
	const char *call;       /* the failed call ("io_uring_queue_init_params", ...) or "" */
	int err;                /* positive errno, 0 if none */
};

/* Set e: msg = printf(fmt, ...) and, when err != 0, ": <call> failed: <ERRNAME> (<meaning>)". */
void lg_error_set(struct lg_error *e, const char *call, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* "EOPNOTSUPP" for EOPNOTSUPP, "E123" for unknown numbers. */
const char *errno_name(int err);
/* EOPNOTSUPP for "EOPNOTSUPP"; 0 for a name not in the table. */
int errno_number(const char *name);

#endif
