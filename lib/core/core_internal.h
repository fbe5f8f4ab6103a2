/* Private to lib/core (and its tests): helpers that no other module and no user needs, kept out
 * of the exported surface (issue 17). */
#ifndef MPQ_CORE_INTERNAL_H
#define MPQ_CORE_INTERNAL_H

#include <mpq/core.h>

/* Sets the raw 256-bit xoshiro state (four words, not all zero), for reproducing published
 * reference sequences in tests. Clears any cached normal draw. */
mpq_status mpq_rng_set_raw(mpq_rng *rng, const uint64_t state[4]);

/* CRC-32 (ISO-HDLC, zlib's) of a buffer, continued from @p crc (start with 0). */
uint32_t mpq_crc32(uint32_t crc, const void *data, size_t size);

#endif
