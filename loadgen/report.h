/* report.h - JSON lines (docs/loadgen-output.md) and the readable table; one writer lock. */
#ifndef LOADGEN_REPORT_H
#define LOADGEN_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "lgerror.h"

#define LG_MAX_EMULATED 8

struct run_info {               /* labels on every record; set once by main before threads */
	const char *topology;
	const char *backend;
	const char *emulated[LG_MAX_EMULATED];
	int n_emulated;
	bool json;
	int cpus_available;     /* CPUs the receiving threads may run on (--rx-cpus, else the affinity) */
	bool rings_share_cores; /* receiving threads (rings + workers) > cpus_available */
	char kernel[65];
	const char *nic_model;  /* --nic-model FILE: every record carries "nic_model" (NULL: a real NIC) */
	char nic_model_note[300];       /* " [NIC modelled by FILE]" ending every line, "" without */
	uint64_t t0_ns;         /* CLOCK_MONOTONIC at start of measurement (0 before) */
};
extern struct run_info g_run;

uint64_t now_ns(void);
double run_t(void);             /* seconds since t0 */

struct jbuf {                   /* a growing JSON object under construction */
	char *s;
	size_t n, cap;
};
void jb_begin(struct jbuf *j, const char *type);        /* "{" + type/topology/backend/emulated/
                                                         * cpus_available/rings_share_cores/t */
void jb_str(struct jbuf *j, const char *key, const char *v);
void jb_i64(struct jbuf *j, const char *key, int64_t v);
void jb_u64(struct jbuf *j, const char *key, uint64_t v);
void jb_dbl(struct jbuf *j, const char *key, double v);
void jb_bool(struct jbuf *j, const char *key, bool v);
void jb_raw(struct jbuf *j, const char *text);          /* verbatim, e.g. nested "[" / "{" */
void jb_key(struct jbuf *j, const char *key);           /* "key": (then jb_raw a value) */
void jb_emit(struct jbuf *j);                           /* "}\n" to stdout, atomically; frees */

/* Lines for humans (table mode) and for stderr, under the same lock. */
void out_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void err_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One-line error: stderr always; an "error" record too with --json. */
void report_error(const struct lg_error *e);
void report_registration(int ring, const char *thread, const struct rx_registration *reg);
void report_event(int ring, const char *thread, const struct rx_event *ev);

#endif
