/* report.c - JSON lines and table output, serialised by one lock. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "report.h"

struct run_info g_run;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

double run_t(void)
{
	if (!g_run.t0_ns)
		return 0.0;
	return (double)(now_ns() - g_run.t0_ns) / 1e9;
}

static void jb_reserve(struct jbuf *j, size_t more)
{
	if (j->n + more + 1 <= j->cap)
		return;
	while (j->n + more + 1 > j->cap)
		j->cap = j->cap ? j->cap * 2 : 1024;
	j->s = realloc(j->s, j->cap);
	if (!j->s) {
		fputs("zcrx-loadgen: error: out of memory\n", stderr);
		exit(1);
	}
}

static void jb_put(struct jbuf *j, const char *text, size_t len)
{
	jb_reserve(j, len);
	memcpy(j->s + j->n, text, len);
	j->n += len;
	j->s[j->n] = 0;
}

void jb_raw(struct jbuf *j, const char *text)
{
	jb_put(j, text, strlen(text));
}

static void jb_quoted(struct jbuf *j, const char *v)
{
	char esc[8];

	jb_put(j, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			jb_put(j, esc, 2);
		} else if (*p < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			jb_put(j, esc, 6);
		} else {
			jb_put(j, (const char *)p, 1);
		}
	}
	jb_put(j, "\"", 1);
}

void jb_key(struct jbuf *j, const char *key)
{
	char last = j->n ? j->s[j->n - 1] : '{';

	if (last != '{' && last != '[')
		jb_put(j, ",", 1);
	jb_quoted(j, key);
	jb_put(j, ":", 1);
}

void jb_str(struct jbuf *j, const char *key, const char *v)
{
	jb_key(j, key);
	jb_quoted(j, v ? v : "");
}

void jb_i64(struct jbuf *j, const char *key, int64_t v)
{
	char num[32];

	jb_key(j, key);
	snprintf(num, sizeof(num), "%lld", (long long)v);
	jb_raw(j, num);
}

void jb_u64(struct jbuf *j, const char *key, uint64_t v)
{
	char num[32];

	jb_key(j, key);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
	jb_raw(j, num);
}

void jb_dbl(struct jbuf *j, const char *key, double v)
{
	char num[40];

	jb_key(j, key);
	snprintf(num, sizeof(num), "%.6f", v);
	jb_raw(j, num);
}

void jb_bool(struct jbuf *j, const char *key, bool v)
{
	jb_key(j, key);
	jb_raw(j, v ? "true" : "false");
}

void jb_begin(struct jbuf *j, const char *type)
{
	memset(j, 0, sizeof(*j));
	jb_raw(j, "{");
	jb_str(j, "type", type);
	jb_str(j, "topology", g_run.topology);
	jb_str(j, "backend", g_run.backend);
	jb_key(j, "emulated");
	jb_raw(j, "[");
	for (int i = 0; i < g_run.n_emulated; i++) {
		if (i)
			jb_raw(j, ",");
		jb_quoted(j, g_run.emulated[i]);
	}
	jb_raw(j, "]");
	jb_i64(j, "cpus_available", g_run.cpus_available);
	jb_bool(j, "rings_share_cores", g_run.rings_share_cores);
	jb_dbl(j, "t", run_t());
	if (g_run.nic_model)
		jb_str(j, "nic_model", g_run.nic_model);
}

void jb_emit(struct jbuf *j)
{
	jb_raw(j, "}\n");
	pthread_mutex_lock(&out_lock);
	fwrite(j->s, 1, j->n, stdout);
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
	free(j->s);
	j->s = NULL;
}

static void vout(FILE *f, const char *fmt, va_list ap)
{
	pthread_mutex_lock(&out_lock);
	vfprintf(f, fmt, ap);
	fflush(f);
	pthread_mutex_unlock(&out_lock);
}

void out_printf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vout(stdout, fmt, ap);
	va_end(ap);
}

void err_printf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vout(stderr, fmt, ap);
	va_end(ap);
}

void report_error(const struct lg_error *e)
{
	struct jbuf j;

	err_printf("zcrx-loadgen: error: %s%s\n", e->msg, g_run.nic_model_note);
	if (!g_run.json)
		return;
	jb_begin(&j, "error");
	jb_str(&j, "message", e->msg);
	jb_str(&j, "call", e->call ? e->call : "");
	jb_str(&j, "errno", e->err ? errno_name(e->err) : "");
	jb_emit(&j);
}

void report_registration(int ring, const char *thread, const struct rx_registration *reg)
{
	struct jbuf j;

	if (!g_run.json) {
		out_printf("registration ring %d: ifq %d zcrx_id %d%s%s, %u entries, %llu bytes, "
			   "buffers of %u bytes\n", ring, reg->ifq, reg->zcrx_id,
			   reg->exported ? " exported" : "", reg->imported ? " imported" : "",
			   reg->rq_entries, (unsigned long long)reg->area_bytes, reg->rx_buf_len);
		return;
	}
	jb_begin(&j, "registration");
	jb_str(&j, "thread", thread);
	jb_i64(&j, "ring", ring);
	jb_i64(&j, "zcrx_id", reg->zcrx_id);
	jb_i64(&j, "ifq", reg->ifq);
	jb_bool(&j, "exported", reg->exported);
	jb_bool(&j, "imported", reg->imported);
	jb_u64(&j, "rq_entries", reg->rq_entries);
	jb_u64(&j, "area_bytes", reg->area_bytes);
	jb_u64(&j, "rx_buf_len", reg->rx_buf_len);
	jb_str(&j, "kernel", g_run.kernel);
	jb_emit(&j);
}

void report_event(int ring, const char *thread, const struct rx_event *ev)
{
	struct jbuf j;

	if (!g_run.json) {
		out_printf("event ring %d: %s count %llu bytes %llu\n", ring, ev->name,
			   (unsigned long long)ev->count, (unsigned long long)ev->bytes);
		return;
	}
	jb_begin(&j, "event");
	jb_str(&j, "event", ev->name);
	jb_str(&j, "thread", thread);
	jb_i64(&j, "ring", ring);
	jb_u64(&j, "count", ev->count);
	jb_u64(&j, "bytes", ev->bytes);
	jb_emit(&j);
}
