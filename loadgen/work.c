/* work.c - checksum and calibrated busy cost. */
#include <string.h>
#include <time.h>

#include "work.h"

static double loops_per_ns = 1.0;

static uint64_t spin(uint64_t loops)
{
	uint64_t x = 0;

	for (uint64_t i = 0; i < loops; i++) {
		x += i;
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

double work_calibrate(void)
{
	const uint64_t loops = 20 * 1000 * 1000;
	double best = 0;

	for (int i = 0; i < 3; i++) {
		uint64_t t0 = thread_cpu_ns();

		spin(loops);
		uint64_t dt = thread_cpu_ns() - t0;
		double rate = dt ? (double)loops / (double)dt : 1.0;
		if (rate > best)
			best = rate;
	}
	loops_per_ns = best > 0 ? best : 1.0;
	return loops_per_ns * 1000.0;
}

uint64_t work_checksum(const void *p, size_t len)
{
	const unsigned char *b = p;
	uint64_t s0 = 0, s1 = 0, w0, w1;
	size_t i = 0;

	for (; i + 16 <= len; i += 16) {
		memcpy(&w0, b + i, 8);
		memcpy(&w1, b + i + 8, 8);
		s0 += w0;
		s1 += w1;
	}
	for (; i < len; i++)
		s0 += b[i];
	return s0 ^ (s1 << 1);
}

void work_busy(uint64_t ns)
{
	/* Burn exactly ns of this thread's CPU time, as the kernel accounts it: a loop count fixed at
	 * calibration drifts with vCPU steal and frequency, so the clock decides when to stop. Each
	 * step spins for about half of what remains (by the calibration), so a call costs a few
	 * clock reads and overshoots by a fraction of the last step. */
	uint64_t now = thread_cpu_ns(), end = now + ns;

	while (ns && now < end) {
		uint64_t loops = (uint64_t)((double)(end - now) * 0.5 * loops_per_ns);

		spin(loops > 64 ? loops : 64);
		now = thread_cpu_ns();
	}
}
