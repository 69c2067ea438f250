/* pattern.h - the per-connection byte pattern senders write and receivers verify.
 * Byte at stream offset o of a connection whose client port is p: table[(o + phase(p)) % PERIOD],
 * table = pseudo-random bytes, PERIOD prime, so lost, duplicated or shifted data mismatches. */
#ifndef LOADGEN_PATTERN_H
#define LOADGEN_PATTERN_H

#include <stddef.h>
#include <stdint.h>

#define PATTERN_PERIOD 65521u

/* Build the table so that pattern_at() is valid for maxlen bytes. Call once, before threads. */
int pattern_init(size_t maxlen);
/* Phase of a connection, from the client's (sender's) TCP port. */
uint32_t pattern_phase(uint16_t client_port);
/* Expected bytes from stream offset `offset`, valid for the maxlen given to pattern_init. */
const uint8_t *pattern_at(uint32_t phase, uint64_t offset);

struct verify_result {
	uint64_t bad_bytes;     /* bytes that differ */
	uint64_t first_offset;  /* stream offset of the first differing byte (if bad_bytes) */
	uint8_t expected, got;
};

/* Compare len bytes received at stream offset `offset`; returns bad_bytes. */
uint64_t pattern_verify(uint32_t phase, uint64_t offset, const uint8_t *p, size_t len,
			struct verify_result *res);

#endif
