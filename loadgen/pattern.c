/* pattern.c - per-connection byte pattern and its verification. */
#include <stdlib.h>
#include <string.h>

#include "pattern.h"

static uint8_t *table;

int pattern_init(size_t maxlen)
{
	size_t len = PATTERN_PERIOD + (maxlen > PATTERN_PERIOD ? maxlen : PATTERN_PERIOD);
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	table = malloc(len);
	if (!table)
		return -1;
	for (size_t i = 0; i < PATTERN_PERIOD; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		table[i] = (uint8_t)(x >> 24);
	}
	for (size_t i = PATTERN_PERIOD; i < len; i++)
		table[i] = table[i - PATTERN_PERIOD];
	return 0;
}

uint32_t pattern_phase(uint16_t client_port)
{
	return (uint32_t)(((uint64_t)client_port * 7919u) % PATTERN_PERIOD);
}

const uint8_t *pattern_at(uint32_t phase, uint64_t offset)
{
	return table + (offset + phase) % PATTERN_PERIOD;
}

uint64_t pattern_verify(uint32_t phase, uint64_t offset, const uint8_t *p, size_t len,
			struct verify_result *res)
{
	uint64_t bad = 0;

	while (len) {
		size_t n = len < PATTERN_PERIOD ? len : PATTERN_PERIOD;
		const uint8_t *want = pattern_at(phase, offset);

		if (memcmp(p, want, n)) {
			for (size_t i = 0; i < n; i++) {
				if (p[i] == want[i])
					continue;
				if (!bad && !res->bad_bytes) {
					res->first_offset = offset + i;
					res->expected = want[i];
					res->got = p[i];
				}
				bad++;
			}
		}
		p += n;
		offset += n;
		len -= n;
	}
	res->bad_bytes += bad;
	return bad;
}
