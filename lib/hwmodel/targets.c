/* Analytical targets: BISMO (edge, cloud, and AutoQ's Zynq-7020 variant) and BitFusion.
 * The formulas and constants are discussed in ../shared/reference/autoq_hw.md sections 6-7 and
 * in the header; this file only evaluates them, allocation-free. */
#include <math.h>

#include "hwmodel_impl.h"

static inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

int64_t mpq__hw_histogram(const uint8_t *bits, int uniform_bits, int64_t start, int64_t count,
                          int64_t hist[HW_BINS])
{
    for (int b = 0; b < HW_BINS; b++)
        hist[b] = 0;
    if (!bits) {
        hist[uniform_bits] = count;
        return (int64_t)uniform_bits * count;
    }
    /* Four interleaved histograms break the store-to-load dependency on runs of equal widths,
     * which kernel-wise policies mostly are. Widths above the maximum land in the last bin so
     * that validation costs no extra pass. */
    int64_t h4[4][HW_BINS] = {{0}};
    const uint8_t *p = bits + start;
    int64_t i = 0;
#define HW_BIN(v) ((v) > MPQ_BITS_MAX ? MPQ_BITS_MAX + 1 : (v))
    for (; i + 4 <= count; i += 4) {
        h4[0][HW_BIN(p[i])]++;
        h4[1][HW_BIN(p[i + 1])]++;
        h4[2][HW_BIN(p[i + 2])]++;
        h4[3][HW_BIN(p[i + 3])]++;
    }
    for (; i < count; i++)
        h4[0][HW_BIN(p[i])]++;
#undef HW_BIN
    int64_t sum = 0;
    for (int b = 0; b < HW_BINS; b++) {
        hist[b] = h4[0][b] + h4[1][b] + h4[2][b] + h4[3][b];
        sum += (int64_t)b * hist[b];
    }
    return hist[0] || hist[MPQ_BITS_MAX + 1] ? -1 : sum;
}

/* Sum over row tiles of the widest kernel in each tile when the kernels are sorted widest first
 * and cut into tiles of dm (optimal, see the header): tile j starts at sorted position j*dm, so
 * each width class contributes its width once for every tile start it contains. */
static int64_t tile_max_sum(const int64_t hist[HW_BINS], int64_t dm)
{
    int64_t pos = 0, sum = 0;
    for (int b = MPQ_BITS_MAX; b >= 1; b--) {
        int64_t c = hist[b];
        if (!c)
            continue;
        sum += (int64_t)b * (ceil_div(pos + c, dm) - ceil_div(pos, dm));
        pos += c;
    }
    return sum;
}

mpq_status mpq__hw_bismo_layer(const mpq_hw *hw, const hw_geom *g, const uint8_t *bits,
                               int uniform_bits, const int64_t layer_hist[HW_BINS],
                               int64_t layer_sum, int act_bits, mpq_hw_cost *out)
{
    const int64_t dm = (int64_t)hw->param[MPQ_HW_PARAM_DM];
    const int64_t dk = (int64_t)hw->param[MPQ_HW_PARAM_DK];
    const int64_t dn = (int64_t)hw->param[MPQ_HW_PARAM_DN];
    const double rd = hw->param[MPQ_HW_PARAM_READ_BITS];
    const double wr = hw->param[MPQ_HW_PARAM_WRITE_BITS];
    const int64_t a = act_bits;
    const int64_t n = g->batch * g->pixels;
    const int64_t k_tiles = ceil_div(g->k, dk);
    int64_t hist[HW_BINS];
    double exec = 0.0, fetch_bits = 0.0;
    int64_t sum_w = 0;

    if (g->groups > 1 && g->cout == g->groups) {
        /* Depthwise: every channel is its own GEMM with a single LHS row, so the Dm lock-step
         * rows are free to take the kernel's weight bit planes side by side. One pass over the
         * pixels per activation bit, plus (w - 1) cycles to fill the bit-plane pipeline: HAQ's
         * cloud table shows exactly C*a*(ceil(N/16) + w - 1) on its depthwise rows
         * (haq.md section 8.3). Each channel may have its own width; no lock step between them. */
        sum_w = layer_sum;
        double per_a = 0.0;
        for (int b = 1; b <= MPQ_BITS_MAX; b++)
            if (layer_hist[b])
                per_a += (double)layer_hist[b] *
                         (double)(ceil_div(n, dn) * ceil_div(b, dm) + (b - 1));
        exec = (double)k_tiles * (double)a * per_a;
        /* The window is gathered on chip: the input map is read once, weights once. */
        fetch_bits = (double)g->batch * (double)g->cin * (double)g->in_pixels * (double)a +
                     (double)sum_w * (double)g->k;
    } else {
        const int64_t mg = g->cout / g->groups;
        /* The RHS is streamed in blocks of one image's output pixels (at least Dn rows); the
         * weights are streamed once per block. Convolutions thus re-read weights per image
         * (HAQ's cloud table: B*M*w per K tile), a batch of FC rows shares one weight pass
         * (the table's classifier row costs ~M*K*w/256, independent of the batch). */
        const int64_t passes = ceil_div(n, g->pixels > dn ? g->pixels : dn);
        for (int64_t gi = 0; gi < g->groups; gi++) {
            const int64_t *h = layer_hist;
            int64_t sw = layer_sum;
            if (g->groups > 1) {
                sw = mpq__hw_histogram(bits, uniform_bits, gi * mg, mg, hist);
                h = hist;
            }
            sum_w += sw;
            exec += (double)k_tiles * (double)ceil_div(n, dn) * (double)a *
                    (double)tile_max_sum(h, dm);
            fetch_bits += (double)(k_tiles * dk) *
                          ((double)n * (double)a + (double)passes * (double)sw);
        }
    }
    /* Results are requantised on chip to the activation width before write-back (assumption:
     * 32-bit write-back would dominate every pointwise row, which HAQ's table does not show). */
    const double result_bits = (double)g->cout * (double)n * (double)a;
    double cycles = exec;
    if (fetch_bits / rd > cycles)
        cycles = fetch_bits / rd;
    if (result_bits / wr > cycles)
        cycles = result_bits / wr;

    const double binops = 2.0 * (double)n * (double)g->k * (double)sum_w * (double)a;
    const double dram_bits = fetch_bits + result_bits;
    const double latency = cycles / hw->param[MPQ_HW_PARAM_CLOCK_HZ];
    out->cycles = cycles;
    out->latency_s = latency;
    out->binops = binops;
    out->dram_bytes = dram_bits / 8.0;
    out->energy_j = hw->param[MPQ_HW_PARAM_STATIC_POWER_W] * latency +
                    hw->param[MPQ_HW_PARAM_ENERGY_BINOP_J] * binops +
                    hw->param[MPQ_HW_PARAM_ENERGY_DRAM_BIT_J] * dram_bits;
    out->lut = 0.0;
    out->dsp = 0.0;
    out->area_mm2 = NAN;
    out->bram36 = 0.0;
    if (hw->kind == MPQ_HW_ZYNQ7020) {
        /* AutoQ keeps the kernel-wise weights on chip: their bits plus per-kernel metadata
         * (scale + QBN) occupy 36 Kb BRAMs (autoq_hw.md section 9, item 3). */
        const double wbits = (double)sum_w * (double)g->k +
                             (double)g->cout * hw->param[MPQ_HW_PARAM_KERNEL_META_BITS];
        out->bram36 = ceil(wbits / 36864.0);
    }
    return MPQ_OK;
}

void mpq__hw_array_area(const mpq_hw *hw, mpq_hw_cost *area)
{
    area->lut = area->bram36 = area->dsp = area->area_mm2 = NAN;
    if (hw->kind == MPQ_HW_BISMO || hw->kind == MPQ_HW_ZYNQ7020) {
        const double dm = hw->param[MPQ_HW_PARAM_DM], dk = hw->param[MPQ_HW_PARAM_DK];
        const double dn = hw->param[MPQ_HW_PARAM_DN];
        /* BitSerialMatMulParams.estimateResources (EECS-NTNU/bismo). */
        area->lut = dm * dn *
                    (hw->param[MPQ_HW_PARAM_LUT_DPU_A] * dk + hw->param[MPQ_HW_PARAM_LUT_DPU_B] +
                     hw->param[MPQ_HW_PARAM_LUT_RES]);
        area->bram36 = floor(dk / 32.0) *
                       (dm * ceil(hw->param[MPQ_HW_PARAM_BM] / 1024.0) +
                        dn * ceil(hw->param[MPQ_HW_PARAM_BN] / 1024.0));
        area->dsp = 0.0;
    } else if (hw->kind == MPQ_HW_BITFUSION) {
        /* 45 nm areas printed by the bitfusion notebook for bf_e (core 0.888 mm² for 16x32 FUs,
         * WBUF 64 KiB 0.767, IBUF 32 KiB 0.242, OBUF 16 KiB 0.243), scaled linearly (assumption). */
        area->area_mm2 =
            0.888 * hw->param[MPQ_HW_PARAM_BF_ROWS] * hw->param[MPQ_HW_PARAM_BF_COLS] / 512.0 +
            0.767 * hw->param[MPQ_HW_PARAM_WBUF_BYTES] / 65536.0 +
            0.242 * hw->param[MPQ_HW_PARAM_IBUF_BYTES] / 32768.0 +
            0.243 * hw->param[MPQ_HW_PARAM_OBUF_BYTES] / 16384.0;
    }
}
