/* work.h - the work model every consumer applies to each received byte. */
#ifndef LOADGEN_WORK_H
#define LOADGEN_WORK_H

#include <stddef.h>
#include <stdint.h>

/* Measure busy-loop iterations per microsecond of thread CPU time (once, before threads). */
double work_calibrate(void);
/* A checksum that reads every byte (64-bit sums of 8-byte words). */
uint64_t work_checksum(const void *p, size_t len);
/* Burn ns nanoseconds of this thread's CPU time (CLOCK_THREAD_CPUTIME_ID decides). */
void work_busy(uint64_t ns);

#endif
