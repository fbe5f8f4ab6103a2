/* The ::mpq_hw handle: targets, parameters, cost dispatch, results. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hwmodel_impl.h"

/* ---- parameters ---------------------------------------------------------------------------- */

typedef struct hw_param_desc {
    const char *name;
    const char *description;
    double min_value, max_value;
    int is_integer;
} hw_param_desc;

static const hw_param_desc param_desc[MPQ_HW_PARAM_COUNT] = {
    [MPQ_HW_PARAM_DM] = {"dm",
        "BISMO kernels (LHS rows) in lock step; edge 8 (BISMO doc/platforms.md, PYNQ-Z1 "
        "8x256x8), cloud 16 (HAQ Table 1, 16x16 PE array)", 1, 4096, 1},
    [MPQ_HW_PARAM_DK] = {"dk",
        "BISMO popcount width, K bits per cycle; 256 (BISMO PYNQ-Z1 8x256x8; the fit of HAQ's "
        "cloud table in autoq_hw.md 8 uses 256)", 1, 65536, 1},
    [MPQ_HW_PARAM_DN] = {"dn",
        "BISMO output pixels (RHS rows) in parallel; edge 8 (BISMO 8x256x8), cloud 16 (HAQ "
        "Table 1)", 1, 4096, 1},
    [MPQ_HW_PARAM_CLOCK_HZ] = {"clock_hz",
        "accelerator clock; BISMO 200 MHz (BISMO doc/platforms.md; HAQ does not state its "
        "clocks, so cloud 200 MHz is an assumption), BitFusion 500 MHz (bf_e_conf.ini)",
        1e3, 1e11, 0},
    [MPQ_HW_PARAM_READ_BITS] = {"read_bits",
        "DRAM read bits per cycle; edge 64 (one 64-bit HP port, BISMO doc/platforms.md), "
        "cloud 256 (HAQ Table 1: 256-bit AXI), BitFusion 192 (bf_e_conf.ini if_width)",
        1, 1e6, 0},
    [MPQ_HW_PARAM_WRITE_BITS] = {"write_bits",
        "DRAM write bits per cycle; edge 64, cloud 256 (as read_bits)", 1, 1e6, 0},
    [MPQ_HW_PARAM_BATCH] = {"batch",
        "images per run, 0 = the model's batch; edge 1, cloud 16 (HAQ Table 1), BitFusion 1",
        0, 1 << 20, 1},
    [MPQ_HW_PARAM_BM] = {"bm",
        "BISMO LHS buffer depth in entries; 1024 (BISMO BitSerialMatMulParams default)", 1,
        1 << 24, 1},
    [MPQ_HW_PARAM_BN] = {"bn",
        "BISMO RHS buffer depth in entries; 1024 (BISMO BitSerialMatMulParams default)", 1,
        1 << 24, 1},
    [MPQ_HW_PARAM_LUT_DPU_A] = {"lut_dpu_a",
        "LUTs per popcount bit of a BISMO DPU; 1.17 (BISMO v2 estimateResources, commit "
        "ce72afb)", 0, 1e6, 0},
    [MPQ_HW_PARAM_LUT_DPU_B] = {"lut_dpu_b",
        "fixed LUTs of a BISMO DPU; 44.1 (BISMO v2 estimateResources)", 0, 1e6, 0},
    [MPQ_HW_PARAM_LUT_RES] = {"lut_res",
        "LUTs of a BISMO result unit; 120.1 (BISMO estimateResources)", 0, 1e6, 0},
    [MPQ_HW_PARAM_STATIC_POWER_W] = {"static_power_w",
        "power drawn regardless of work; BISMO edge 2 W and cloud 5 W are assumptions (BISMO "
        "states only '< 5 W' for PYNQ-Z1 8x256x8); BitFusion 0 (its simulator has no leakage)",
        0, 1e4, 0},
    [MPQ_HW_PARAM_ENERGY_BINOP_J] = {"energy_binop_j",
        "energy per binary op; 4.58e-13 J = (5 W - 2 W static) / 6.55 Tbinop/s, BISMO "
        "PYNQ-Z1 peak and power claim (placeholder to calibrate)", 0, 1e-6, 0},
    [MPQ_HW_PARAM_ENERGY_DRAM_BIT_J] = {"energy_dram_bit_j",
        "energy per DRAM bit moved; 15 pJ (bitfusion simulator, 15e-3 nJ/bit; applied to the "
        "FPGA boards as an assumption)", 0, 1e-6, 0},
    [MPQ_HW_PARAM_ENERGY_CORE_CYCLE_J] = {"energy_core_cycle_j",
        "BitFusion array dynamic energy per non-stalled cycle; 235.104 pJ for 16x32 FUs "
        "(bitfusion simulator.py: results/systolic_array_synth.csv 4x4 8/2-bit row, 3.6735 mW "
        "at 500 MHz, scaled by N*M/16)", 0, 1e-3, 0},
    [MPQ_HW_PARAM_ENERGY_SRAM_BIT_J] = {"energy_sram_bit_j",
        "on-chip buffer energy per bit accessed (no built-in target uses it since the bitfusion "
        "target takes its per-buffer read/write energies from the simulator's CACTI table)",
        0, 1e-6, 0},
    [MPQ_HW_PARAM_BF_ROWS] = {"bf_rows",
        "BitFusion array rows N (input channels); 16 (BitFusion paper, bf_e_conf.ini)", 1,
        4096, 1},
    [MPQ_HW_PARAM_BF_COLS] = {"bf_cols",
        "BitFusion array columns M (output channels); 32 (BitFusion paper, bf_e_conf.ini)", 1,
        4096, 1},
    [MPQ_HW_PARAM_WBUF_BYTES] = {"wbuf_bytes",
        "BitFusion weight buffer; 64 KiB (bf_e_conf.ini)", 1, 1 << 30, 1},
    [MPQ_HW_PARAM_IBUF_BYTES] = {"ibuf_bytes",
        "BitFusion input buffer; 32 KiB (bf_e_conf.ini)", 1, 1 << 30, 1},
    [MPQ_HW_PARAM_OBUF_BYTES] = {"obuf_bytes",
        "BitFusion output buffer; 16 KiB (bf_e_conf.ini)", 1, 1 << 30, 1},
    [MPQ_HW_PARAM_KERNEL_META_BITS] = {"kernel_meta_bits",
        "on-chip bits per kernel besides its weights: 32-bit scale + 4-bit QBN = 36 "
        "(assumption; AutoQ reports about 0.1% storage overhead)", 0, 4096, 1},
    [MPQ_HW_PARAM_TABLE_UNIT_S] = {"table_unit_s",
        "seconds per table latency unit; 5e-9 assumes cycles of a 200 MHz clock (HAQ does not "
        "document its table's units)", 0, 1e3, 0},
    [MPQ_HW_PARAM_TABLE_ENERGY_UNIT_J] = {"table_energy_unit_j",
        "joules per table energy unit; 1e-3 (mJ, as in APQ's BitFusion table)", 0, 1e3, 0},
    [MPQ_HW_PARAM_REF_WEIGHT_BITS] = {"ref_weight_bits",
        "weight bits of the reference policy; 8 (HAQ's all-8-bit baseline)", 1, 16, 1},
    [MPQ_HW_PARAM_REF_ACT_BITS] = {"ref_act_bits",
        "activation bits of the reference policy; 8 (HAQ's all-8-bit baseline)", 1, 16, 1},
    [MPQ_HW_PARAM_BF_DEPTHWISE] = {"bf_depthwise",
        "grouped and depthwise convolutions, which the bitfusion simulator has no op for: 0 = "
        "fed to it as one dense convolution over all channels (default; how the simulator costs "
        "such a layer given its channel counts), 1 = each group as its own convolution, run one "
        "after another (cheaper for wide depthwise layers)", 0, 1, 1},
};

#define NA NAN
/* Defaults per preset; NaN = the target has no such parameter. Column order follows the enum. */
static const double preset_defaults[HW_PRESET_COUNT][MPQ_HW_PARAM_COUNT] = {
    /*            dm  dk   dn  clock  rd   wr   batch bm    bn    luta  lutb  lutres static
                  e_binop   e_dram  e_core  e_sram  rows cols wbuf ibuf obuf meta unit eunit rw ra
                  bf_depthwise */
    [HW_PRESET_BISMO_EDGE] = {8, 256, 8, 200e6, 64, 64, 1, 1024, 1024, 1.17, 44.1, 120.1, 2.0,
                              3e0 / 6.5536e12, 15e-12, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA,
                              8, 8, NA},
    [HW_PRESET_BISMO_CLOUD] = {16, 256, 16, 200e6, 256, 256, 16, 1024, 1024, 1.17, 44.1, 120.1,
                               5.0, 3e0 / 6.5536e12, 15e-12, NA, NA, NA, NA, NA, NA, NA, NA, NA,
                               NA, 8, 8, NA},
    [HW_PRESET_BITFUSION] = {NA, NA, NA, 500e6, 192, NA, 1, NA, NA, NA, NA, NA, 0.0, NA, 15e-12,
                             235.104e-12, NA, 16, 32, 65536, 32768, 16384, NA, NA, NA, 8, 8, 0},
    [HW_PRESET_ZYNQ7020] = {8, 256, 8, 200e6, 64, 64, 1, 1024, 1024, 1.17, 44.1, 120.1, 2.0,
                            3e0 / 6.5536e12, 15e-12, NA, NA, NA, NA, NA, NA, NA, 36, NA, NA, 8,
                            8, NA},
    [HW_PRESET_TABLE] = {NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA,
                         NA, NA, NA, NA, NA, 5e-9, 1e-3, 8, 8, NA},
    [HW_PRESET_CALLBACK] = {NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA,
                            NA, NA, NA, NA, NA, NA, NA, NA, 8, 8, NA},
};
#undef NA

static const struct {
    const char *name;
    mpq_hw_kind kind;
    hw_preset preset;
} targets[] = {
    {"bismo-edge", MPQ_HW_BISMO, HW_PRESET_BISMO_EDGE},
    {"bismo-cloud", MPQ_HW_BISMO, HW_PRESET_BISMO_CLOUD},
    {"bitfusion", MPQ_HW_BITFUSION, HW_PRESET_BITFUSION},
    {"zynq7020", MPQ_HW_ZYNQ7020, HW_PRESET_ZYNQ7020},
};
#define TARGET_COUNT (sizeof targets / sizeof targets[0])

size_t mpq_hw_target_count(void) { return TARGET_COUNT; }

const char *mpq_hw_target_name(size_t index)
{
    return index < TARGET_COUNT ? targets[index].name : NULL;
}

static mpq_status hw_alloc(mpq_hw **out, mpq_hw_kind kind, hw_preset preset)
{
    mpq_hw *h = calloc(1, sizeof *h);
    if (!h)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_hw: out of memory");
    h->kind = kind;
    h->preset = preset;
    for (int i = 0; i < MPQ_HW_PARAM_COUNT; i++) {
        h->param[i] = preset_defaults[preset][i];
        h->supported[i] = !isnan(preset_defaults[preset][i]);
    }
    *out = h;
    return MPQ_OK;
}

mpq_status mpq_hw_create(mpq_hw **out, const char *name)
{
    if (!out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hw_create: out is NULL");
    *out = NULL;
    if (!name)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hw_create: name is NULL");
    for (size_t i = 0; i < TARGET_COUNT; i++)
        if (strcmp(name, targets[i].name) == 0)
            return hw_alloc(out, targets[i].kind, targets[i].preset);
    return mpq_set_error(MPQ_ERR_NOT_FOUND,
                         "mpq_hw_create: unknown hardware '%s' (valid: bismo-edge, bismo-cloud, "
                         "bitfusion, zynq7020)",
                         name);
}

mpq_status mpq_hw_create_table_from_memory(mpq_hw **out, const char *text, size_t length)
{
    if (!out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hw_create_table: out is NULL");
    *out = NULL;
    if (!text)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hw_create_table: text is NULL");
    mpq_hw *h = NULL;
    mpq_status st = hw_alloc(&h, MPQ_HW_TABLE, HW_PRESET_TABLE);
    if (st)
        return st;
    st = mpq__hw_table_parse(h, text, length);
    if (st) {
        mpq_hw_destroy(h);
        return st;
    }
    *out = h;
    return MPQ_OK;
}

mpq_status mpq_hw_create_table(mpq_hw **out, const char *path)
{
    if (!out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hw_create_table: out is NULL");
    *out = NULL;
    if (!path)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hw_create_table: path is NULL");
    void *data = NULL;
    size_t size = 0;
    mpq_status st = mpq_read_file(path, &data, &size);
    if (st)
        return st;
    st = mpq_hw_create_table_from_memory(out, data, size);
    mpq_free(data);
    if (st) {
        /* Prefix the file name without losing the parser's detail. */
        char detail[900];
        snprintf(detail, sizeof detail, "%s", mpq_last_error());
        return mpq_set_error(st, "%s: %s", path, detail);
    }
    return MPQ_OK;
}

mpq_status mpq_hw_create_callback(mpq_hw **out, mpq_hw_layer_fn fn, void *user)
{
    if (!out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hw_create_callback: out is NULL");
    *out = NULL;
    if (!fn)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hw_create_callback: fn is NULL");
    mpq_status st = hw_alloc(out, MPQ_HW_CALLBACK, HW_PRESET_CALLBACK);
    if (st)
        return st;
    (*out)->fn = fn;
    (*out)->user = user;
    return MPQ_OK;
}

void mpq_hw_destroy(mpq_hw *hw)
{
    if (!hw)
        return;
    free(hw->table_latency);
    free(hw->table_energy);
    free(hw->cache);
    mpq__bf_memo_free(hw);
    free(hw);
}

mpq_status mpq_hw_clone(mpq_hw **out, const mpq_hw *hw)
{
    if (!out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hw_clone: out is NULL");
    *out = NULL;
    if (!hw)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hw_clone: hw is NULL");
    mpq_hw *c = malloc(sizeof *c);
    if (!c)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_hw_clone: out of memory");
    *c = *hw;
    c->table_latency = c->table_energy = NULL;
    c->cache = NULL;
    /* The copy starts with an empty memo: it refills with the same values. */
    c->bf_memo = NULL;
    const size_t tcount = hw->table_layers * (size_t)hw->table_bits * (size_t)hw->table_bits;
    int fail = 0;
    if (hw->table_latency) {
        c->table_latency = malloc(tcount * sizeof(double));
        fail |= !c->table_latency;
        if (c->table_latency)
            memcpy(c->table_latency, hw->table_latency, tcount * sizeof(double));
    }
    if (hw->table_energy) {
        c->table_energy = malloc(tcount * sizeof(double));
        fail |= !c->table_energy;
        if (c->table_energy)
            memcpy(c->table_energy, hw->table_energy, tcount * sizeof(double));
    }
    if (hw->cache) {
        const size_t n = hw->cache_layers * MPQ_BITS_MAX * MPQ_BITS_MAX;
        c->cache = malloc(n * sizeof *c->cache);
        fail |= !c->cache;
        if (c->cache)
            memcpy(c->cache, hw->cache, n * sizeof *c->cache);
    }
    if (fail) {
        mpq_hw_destroy(c);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_hw_clone: out of memory");
    }
    *out = c;
    return MPQ_OK;
}

const char *mpq_hw_get_name(const mpq_hw *hw)
{
    if (!hw) {
        mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hw_get_name: hw is NULL");
        return NULL;
    }
    if (hw->kind == MPQ_HW_TABLE)
        return "table";
    if (hw->kind == MPQ_HW_CALLBACK)
        return "callback";
    for (size_t i = 0; i < TARGET_COUNT; i++)
        if (targets[i].preset == hw->preset)
            return targets[i].name;
    return "";
}

mpq_status mpq_hw_get_kind(const mpq_hw *hw, mpq_hw_kind *kind)
{
    if (!hw || !kind)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hw_get_kind: %s is NULL",
                             hw ? "kind" : "hw");
    *kind = hw->kind;
    return MPQ_OK;
}

mpq_status mpq_hw_clear_cache(mpq_hw *hw)
{
    if (!hw)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hw_clear_cache: hw is NULL");
    free(hw->cache);
    hw->cache = NULL;
    hw->cache_layers = 0;
    hw->cache_model[0] = '\0';
    mpq__bf_memo_free(hw);
    return MPQ_OK;
}

static mpq_status param_check(const mpq_hw *hw, mpq_hw_param id, const char *fn)
{
    if (!hw)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: hw is NULL", fn);
    if ((unsigned)id >= MPQ_HW_PARAM_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: parameter id %d outside 0..%d", fn,
                             (int)id, MPQ_HW_PARAM_COUNT - 1);
    if (!hw->supported[id])
        return mpq_set_error(MPQ_ERR_UNSUPPORTED, "%s: target '%s' has no parameter '%s'", fn,
                             mpq_hw_get_name(hw), param_desc[id].name);
    return MPQ_OK;
}

mpq_status mpq_hw_param_info(const mpq_hw *hw, mpq_hw_param id, mpq_param_info *info)
{
    mpq_param_info own = {0};
    mpq_status st = param_check(hw, id, "mpq_hw_param_info");
    if (st)
        return st;
    own.name = param_desc[id].name;
    own.description = param_desc[id].description;
    own.min_value = param_desc[id].min_value;
    own.max_value = param_desc[id].max_value;
    own.default_value = preset_defaults[hw->preset][id];
    own.is_integer = param_desc[id].is_integer;
    return mpq_struct_copy_out(info, &own, sizeof own, "mpq_hw_param_info: info");
}

mpq_status mpq_hw_param_find(const char *name, mpq_hw_param *id)
{
    if (!name || !id)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hw_param_find: %s is NULL",
                             name ? "id" : "name");
    for (int i = 0; i < MPQ_HW_PARAM_COUNT; i++)
        if (strcmp(name, param_desc[i].name) == 0) {
            *id = (mpq_hw_param)i;
            return MPQ_OK;
        }
    char list[1024];
    size_t used = 0;
    list[0] = '\0';
    for (int i = 0; i < MPQ_HW_PARAM_COUNT && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                 param_desc[i].name);
    return mpq_set_error(MPQ_ERR_NOT_FOUND, "mpq_hw_param_find: unknown parameter '%s' (valid: %s)",
                         name, list);
}

mpq_status mpq_hw_set_param(mpq_hw *hw, mpq_hw_param id, double value)
{
    mpq_status st = param_check(hw, id, "mpq_hw_set_param");
    if (st)
        return st;
    const hw_param_desc *d = &param_desc[id];
    if (isnan(value) || value < d->min_value || value > d->max_value)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_hw_set_param: %s = %g outside [%g, %g]", d->name, value,
                             d->min_value, d->max_value);
    if (d->is_integer && value != floor(value))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_hw_set_param: %s = %g must be an integer", d->name, value);
    hw->param[id] = value;
    if (hw->cache || hw->bf_memo)
        mpq_hw_clear_cache(hw);
    return MPQ_OK;
}

mpq_status mpq_hw_set_param_by_name(mpq_hw *hw, const char *name, double value)
{
    mpq_hw_param id;
    mpq_status st = mpq_hw_param_find(name, &id);
    if (st)
        return st;
    return mpq_hw_set_param(hw, id, value);
}

mpq_status mpq_hw_get_param(const mpq_hw *hw, mpq_hw_param id, double *value)
{
    mpq_status st = param_check(hw, id, "mpq_hw_get_param");
    if (st)
        return st;
    if (!value)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hw_get_param: value is NULL");
    *value = hw->param[id];
    return MPQ_OK;
}

/* ---- cost dispatch ------------------------------------------------------------------------ */

static void cost_nan(mpq_hw_cost *c)
{
    c->size = sizeof *c;
    c->latency_s = c->energy_j = c->cycles = NAN;
    c->lut = c->bram36 = c->dsp = c->area_mm2 = NAN;
    c->size_bytes = c->dram_bytes = c->binops = NAN;
}

static void cost_zero(mpq_hw_cost *c)
{
    memset(c, 0, sizeof *c);
    c->size = sizeof *c;
}

static void cost_add(mpq_hw_cost *t, const mpq_hw_cost *c)
{
    t->latency_s += c->latency_s;
    t->energy_j += c->energy_j;
    t->cycles += c->cycles;
    t->lut += c->lut;
    t->bram36 += c->bram36;
    t->dsp += c->dsp;
    t->area_mm2 += c->area_mm2;
    t->size_bytes += c->size_bytes;
    t->dram_bytes += c->dram_bytes;
    t->binops += c->binops;
}

static void cost_add_scaled(mpq_hw_cost *t, const mpq_hw_cost *c, double s)
{
    t->latency_s += s * c->latency_s;
    t->energy_j += s * c->energy_j;
    t->cycles += s * c->cycles;
    t->lut += s * c->lut;
    t->bram36 += s * c->bram36;
    t->dsp += s * c->dsp;
    t->area_mm2 += s * c->area_mm2;
    t->dram_bytes += s * c->dram_bytes;
    t->binops += s * c->binops;
}

static mpq_status cost_out_check(const mpq_hw_cost *c, const char *fn, const char *arg)
{
    /* Validated before the work so that a bad struct is refused up front; the result is written
     * with mpq_struct_copy_out(), min(caller size, own size) bytes. */
    if (!c)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, arg);
    if (c->size < sizeof(size_t) || c->size > MPQ_STRUCT_SIZE_LIMIT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "%s: %s->size is %zu; set it to sizeof(mpq_hw_cost)", fn, arg,
                             c->size);
    return MPQ_OK;
}

static mpq_status table_layer(const mpq_hw *hw, size_t layer, const int64_t hist[HW_BINS],
                              int64_t kernels, int a, mpq_hw_cost *out)
{
    const int tb = hw->table_bits;
    if (a > tb)
        return mpq_set_error(MPQ_ERR_UNSUPPORTED,
                             "layer %zu: activation bits %d, the table holds 1..%d", layer, a, tb);
    cost_zero(out);
    out->cycles = 0.0;
    for (int b = 1; b <= MPQ_BITS_MAX; b++) {
        if (!hist[b])
            continue;
        if (b > tb)
            return mpq_set_error(MPQ_ERR_UNSUPPORTED,
                                 "layer %zu: weight bits %d, the table holds 1..%d", layer, b, tb);
        const size_t idx = (layer * (size_t)tb + (size_t)(b - 1)) * (size_t)tb + (size_t)(a - 1);
        const double share = (double)hist[b] / (double)kernels;
        out->cycles += share * hw->table_latency[idx];
        if (hw->table_energy)
            out->energy_j += share * hw->table_energy[idx];
    }
    out->latency_s = out->cycles * hw->param[MPQ_HW_PARAM_TABLE_UNIT_S];
    out->energy_j = hw->table_energy ? out->energy_j * hw->param[MPQ_HW_PARAM_TABLE_ENERGY_UNIT_J]
                                     : NAN;
    /* Table units are not necessarily cycles. */
    out->cycles = NAN;
    out->lut = out->bram36 = out->dsp = out->area_mm2 = NAN;
    out->dram_bytes = out->binops = NAN;
    return MPQ_OK;
}

static mpq_status callback_layer(mpq_hw *hw, const mpq_model *m, size_t layer,
                                 const int64_t hist[HW_BINS], int64_t kernels, int a,
                                 mpq_hw_cost *out)
{
    const size_t layers = mpq_model_get_layer_count(m);
    const char *name = mpq_model_get_name(m);
    if (!name)
        name = "";
    if (!hw->cache || hw->cache_layers != layers || strcmp(hw->cache_model, name) != 0) {
        mpq_hw_clear_cache(hw);
        hw->cache = calloc(layers * MPQ_BITS_MAX * MPQ_BITS_MAX, sizeof *hw->cache);
        if (!hw->cache)
            return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "hardware callback: out of memory");
        hw->cache_layers = layers;
        snprintf(hw->cache_model, sizeof hw->cache_model, "%s", name);
    }
    cost_zero(out);
    for (int b = 1; b <= MPQ_BITS_MAX; b++) {
        if (!hist[b])
            continue;
        hw_cache_entry *e =
            &hw->cache[(layer * MPQ_BITS_MAX + (size_t)(b - 1)) * MPQ_BITS_MAX + (size_t)(a - 1)];
        if (!e->valid) {
            mpq_hw_cost c;
            cost_nan(&c);
            mpq_status st = hw->fn(hw->user, m, layer, b, a, &c);
            if (st) {
                char detail[900];
                snprintf(detail, sizeof detail, "%s", mpq_last_error());
                return mpq_set_error(MPQ_ERR_CALLBACK,
                                     "hardware callback failed on layer %zu (w=%d, a=%d): %s: %s",
                                     layer, b, a, mpq_status_string(st), detail);
            }
            if (isnan(c.latency_s) || c.latency_s < 0 || !(c.energy_j >= 0 || isnan(c.energy_j)))
                return mpq_set_error(MPQ_ERR_CALLBACK,
                                     "hardware callback on layer %zu (w=%d, a=%d) returned "
                                     "latency %g s, energy %g J (need latency >= 0)",
                                     layer, b, a, c.latency_s, c.energy_j);
            c.size = sizeof c;
            e->cost = c;
            e->valid = 1;
        }
        cost_add_scaled(out, &e->cost, (double)hist[b] / (double)kernels);
    }
    return MPQ_OK;
}

/* Validates bits, builds the geometry and dispatches to the target. bits NULL = every kernel
 * uniform_bits. */
static mpq_status layer_cost_impl(mpq_hw *hw, const mpq_model *m, size_t layer,
                                  const mpq_layer_shape *s, const uint8_t *bits, int uniform_bits,
                                  int a, mpq_hw_cost *out)
{
    const int64_t kernels = s->out_channels;
    if (a < MPQ_BITS_MIN || a > MPQ_BITS_MAX)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "layer %zu: activation bits %d outside %d..%d", layer, a,
                             MPQ_BITS_MIN, MPQ_BITS_MAX);
    if (!bits && (uniform_bits < MPQ_BITS_MIN || uniform_bits > MPQ_BITS_MAX))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "layer %zu: weight bits %d outside %d..%d",
                             layer, uniform_bits, MPQ_BITS_MIN, MPQ_BITS_MAX);
    int64_t hist[HW_BINS];
    const int64_t sum = mpq__hw_histogram(bits, uniform_bits, 0, kernels, hist);
    if (sum < 0) {
        for (int64_t k = 0; k < kernels; k++)
            if (bits[k] < MPQ_BITS_MIN || bits[k] > MPQ_BITS_MAX)
                return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                                     "layer %zu kernel %lld: weight bits %d outside %d..%d", layer,
                                     (long long)k, bits[k], MPQ_BITS_MIN, MPQ_BITS_MAX);
    }
    hw_geom g;
    g.is_fc = s->kind == MPQ_LAYER_FC;
    g.cin = s->in_channels;
    g.cout = s->out_channels;
    g.groups = s->groups > 0 ? s->groups : 1;
    g.khw = (int64_t)s->kernel_h * s->kernel_w;
    g.k = g.cin / g.groups * g.khw;
    g.pixels = (int64_t)s->out_h * s->out_w;
    g.in_pixels = (int64_t)s->in_h * s->in_w;
    if (g.is_fc)
        g.pixels = g.in_pixels = 1;
    g.batch = s->batch > 0 ? s->batch : 1;
    g.kh = g.is_fc ? 1 : s->kernel_h;
    g.kw = g.is_fc ? 1 : s->kernel_w;
    g.oh = g.is_fc ? 1 : s->out_h;
    g.ow = g.is_fc ? 1 : s->out_w;
    g.sh = g.is_fc ? 1 : s->stride_h;
    g.sw = g.is_fc ? 1 : s->stride_w;
    g.first = layer == 0;
    if (hw->supported[MPQ_HW_PARAM_BATCH] && hw->param[MPQ_HW_PARAM_BATCH] > 0)
        g.batch = (int64_t)hw->param[MPQ_HW_PARAM_BATCH];

    mpq_hw_cost c;
    mpq_status st = MPQ_OK;
    switch (hw->kind) {
    case MPQ_HW_BISMO:
    case MPQ_HW_ZYNQ7020:
        st = mpq__hw_bismo_layer(hw, &g, bits, uniform_bits, hist, sum, a, &c);
        break;
    case MPQ_HW_BITFUSION:
        st = mpq__hw_bitfusion_layer(hw, &g, bits, uniform_bits, hist, sum, a, &c);
        break;
    case MPQ_HW_TABLE:
        if (mpq_model_get_layer_count(m) != hw->table_layers)
            return mpq_set_error(MPQ_ERR_MISMATCH,
                                 "lookup table has %zu layers, model '%s' has %zu",
                                 hw->table_layers, mpq_model_get_name(m), mpq_model_get_layer_count(m));
        st = table_layer(hw, layer, hist, kernels, a, &c);
        break;
    case MPQ_HW_CALLBACK:
        st = callback_layer(hw, m, layer, hist, kernels, a, &c);
        break;
    default:
        return mpq_set_error(MPQ_ERR_INTERNAL, "mpq_hw: damaged handle (kind %d)", (int)hw->kind);
    }
    if (st)
        return st;
    c.size = sizeof c;
    c.size_bytes = (double)sum * (double)g.k / 8.0;
    *out = c;
    return MPQ_OK;
}

static mpq_status layer_shape(const mpq_model *m, size_t layer, mpq_layer_shape *s)
{
    memset(s, 0, sizeof *s);
    s->size = sizeof *s;
    return mpq_model_get_layer_shape(m, layer, s);
}

mpq_status mpq_hw_layer_cost(mpq_hw *hw, const mpq_model *model, size_t layer,
                             const uint8_t *kernel_bits, int64_t kernel_count, int act_bits,
                             mpq_hw_cost *cost)
{
    static const char fn[] = "mpq_hw_layer_cost";
    if (!hw || !model || !kernel_bits)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                             !hw ? "hw" : !model ? "model" : "kernel_bits");
    mpq_status st = cost_out_check(cost, fn, "cost");
    if (st)
        return st;
    if (layer >= mpq_model_get_layer_count(model))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: layer %zu >= layer count %zu", fn,
                             layer, mpq_model_get_layer_count(model));
    mpq_layer_shape s;
    if ((st = layer_shape(model, layer, &s)))
        return st;
    if (kernel_count != s.out_channels)
        return mpq_set_error(MPQ_ERR_MISMATCH, "%s: layer %zu has %d kernels, kernel_count is %lld",
                             fn, layer, s.out_channels, (long long)kernel_count);
    mpq_hw_cost c;
    if ((st = layer_cost_impl(hw, model, layer, &s, kernel_bits, 0, act_bits, &c)))
        return st;
    return mpq_struct_copy_out(cost, &c, sizeof c, "mpq_hw_layer_cost: cost");
}

/* Costs every layer; per-layer results go to layers[] when not NULL. policy NULL = reference. */
static mpq_status network_cost(mpq_hw *hw, const mpq_model *m, const mpq_policy *p,
                               mpq_hw_cost *layers, mpq_hw_cost *total)
{
    const size_t n = mpq_model_get_layer_count(m);
    mpq_status st;
    if (p && (st = mpq_policy_check_model(p, m)))
        return st;
    const int ref_w = (int)hw->param[MPQ_HW_PARAM_REF_WEIGHT_BITS];
    const int ref_a = (int)hw->param[MPQ_HW_PARAM_REF_ACT_BITS];
    mpq_hw_cost t;
    cost_zero(&t);
    for (size_t i = 0; i < n; i++) {
        mpq_layer_shape s;
        if ((st = layer_shape(m, i, &s)))
            return st;
        const uint8_t *bits = NULL;
        int a = ref_a;
        if (p) {
            int64_t count = 0;
            if ((st = mpq_policy_get_weight_bits(p, i, &bits, &count)) ||
                (st = mpq_policy_get_act_bits(p, i, &a)))
                return st;
            if (count != s.out_channels)
                return mpq_set_error(MPQ_ERR_MISMATCH,
                                     "layer %zu: policy has %lld kernels, model has %d", i,
                                     (long long)count, s.out_channels);
        }
        mpq_hw_cost c;
        if ((st = layer_cost_impl(hw, m, i, &s, bits, ref_w, a, &c)))
            return st;
        if (layers)
            layers[i] = c;
        cost_add(&t, &c);
    }
    mpq_hw_cost area;
    mpq__hw_array_area(hw, &area);
    t.lut += area.lut;
    t.bram36 += area.bram36;
    t.dsp += area.dsp;
    t.area_mm2 += area.area_mm2;
    *total = t;
    return MPQ_OK;
}

static mpq_status net_args(const mpq_hw *hw, const mpq_model *m, const void *p, const char *fn)
{
    if (!hw || !m || !p)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                             !hw ? "hw" : !m ? "model" : "policy");
    return MPQ_OK;
}

mpq_status mpq_hw_cost_total(mpq_hw *hw, const mpq_model *model, const mpq_policy *policy,
                             mpq_hw_cost *total)
{
    static const char fn[] = "mpq_hw_cost_total";
    mpq_status st = net_args(hw, model, policy, fn);
    if (st || (st = cost_out_check(total, fn, "total")))
        return st;
    mpq_hw_cost t;
    if ((st = network_cost(hw, model, policy, NULL, &t)))
        return st;
    return mpq_struct_copy_out(total, &t, sizeof t, "mpq_hw_cost_total: total");
}

mpq_status mpq_hw_reference_total(mpq_hw *hw, const mpq_model *model, mpq_hw_cost *total)
{
    static const char fn[] = "mpq_hw_reference_total";
    mpq_status st = net_args(hw, model, "", fn);
    if (st || (st = cost_out_check(total, fn, "total")))
        return st;
    mpq_hw_cost t;
    if ((st = network_cost(hw, model, NULL, NULL, &t)))
        return st;
    return mpq_struct_copy_out(total, &t, sizeof t, "mpq_hw_reference_total: total");
}

/* ---- results -------------------------------------------------------------------------------- */

struct mpq_hw_result {
    size_t count, capacity;
    mpq_hw_cost *layers;     /* [capacity] */
    mpq_hw_cost *ref_layers; /* [capacity] */
    mpq_hw_cost total, ref_total;
};

mpq_status mpq_hw_result_create(mpq_hw_result **out)
{
    if (!out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hw_result_create: out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_hw_result_create: out of memory");
    return MPQ_OK;
}

void mpq_hw_result_destroy(mpq_hw_result *r)
{
    if (!r)
        return;
    free(r->layers);
    free(r->ref_layers);
    free(r);
}

mpq_status mpq_hw_evaluate(mpq_hw *hw, const mpq_model *model, const mpq_policy *policy,
                           mpq_hw_result *result)
{
    static const char fn[] = "mpq_hw_evaluate";
    mpq_status st = net_args(hw, model, policy, fn);
    if (st)
        return st;
    if (!result)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: result is NULL", fn);
    result->count = 0;
    const size_t n = mpq_model_get_layer_count(model);
    if (n > result->capacity) {
        mpq_hw_cost *a = realloc(result->layers, n * sizeof *a);
        if (a)
            result->layers = a;
        mpq_hw_cost *b = a ? realloc(result->ref_layers, n * sizeof *b) : NULL;
        if (b)
            result->ref_layers = b;
        if (!a || !b)
            return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu layers", fn,
                                 n);
        result->capacity = n;
    }
    if ((st = network_cost(hw, model, policy, result->layers, &result->total)) ||
        (st = network_cost(hw, model, NULL, result->ref_layers, &result->ref_total)))
        return st;
    result->count = n;
    return MPQ_OK;
}

size_t mpq_hw_result_get_layer_count(const mpq_hw_result *r)
{
    if (!r) {
        mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hw_result_get_layer_count: result is NULL");
        return 0;
    }
    return r->count;
}

static mpq_status result_get(const mpq_hw_result *r, const mpq_hw_cost *src, size_t layer,
                             int per_layer, mpq_hw_cost *cost, const char *fn)
{
    if (!r)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: r is NULL", fn);
    mpq_status st = cost_out_check(cost, fn, "cost");
    if (st)
        return st;
    if (r->count == 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: the result is empty", fn);
    if (per_layer && layer >= r->count)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: layer %zu >= layer count %zu", fn,
                             layer, r->count);
    return mpq_struct_copy_out(cost, per_layer ? &src[layer] : src, sizeof *cost, fn);
}

mpq_status mpq_hw_result_get_layer(const mpq_hw_result *r, size_t layer, mpq_hw_cost *cost)
{
    return result_get(r, r ? r->layers : NULL, layer, 1, cost, "mpq_hw_result_get_layer");
}

mpq_status mpq_hw_result_get_reference_layer(const mpq_hw_result *r, size_t layer,
                                         mpq_hw_cost *cost)
{
    return result_get(r, r ? r->ref_layers : NULL, layer, 1, cost,
                      "mpq_hw_result_get_reference_layer");
}

mpq_status mpq_hw_result_get_total(const mpq_hw_result *r, mpq_hw_cost *cost)
{
    return result_get(r, r ? &r->total : NULL, 0, 0, cost, "mpq_hw_result_get_total");
}

mpq_status mpq_hw_result_get_reference_total(const mpq_hw_result *r, mpq_hw_cost *cost)
{
    return result_get(r, r ? &r->ref_total : NULL, 0, 0, cost,
                      "mpq_hw_result_get_reference_total");
}

static double ratio(double a, double b) { return (b == 0.0 || isnan(b)) ? NAN : a / b; }

mpq_status mpq_hw_result_get_ratio(const mpq_hw_result *r, mpq_hw_cost *out)
{
    mpq_hw_cost t;
    t.size = sizeof t;
    mpq_status st = mpq_hw_result_get_total(r, &t);
    if (st)
        return st;
    const mpq_hw_cost *f = &r->ref_total;
    t.latency_s = ratio(t.latency_s, f->latency_s);
    t.energy_j = ratio(t.energy_j, f->energy_j);
    t.cycles = ratio(t.cycles, f->cycles);
    t.lut = ratio(t.lut, f->lut);
    t.bram36 = ratio(t.bram36, f->bram36);
    t.dsp = ratio(t.dsp, f->dsp);
    t.area_mm2 = ratio(t.area_mm2, f->area_mm2);
    t.size_bytes = ratio(t.size_bytes, f->size_bytes);
    t.dram_bytes = ratio(t.dram_bytes, f->dram_bytes);
    t.binops = ratio(t.binops, f->binops);
    *out = t;
    return MPQ_OK;
}
