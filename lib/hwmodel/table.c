/* Lookup tables in HAQ's layout (layer, weight_bits, act_bits, latency[, energy]). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hwmodel_impl.h"

enum { COL_LAYER, COL_W, COL_A, COL_LAT, COL_EN, COL_COUNT };
static const char *const col_names[COL_COUNT] = {"layer", "weight_bits", "act_bits", "latency",
                                                 "energy"};

typedef struct row {
    long layer, w, a;
    double lat, en;
    size_t line;
} row;

/* Splits [p, end) at commas into at most max fields, trimming blanks; returns the field count
 * or -1 when there are more than max. */
static int split(const char *p, const char *end, const char **f, size_t *len, int max)
{
    int n = 0;
    for (;;) {
        const char *c = p;
        while (c < end && *c != ',')
            c++;
        const char *s = p, *e = c;
        while (s < e && isspace((unsigned char)*s))
            s++;
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        if (n == max)
            return -1;
        f[n] = s;
        len[n] = (size_t)(e - s);
        n++;
        if (c == end)
            return n;
        p = c + 1;
    }
}

static int parse_number(const char *s, size_t len, double *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *endp = NULL;
    errno = 0;
    double v = strtod(buf, &endp);
    if (errno || *endp != '\0' || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

mpq_status mpq__hw_table_parse(mpq_hw *hw, const char *text, size_t length)
{
    const char *p = text, *end = text + length;
    size_t line = 0;
    int col_of[COL_COUNT] = {-1, -1, -1, -1, -1};
    int ncols = 0;
    row *rows = NULL;
    size_t nrows = 0, cap = 0;
    mpq_status st = MPQ_OK;

    /* strtod() would stop at a NUL and take "5\0junk" for 5. */
    const char *nul = memchr(text, '\0', length);
    if (nul) {
        size_t at = 1;
        for (const char *q = text; q < nul; q++)
            at += *q == '\n';
        return mpq_set_error(MPQ_ERR_FORMAT, "line %zu: NUL byte (a lookup table is text)", at);
    }

    while (p < end && st == MPQ_OK) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e)
            e = end;
        line++;
        const char *le = e;
        if (le > p && le[-1] == '\r')
            le--;
        const char *q = p;
        p = e < end ? e + 1 : end;
        while (q < le && isspace((unsigned char)*q))
            q++;
        if (q == le)
            continue; /* blank line */
        const char *f[8];
        size_t flen[8];
        int n = split(q, le, f, flen, 8);
        if (ncols == 0) {
            if (n < 0 || n > COL_COUNT) {
                st = mpq_set_error(MPQ_ERR_FORMAT, "line %zu: header has more than %d columns",
                                   line, COL_COUNT);
                break;
            }
            for (int i = 0; i < n && st == MPQ_OK; i++) {
                int c = -1;
                for (int k = 0; k < COL_COUNT; k++)
                    if (flen[i] == strlen(col_names[k]) &&
                        strncmp(f[i], col_names[k], flen[i]) == 0)
                        c = k;
                if (c < 0 || col_of[c] >= 0)
                    st = mpq_set_error(MPQ_ERR_FORMAT,
                                       "line %zu: header column '%.*s' is %s (expected "
                                       "layer,weight_bits,act_bits,latency[,energy])",
                                       line, (int)flen[i], f[i], c < 0 ? "unknown" : "repeated");
                else
                    col_of[c] = i;
            }
            for (int k = 0; k < COL_LAT && st == MPQ_OK; k++)
                if (col_of[k] < 0)
                    st = mpq_set_error(MPQ_ERR_FORMAT, "line %zu: header lacks column '%s'",
                                       line, col_names[k]);
            if (st == MPQ_OK && col_of[COL_LAT] < 0)
                st = mpq_set_error(MPQ_ERR_FORMAT, "line %zu: header lacks column 'latency'",
                                   line);
            ncols = n;
            continue;
        }
        if (n != ncols) {
            st = mpq_set_error(MPQ_ERR_FORMAT, "line %zu: %d fields, the header has %d", line,
                               n < 0 ? 9 : n, ncols);
            break;
        }
        double v[COL_COUNT] = {0, 0, 0, 0, NAN};
        for (int k = 0; k < COL_COUNT; k++) {
            if (col_of[k] < 0)
                continue;
            if (!parse_number(f[col_of[k]], flen[col_of[k]], &v[k]) || v[k] < 0 ||
                (k < COL_LAT && v[k] != floor(v[k]))) {
                st = mpq_set_error(MPQ_ERR_FORMAT,
                                   "line %zu: %s '%.*s' is not a %s", line, col_names[k],
                                   (int)flen[col_of[k]], f[col_of[k]],
                                   k < COL_LAT ? "non-negative integer" : "non-negative number");
                break;
            }
        }
        if (st)
            break;
        if (v[COL_LAYER] > 1e6 || v[COL_W] < 1 || v[COL_W] > MPQ_BITS_MAX || v[COL_A] < 1 ||
            v[COL_A] > MPQ_BITS_MAX) {
            st = mpq_set_error(MPQ_ERR_FORMAT,
                               "line %zu: layer %g or bits (w=%g, a=%g) out of range (bits 1..%d)",
                               line, v[COL_LAYER], v[COL_W], v[COL_A], MPQ_BITS_MAX);
            break;
        }
        if (nrows == cap) {
            size_t nc = cap ? cap * 2 : 1024;
            row *r = realloc(rows, nc * sizeof *r);
            if (!r) {
                st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "lookup table: out of memory");
                break;
            }
            rows = r;
            cap = nc;
        }
        rows[nrows++] = (row){(long)v[COL_LAYER], (long)v[COL_W], (long)v[COL_A], v[COL_LAT],
                              v[COL_EN], line};
    }
    if (st == MPQ_OK && ncols == 0)
        st = mpq_set_error(MPQ_ERR_FORMAT, "lookup table is empty (no header line)");
    if (st == MPQ_OK && nrows == 0)
        st = mpq_set_error(MPQ_ERR_FORMAT, "lookup table has a header but no rows");
    if (st) {
        free(rows);
        return st;
    }
    long layers = 0, bits = 0;
    for (size_t i = 0; i < nrows; i++) {
        if (rows[i].layer + 1 > layers)
            layers = rows[i].layer + 1;
        if (rows[i].w > bits)
            bits = rows[i].w;
        if (rows[i].a > bits)
            bits = rows[i].a;
    }
    /* Every layer needs bits^2 rows: a layer index beyond the row count means rows are
     * missing, and refusing it here bounds the allocation by the input size. */
    if ((size_t)layers > nrows) {
        st = mpq_set_error(MPQ_ERR_FORMAT,
                           "lookup table names layer %ld but has only %zu rows: rows are missing",
                           layers - 1, nrows);
        free(rows);
        return st;
    }
    const size_t total = (size_t)layers * (size_t)bits * (size_t)bits;
    double *lat = malloc(total * sizeof *lat);
    double *en = col_of[COL_EN] >= 0 ? malloc(total * sizeof *en) : NULL;
    size_t *seen = calloc(total, sizeof *seen); /* line that defined the entry, 0 = none */
    if (!lat || !seen || (col_of[COL_EN] >= 0 && !en)) {
        st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "lookup table: out of memory");
        goto done;
    }
    for (size_t i = 0; i < nrows; i++) {
        const size_t idx = ((size_t)rows[i].layer * (size_t)bits + (size_t)(rows[i].w - 1)) *
                               (size_t)bits +
                           (size_t)(rows[i].a - 1);
        if (seen[idx]) {
            st = mpq_set_error(MPQ_ERR_FORMAT,
                               "line %zu: (layer %ld, w %ld, a %ld) repeats line %zu",
                               rows[i].line, rows[i].layer, rows[i].w, rows[i].a, seen[idx]);
            goto done;
        }
        seen[idx] = rows[i].line;
        lat[idx] = rows[i].lat;
        if (en)
            en[idx] = rows[i].en;
    }
    for (size_t idx = 0; idx < total; idx++)
        if (!seen[idx]) {
            const size_t a = idx % (size_t)bits, w = idx / (size_t)bits % (size_t)bits;
            st = mpq_set_error(MPQ_ERR_FORMAT,
                               "lookup table misses the row (layer %zu, w %zu, a %zu): it must "
                               "hold every layer 0..%ld and bits 1..%ld",
                               idx / ((size_t)bits * (size_t)bits), w + 1, a + 1, layers - 1,
                               bits);
            goto done;
        }
    /* A network's total (every layer at its costliest entry, times the largest unit the
     * parameters allow) must stay finite, or the evaluation reports an infinite latency. */
    for (int col = 0; col < 2 && (col == 0 || en); col++) {
        const double *v = col == 0 ? lat : en;
        mpq_param_info info;
        info.size = sizeof info;
        mpq_status ps = mpq_hw_param_info(hw, col == 0 ? MPQ_HW_PARAM_TABLE_UNIT_S
                                                       : MPQ_HW_PARAM_TABLE_ENERGY_UNIT_J,
                                          &info);
        if (ps) {
            st = ps;
            goto done;
        }
        double sum = 0.0, biggest = 0.0;
        size_t biggest_at = 0;
        const size_t per = (size_t)bits * (size_t)bits;
        for (size_t l = 0; l < (size_t)layers; l++) {
            double mx = 0.0;
            for (size_t k = 0; k < per; k++) {
                mx = fmax(mx, v[l * per + k]);
                if (v[l * per + k] > biggest) {
                    biggest = v[l * per + k];
                    biggest_at = seen[l * per + k];
                }
            }
            sum += mx;
        }
        if (!isfinite(sum * info.max_value)) {
            st = mpq_set_error(MPQ_ERR_FORMAT,
                               "line %zu: %s %g is too large: the table's network total times "
                               "%s up to %g would overflow",
                               biggest_at, col_names[COL_LAT + col], biggest, info.name,
                               info.max_value);
            goto done;
        }
    }
    hw->table_layers = (size_t)layers;
    hw->table_bits = (int)bits;
    hw->table_latency = lat;
    hw->table_energy = en;
    lat = en = NULL;
done:
    free(lat);
    free(en);
    free(seen);
    free(rows);
    return st;
}
