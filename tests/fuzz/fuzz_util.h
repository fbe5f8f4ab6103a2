/* Helpers shared by the fuzz targets and the corpus generator.
 *
 * Container-based files (models, .mpqnet, agents, checkpoints) are CRC-checked and
 * zlib-compressed, so byte-level mutations of a real file almost never get past the container
 * layer (fuzz_container.c covers that layer). These targets therefore read a "box": the same
 * header and tensors, stored raw and unchecked, which the target turns into a real container
 * before calling the loader. Mutations then reach the JSON header, the dimensions and the values
 * the loaders must validate. An input that starts with the container magic is used as is, so
 * that real files (e.g. reproducers) can be replayed too.
 *
 * Box layout: "MPQB", u32 header length, header bytes, then per tensor until the end: u8 name
 * length (>= 1), name, u8 dtype, u8 rank (<= MPQ_MAX_RANK), i64 dims[rank], then the raw data
 * (product of dims x dtype size bytes). All integers little-endian. */
#ifndef MPQ_FUZZ_UTIL_H
#define MPQ_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <mpq/core.h>

#define FUZZ_BOX_MAGIC "MPQB"

/* Decodes a box (or a real container file) into a container; 0 on success. */
int fuzz_box_decode(const uint8_t *data, size_t size, mpq_container **out);

/* Encodes a container as a box (free *data with free()); 0 on success. */
int fuzz_box_encode(const mpq_container *c, uint8_t **data, size_t *size);

/* Turns the input into the bytes of a real container file (free with free()); 0 on success.
 * Container files pass through unchanged so that their damage reaches the loader. */
int fuzz_input_to_file_bytes(const uint8_t *data, size_t size, uint8_t **out, size_t *out_size);

/* Path of a scratch file @p name in a directory private to this process (on /dev/shm when
 * present: the loaders' atomic writes fsync, which a disk makes slow), in a static buffer that
 * the next call overwrites. The directory and everything in it are removed at exit. */
const char *fuzz_temp_path(const char *name);

/* Writes @p size bytes to @p path (plain write: scratch files need no atomicity); 0 on success. */
int fuzz_write(const char *path, const void *data, size_t size);

/* The input as file bytes (fuzz_input_to_file_bytes), written to the scratch file "in.<ext>":
 * @p path gets that name and @p again_path the scratch name "again.<ext>" for the target's
 * re-save. Returns the bytes (the caller frees them), NULL for an input that is no file. A
 * failing scratch write traps: the target would otherwise fuzz nothing. */
uint8_t *fuzz_stage_input(const uint8_t *data, size_t size, const char *ext, size_t *n,
                          char path[512], char again_path[512]);

#include <mpq/model.h>

/* A three-layer model ("fuzz-net": conv, depthwise conv, fully connected; 8, 8 and 10 kernels)
 * small enough that policies and cost tables for it stay short. */
int fuzz_small_model(mpq_model **out);

/* A deterministic evaluator for searches (mpq_evaluator_fn): accuracy from the bits alone. */
mpq_status fuzz_closed_form_eval(void *user, const mpq_policy *p, double *accuracy);

#endif
