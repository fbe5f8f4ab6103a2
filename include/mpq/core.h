/**
 * @file core.h
 * @brief libmpq core: status codes, error messages, versions, logging, parameters, the per-handle
 * random generator and the file helpers (atomic write, binary container) every module shares.
 *
 * Thread safety: nothing in this header touches global mutable state. The last-error message is
 * thread-local. An ::mpq_rng or ::mpq_container may be used by one thread at a time; different
 * objects may be used from different threads at once.
 *
 * @since 0.1.0
 */
#ifndef MPQ_CORE_H
#define MPQ_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <mpq/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup core Core
 * Status codes, errors, versions, logging, parameters, random numbers and files.
 * @{ */

/** Marks a symbol exported from libmpq.so; everything else is hidden. */
#if defined(_WIN32) && defined(MPQ_BUILDING_LIBRARY)
#define MPQ_API __declspec(dllexport)
#elif defined(_WIN32)
#define MPQ_API __declspec(dllimport)
#elif defined(__GNUC__) && __GNUC__ >= 4
#define MPQ_API __attribute__((visibility("default")))
#else
#define MPQ_API
#endif

/** @name Bit widths shared by every module
 * One name per constant: policies, fake-quant kernels, quantizers and cost models all take bit
 * widths in MPQ_BITS_MIN..MPQ_BITS_MAX, or MPQ_BITS_FLOAT for "not quantized".
 * @{ */
/** Smallest bit width a policy or kernel accepts (weights and activations). */
#define MPQ_BITS_MIN 1
/** Largest integer bit width (linear grids and k-means codebooks of 2^16 centres). */
#define MPQ_BITS_MAX 16
/** Bit width meaning "not quantized" (float32): data passes through unchanged. */
#define MPQ_BITS_FLOAT 32
/** @} */

/**
 * Result of every fallible call. The numeric values are pinned forever: new kinds are only
 * appended, so a value seen in a log or a Python exception always means the same thing.
 */
typedef enum mpq_status {
    MPQ_OK = 0,                    /**< Success. */
    MPQ_ERR_INVALID_ARGUMENT = 1,  /**< An argument is NULL, out of range, NaN or inconsistent. */
    MPQ_ERR_OUT_OF_MEMORY = 2,     /**< An allocation failed. */
    MPQ_ERR_IO = 3,                /**< The operating system refused a file operation. */
    MPQ_ERR_FORMAT = 4,            /**< A file or buffer is damaged, truncated or of another kind. */
    MPQ_ERR_UNSUPPORTED = 5,       /**< Valid request this build or target cannot serve. */
    MPQ_ERR_NOT_FOUND = 6,         /**< A named item (tensor, layer, target, parameter) is absent. */
    MPQ_ERR_CALLBACK = 7,          /**< A user callback reported failure. */
    MPQ_ERR_CANCELLED = 8,         /**< A callback or the wall-clock budget stopped the run. */
    MPQ_ERR_INFEASIBLE = 9,        /**< A constraint (budget) cannot be met by any policy. */
    MPQ_ERR_STATE = 10,            /**< The call is not valid in the handle's current state. */
    MPQ_ERR_NUMERIC = 11,          /**< A computation produced NaN or infinity. */
    MPQ_ERR_VERSION = 12,          /**< A file or library of an incompatible version. */
    MPQ_ERR_MISMATCH = 13,         /**< Two objects do not belong together (policy vs model). */
    MPQ_ERR_INTERNAL = 14,         /**< A dependency (oneDNN, OpenBLAS, zlib) failed unexpectedly. */
} mpq_status;

/**
 * Short fixed name of a status ("MPQ_ERR_FORMAT"). Never NULL: unknown values give
 * "MPQ_ERR_UNKNOWN". The string is static.
 */
MPQ_API const char *mpq_status_string(mpq_status status);

/**
 * Detail of the calling thread's most recent failure, e.g. "layer 12: bits 9 > max 16".
 * Never NULL (empty string before any failure). Owned by libmpq; valid until the next failing
 * libmpq call on the same thread. Successful calls leave it unchanged.
 */
MPQ_API const char *mpq_last_error(void);

/** Status of the calling thread's most recent failure (MPQ_OK before any). */
MPQ_API mpq_status mpq_last_status(void);

/**
 * Records a failure for the calling thread and returns @p status, so that callbacks written by
 * users (evaluators, hardware callbacks) can report a precise message that the library carries to
 * the caller of the run. printf-style formatting; the message is truncated at 1023 bytes.
 */
MPQ_API mpq_status mpq_set_error(mpq_status status, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/** @name Versioned plain-data structs
 * Every plain struct that crosses the API starts with `size_t size`, which the CALLER sets to
 * sizeof the struct it was compiled with. A struct only grows at the end, and a field added later
 * means "default" when zero. The library therefore reads and writes min(caller size, own size)
 * bytes: a program built against an older header passes a shorter struct and gets the defaults
 * for the fields it does not know; a program built against a newer header may pass a longer one
 * as long as the fields this library does not know are zero (otherwise ::MPQ_ERR_UNSUPPORTED,
 * because a request the library cannot see must not be silently dropped). The library never
 * writes its own sizeof into a caller's struct. These two helpers implement the rule for every
 * module; they are inline so that they add nothing to the ABI.
 * @{ */

/** Largest size accepted in a size field: guards against an uninitialised one. */
#define MPQ_STRUCT_SIZE_LIMIT 4096

/**
 * Copies a caller's versioned struct into the library's own copy @p own (@p own_size bytes):
 * min(caller size, own size) bytes, the rest zero; own->size becomes @p own_size.
 * @param own destination, the library's struct.
 * @param own_size sizeof the library's struct.
 * @param caller the caller's struct (its first member is the size it was compiled with).
 * @param what name for messages, e.g. "mpq_fq_apply: cfg".
 * @return ::MPQ_ERR_INVALID_ARGUMENT for NULL or a size below sizeof(size_t) or above
 *         ::MPQ_STRUCT_SIZE_LIMIT; ::MPQ_ERR_UNSUPPORTED for nonzero fields this library does
 *         not know.
 */
static inline mpq_status mpq_struct_copy_in(void *own, size_t own_size, const void *caller,
                                            const char *what)
{
    const unsigned char *src = (const unsigned char *)caller;
    size_t caller_size, n, i;
    if (!caller)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s is NULL", what);
    memcpy(&caller_size, src, sizeof caller_size);
    if (caller_size < sizeof(size_t) || caller_size > MPQ_STRUCT_SIZE_LIMIT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "%s: size field is %zu; set it to sizeof the struct", what,
                             caller_size);
    for (i = own_size; i < caller_size; i++)
        if (src[i] != 0)
            return mpq_set_error(MPQ_ERR_UNSUPPORTED,
                                 "%s: byte %zu of %zu is set, but this libmpq (%s) knows only "
                                 "%zu bytes of the struct", what, i, caller_size,
                                 MPQ_VERSION_STRING, own_size);
    n = caller_size < own_size ? caller_size : own_size;
    memset(own, 0, own_size);
    memcpy(own, src, n);
    memcpy(own, &own_size, sizeof own_size);
    return MPQ_OK;
}

/**
 * Copies the library's struct @p own out to a caller's versioned struct: min(caller size, own
 * size) bytes after the size field (which keeps the caller's value); bytes the library does not
 * know in a longer caller struct are zeroed.
 * @param caller destination, the caller's struct with its size set.
 * @param own the library's struct.
 * @param own_size sizeof the library's struct.
 * @param what name for messages.
 * @return ::MPQ_ERR_INVALID_ARGUMENT for NULL or a size field out of range.
 */
static inline mpq_status mpq_struct_copy_out(void *caller, const void *own, size_t own_size,
                                             const char *what)
{
    unsigned char *dst = (unsigned char *)caller;
    size_t caller_size, n;
    if (!caller)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s is NULL", what);
    memcpy(&caller_size, dst, sizeof caller_size);
    if (caller_size < sizeof(size_t) || caller_size > MPQ_STRUCT_SIZE_LIMIT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "%s: size field is %zu; set it to sizeof the struct", what,
                             caller_size);
    n = caller_size < own_size ? caller_size : own_size;
    memcpy(dst + sizeof(size_t), (const unsigned char *)own + sizeof(size_t),
           n - sizeof(size_t));
    if (caller_size > own_size)
        memset(dst + own_size, 0, caller_size - own_size);
    return MPQ_OK;
}
/** @} */

/** Clears the calling thread's last error (status MPQ_OK, empty message). Cannot fail. */
MPQ_API void mpq_clear_error(void);

/** Runtime version as MPQ_VERSION_NUMBER encodes it (major*10000 + minor*100 + patch). */
MPQ_API unsigned mpq_version_number(void);

/** Runtime version as "major.minor.patch". Static string, never NULL. */
MPQ_API const char *mpq_version_string(void);

/** Frees memory that libmpq allocated for the caller (JSON text, file contents). NULL is a no-op. */
MPQ_API void mpq_free(void *ptr);

/**
 * The threads a parallel run of the library takes now, the rule behind every module's `threads`
 * parameter: @p requested when it is positive, otherwise the CPUs of the calling thread's
 * affinity mask (taskset, cgroup cpusets), capped by OpenMP's `omp_get_max_threads()`. With
 * @p load_aware nonzero the count is further bounded by the CPUs that other runnable threads of
 * the machine leave free (/proc/loadavg), so that a library sharing the machine with a busy
 * process never runs slower with two threads than with one. Results never depend on the count
 * (docs/guide.md, threads and determinism). Cannot fail: returns at least 1.
 */
MPQ_API int mpq_thread_budget(int requested, int load_aware);

/** Severity of a log message. */
typedef enum mpq_log_level {
    MPQ_LOG_ERROR = 0,   /**< A failure the call also reports through its status. */
    MPQ_LOG_WARNING = 1, /**< Something suspicious that did not stop the call. */
    MPQ_LOG_INFO = 2,    /**< Progress worth showing to a user (one line per episode, say). */
    MPQ_LOG_DEBUG = 3,   /**< Detail for developers. */
} mpq_log_level;

/**
 * Log callback. libmpq never prints: handles that have something to say call this function if
 * one was installed on them (e.g. mpq_search_set_log()). @p message is valid during the call only.
 */
typedef void (*mpq_log_fn)(void *user, mpq_log_level level, const char *message);

/** First id of libmpq's own parameters in modules that keep them apart from the papers'
 * settings (zstd numbers its experimental parameters the same way). */
#define MPQ_PARAM_EXTENSION_BASE 1000

/**
 * Description of one tunable parameter of a handle. Every module that has setters offers
 * `mpq_<module>_param_info()` filling this struct, so that command lines, JSON configurations and
 * Python can list, name and bound-check parameters without hard-coding them.
 * The struct may grow at the end; callers set @p size to sizeof(mpq_param_info).
 *
 * Listing parameters: public enums carry no count (a count compiled into a program would be
 * wrong as soon as a later libmpq adds a value). Parameter ids are dense from 0; walk
 * `mpq_<module>_param_info(id)` upwards until it returns ::MPQ_ERR_INVALID_ARGUMENT. Where a
 * module separates the papers' settings from libmpq's own, the latter are numbered from
 * ::MPQ_PARAM_EXTENSION_BASE, dense again (walk that range the same way).
 */
typedef struct mpq_param_info {
    size_t size;              /**< Set by the caller to sizeof(mpq_param_info). */
    const char *name;         /**< Stable lower-case name ("actor_lr"), static storage. */
    const char *description;  /**< One line, with the source of the default value. */
    double min_value;         /**< Smallest accepted value (inclusive). */
    double max_value;         /**< Largest accepted value (inclusive). */
    double default_value;     /**< Value a new handle starts with. */
    int is_integer;           /**< Nonzero when only integral values are accepted. */
} mpq_param_info;

/* ------------------------------------------------------------------------------------------ */
/** @name Random numbers
 * xoshiro256** (Blackman & Vigna, 2018) seeded through splitmix64: fast, 256 bits of state,
 * well-tested, and simple to reproduce in other languages. Every handle that needs randomness owns
 * one generator, so results depend only on the seed, never on other handles or threads.
 * @{ */

/** Opaque random generator. */
typedef struct mpq_rng mpq_rng;

/** Size in bytes of a serialised generator state (see mpq_rng_get_state()). */
#define MPQ_RNG_STATE_SIZE 48

/** Creates a generator seeded with @p seed (splitmix64 expands it into the 256-bit state). */
MPQ_API mpq_status mpq_rng_create(mpq_rng **out, uint64_t seed);

/** Destroys a generator. NULL is a no-op. */
MPQ_API void mpq_rng_destroy(mpq_rng *rng);

/** Re-seeds the generator exactly as mpq_rng_create() does. */
MPQ_API mpq_status mpq_rng_seed(mpq_rng *rng, uint64_t seed);


/** Next raw 64-bit output of xoshiro256**. */
MPQ_API mpq_status mpq_rng_next_u64(mpq_rng *rng, uint64_t *out);

/** Uniform double in [0, 1) with 53 random bits. */
MPQ_API mpq_status mpq_rng_uniform(mpq_rng *rng, double *out);

/** Uniform integer in [0, @p bound) without modulo bias; @p bound must be > 0. */
MPQ_API mpq_status mpq_rng_below(mpq_rng *rng, uint64_t bound, uint64_t *out);

/** Normal draw with the given mean and standard deviation (>= 0), Marsaglia polar method. */
MPQ_API mpq_status mpq_rng_normal(mpq_rng *rng, double mean, double stddev, double *out);

/**
 * Normal(mean, stddev) conditioned on [lower, upper] — the truncated normal HAQ uses for
 * exploration noise (scipy.stats.truncnorm). Exact: rejection from the normal when the interval
 * holds enough mass, otherwise inverse-CDF-free rejection from a uniform on the interval.
 * @p lower < @p upper; stddev == 0 returns mean clamped into the interval.
 */
MPQ_API mpq_status mpq_rng_truncated_normal(mpq_rng *rng, double mean, double stddev,
                                            double lower, double upper, double *out);

/**
 * Serialises the complete state (including a cached normal draw) into @p state, so that a
 * generator restored with mpq_rng_set_state() continues bit-identically. Little-endian layout.
 */
MPQ_API mpq_status mpq_rng_get_state(const mpq_rng *rng, uint8_t state[MPQ_RNG_STATE_SIZE]);

/** Restores a state written by mpq_rng_get_state(); an all-zero xoshiro state is refused. */
MPQ_API mpq_status mpq_rng_set_state(mpq_rng *rng, const uint8_t state[MPQ_RNG_STATE_SIZE]);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Files
 * @{ */

/**
 * Writes @p size bytes to @p path atomically: a temporary file in the same directory is written,
 * flushed with fsync and renamed over @p path, then the directory is synced. A crash or error at
 * any point leaves either the old file or the complete new one, never a mix.
 *
 * The temporary is named `<path>.tmp-<pid>-<host>-XXXXXX` (pid of the writer, 8 hex digits of a
 * CRC of its host name, boot id and pid namespace, 6 random characters). A write interrupted
 * before its rename (a kill or a crash) leaves that file behind; the next write of the same
 * @p path removes such temporaries when their writer is a process of this host, boot and
 * namespace that is gone (or whose pid now belongs to a process started after the file was
 * written), and those of other hosts once they are untouched for an hour. The temporary of a
 * live concurrent writer on this host is left alone, whatever its age.
 */
MPQ_API mpq_status mpq_write_file_atomic(const char *path, const void *data, size_t size);

/**
 * Reads a whole file into a new buffer (one extra NUL byte appended, not counted in @p size).
 * Free @p *data with mpq_free().
 */
MPQ_API mpq_status mpq_read_file(const char *path, void **data, size_t *size);

/**
 * Reads a whole file, transparently gunzipping it when it starts with the gzip magic (the IDX
 * files of the MNIST family ship as .gz). @p max_size bounds the decompressed size (0: 4 GiB).
 * Free @p *data with mpq_free().
 */
MPQ_API mpq_status mpq_read_file_gz(const char *path, size_t max_size, void **data, size_t *size);


/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Binary container
 * One file format for models, agents and search checkpoints:
 *
 * | offset | size | content |
 * |---|---|---|
 * | 0 | 8 | magic "MPQC\r\n\x1a\n" |
 * | 8 | 4 | format version (1), little-endian |
 * | 12 | 4 | tensor count |
 * | 16 | 8 | JSON header length H |
 * | 24 | H | JSON header (UTF-8, a JSON object, not NUL-terminated) |
 * | ... | | per tensor: u16 name length, name, u8 dtype, u8 rank, u64 dims[rank], u64 stored length, stored bytes (zlib stream), u32 CRC-32 of the raw bytes |
 * | end-4 | 4 | CRC-32 of every byte before it |
 *
 * All integers little-endian. The reader checks every length against the bytes that remain before
 * using it, recomputes both CRCs and refuses anything unexpected with ::MPQ_ERR_FORMAT and a
 * message naming the field. Files are written with mpq_write_file_atomic().
 * @{ */

/** Element type of a container tensor. */
typedef enum mpq_dtype {
    MPQ_DTYPE_F32 = 1,  /**< IEEE-754 float32. */
    MPQ_DTYPE_I32 = 2,  /**< int32. */
    MPQ_DTYPE_U8 = 3,   /**< uint8 (also opaque bytes). */
    MPQ_DTYPE_F64 = 4,  /**< IEEE-754 float64. */
    MPQ_DTYPE_I64 = 5,  /**< int64. */
} mpq_dtype;

/** Largest tensor rank a container stores. */
#define MPQ_MAX_RANK 8

/** Size in bytes of one element of @p dtype (0 for an unknown type). */
MPQ_API size_t mpq_dtype_size(mpq_dtype dtype);

/** A set of named tensors plus a JSON header, in memory. */
typedef struct mpq_container mpq_container;

/** Description of one stored tensor. Grows only at the end. */
typedef struct mpq_tensor_info {
    size_t size;               /**< Set by the caller to sizeof(mpq_tensor_info). */
    const char *name;          /**< Owned by the container. */
    mpq_dtype dtype;           /**< Element type. */
    int rank;                  /**< Number of dimensions, 0..MPQ_MAX_RANK. */
    int64_t dims[MPQ_MAX_RANK];/**< Extents; unused entries are 0. */
    int64_t count;             /**< Product of the extents (1 for rank 0). */
    const void *data;          /**< count elements, owned by the container. */
} mpq_tensor_info;

/** Creates an empty container whose header is "{}". */
MPQ_API mpq_status mpq_container_create(mpq_container **out);

/** Destroys a container and the tensors it holds. NULL is a no-op. */
MPQ_API void mpq_container_destroy(mpq_container *c);

/** Replaces the JSON header (copied). It must be a JSON object; this is checked on save and load. */
MPQ_API mpq_status mpq_container_set_header(mpq_container *c, const char *json);

/** Borrowed JSON header text, valid until the header changes or the container is destroyed. */
MPQ_API const char *mpq_container_get_header(const mpq_container *c);

/**
 * Adds a tensor, copying @p data (count = product of @p dims elements). Names are 1..255 bytes
 * and unique within a container; a duplicate name is refused.
 */
MPQ_API mpq_status mpq_container_add(mpq_container *c, const char *name, mpq_dtype dtype,
                                     int rank, const int64_t *dims, const void *data);

/** Number of tensors held. */
MPQ_API size_t mpq_container_get_count(const mpq_container *c);

/** Describes tensor @p index (0-based, in insertion order). Pointers are borrowed. */
MPQ_API mpq_status mpq_container_get_entry(const mpq_container *c, size_t index, mpq_tensor_info *info);

/** Finds a tensor by name; ::MPQ_ERR_NOT_FOUND names the missing tensor. */
MPQ_API mpq_status mpq_container_find(const mpq_container *c, const char *name,
                                      mpq_tensor_info *info);

/**
 * Finds a tensor by name and checks its type and element count in one call, so that loaders can
 * validate a file in one line. ::MPQ_ERR_FORMAT (naming the tensor) when they differ.
 */
MPQ_API mpq_status mpq_container_expect(const mpq_container *c, const char *name,
                                        mpq_dtype dtype, int64_t count, const void **data);

/** Serialises into a new buffer (free with mpq_free()). @p level is zlib's 0..9 (-1 default). */
MPQ_API mpq_status mpq_container_to_memory(const mpq_container *c, int level, void **data,
                                           size_t *size);

/** Parses a serialised container; everything is validated before use. */
MPQ_API mpq_status mpq_container_from_memory(mpq_container **out, const void *data, size_t size);

/** Saves atomically to @p path (zlib level 6). */
MPQ_API mpq_status mpq_container_save(const mpq_container *c, const char *path);

/** Loads from @p path; a damaged file gives ::MPQ_ERR_FORMAT and a message. */
MPQ_API mpq_status mpq_container_load(mpq_container **out, const char *path);

/** @} */

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* MPQ_CORE_H */
