/* `mpq search`: runs a policy search (HAQ, AutoQ, uniform, random, greedy) and writes its
 * history, best policy and Pareto fronts; `mpq search --demo` runs the README's comparison. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#ifdef MPQ_HAVE_MPI
#include <mpi.h>
#include <mpq/dist.h>
#endif

#define MAX_SETS 64
#define MAX_BUDGETS 16
/* The demo's default budget: where the methods differ (the sweep in docs/guide.md; at 0.5 they
 * tie within 0.4 points). */
#define DEMO_BUDGET "latency:0.3"
/* The demo's --methods: check_demo_method() refuses unknown and repeated names, so a list is at
 * most as long as the library's method table (6 today; the enum carries no count). */
#define MAX_METHODS 16

static void search_usage(FILE *out)
{
    fprintf(out,
            "Usage: mpq search [OPTIONS]\n"
            "       mpq search --demo [OPTIONS]\n"
            "\n"
            "Search a mixed-precision quantization policy under a hardware budget.\n"
            "\n"
            "Options:\n"
            "  -m, --method NAME      haq (default), autoq, uniform, random, greedy or ilp\n"
            "  -M, --model NAME       fashion-cnn (default) or fashion-tiny: real accuracy from the\n"
            "                         built-in oneDNN evaluator on Fashion-MNIST (trained and cached\n"
            "                         on first use); a saved network file (.mpqnet) or an ONNX model\n"
            "                         (.onnx, trained weights; --data gives its IDX images); or a zoo model\n"
            "                         (resnet18, resnet50, mobilenetv1, mobilenetv2, squeezenet1_0,\n"
            "                         squeezenet1_1) with a closed-form PROXY accuracy, clearly\n"
            "                         labelled as such, for trying the search without data\n"
            "      --hw NAME          hardware model (default zynq7020; also bismo-edge,\n"
            "                         bismo-cloud, bitfusion)\n"
            "  -b, --budget R:F       resource budget, R in latency|energy|area|size, F in (0,1) a\n"
            "                         fraction of the all-8-bit policy (default latency:0.5;\n"
            "                         the demo's latency:0.3)\n"
            "      --objective O      resource (default: best accuracy within the budget) or\n"
            "                         accuracy (AutoQ's psi-weighted reward, no budget)\n"
            "  -e, --episodes N       episodes >= 1 (default: the method's, HAQ 600, AutoQ 400); a\n"
            "                         shorter run rescales the noise decay (and AutoQ's constant-\n"
            "                         noise quarter) so that exploration ends as in the papers\n"
            "  -s, --seed N           seed (default 234, HAQ's)\n"
            "  -o, --out DIR          output directory (default mpq-search-out)\n"
            "  -d, --data DIR         Fashion-MNIST IDX directory (default %s)\n"
            "      --cache DIR        where trained networks are cached (default\n"
            "                         $XDG_CACHE_HOME/mpq or ~/.cache/mpq)\n"
            "      --set NAME=VALUE   search parameter (repeatable; see --list-params)\n"
            "      --eval-set NAME=VALUE  evaluator parameter (finetune_batches, bn_batches,\n"
            "                         limit, ...)\n"
            "      --finetune-epochs N  fine-tune the best policy for N epochs and report its test\n"
            "                         top-1 (default 0: report the search's validation figure)\n"
            "      --checkpoint-every N  write DIR/checkpoint.mpq every N episodes (default 10)\n"
            "      --resume           continue from DIR/checkpoint.mpq with the checkpoint's\n"
            "                         settings; -e N sets a new episode target, which extends a\n"
            "                         finished run (its noise schedule stays the original's);\n"
            "                         -b, --objective, -s or --set other than the checkpoint's\n"
            "                         are refused\n"
            "      --time-limit S     stop cleanly after S seconds with the best policy so far\n"
            "      --rescore N        score the N best distinct policies again on the whole\n"
            "                         validation split and keep the best of them, written to\n"
            "                         DIR/final_policy.json (default 5 for the demo, else 0)\n"
            "      --workers W        local (default) or mpi: under mpirun -np N rank 0 runs the\n"
            "                         search, ranks 1..N-1 evaluate policies (each loads its own\n"
            "                         copy of the network and data); needs a build with MPI\n"
            "      --worker-timeout S seconds rank 0 waits for one evaluation (default 3600)\n"
            "      --eval-delay MS    pad every evaluation with MS milliseconds of sleep (emulates\n"
            "                         slow evaluations: scaling measurements, docs/scaling.md)\n"
            "      --eval-fail SPEC   fault injection for tests: the evaluator fails (MPQ_ERR_IO) on\n"
            "                         the policy SPEC (uniform:W,A or a policy file)\n"
            "      --list-params      list the search parameters with defaults and sources\n"
            "  -q, --quiet            no progress bar\n"
            "  -h, --help             show this help and exit\n",
            MPQ_FASHION_MNIST_DIR);
    /* two strings: C11 compilers need only accept 4095 characters in one */
    fprintf(out,
            "\n"
            "Demo (--demo): trains fashion-cnn if no cached network exists, runs uniform, greedy,\n"
            "HAQ and AutoQ under one budget (default latency:0.3 of all-8-bit on zynq7020), fine-\n"
            "tunes each best policy and prints one table. Demo options:\n"
            "      --demo             run the demo\n"
            "      --methods LIST     comma-separated methods (default uniform,greedy,ilp,haq,autoq)\n"
            "      --demo-episodes N  episodes for HAQ and AutoQ (default 100; greedy is capped at\n"
            "                         3 N evaluations, uniform plays its 49 pairs)\n"
            "      --demo-finetune N  final fine-tune epochs per best policy (default 1)\n"
            "                         search episodes are scored on 2000 validation images\n"
            "                         (--eval-set limit=0 for all 5000) after re-estimating BN\n"
            "                         statistics on 4 training batches (bn_batches=0: without)\n"
            "      --budgets [R:]F,F,...  a budget sweep: the methods at each fraction F of\n"
            "                         resource R (default latency), in increasing order, the\n"
            "                         trained network reused; one table, DIR/summary.csv with a\n"
            "                         budget column, DIR/sweep.svg (test top-1 against budget),\n"
            "                         per budget DIR/R-F/METHOD and DIR/R-F/pareto.svg\n"
            "The demo's budget wall treats the first and last layer like the others\n"
            "(first_last=0); --set first_last=1 restores HAQ's forcing of them to 8 bit.\n"
            "\n"
            "Files written to DIR (per method in DIR/METHOD for the demo): history.csv (every\n"
            "episode), best_policy.json, pareto.csv and pareto.svg (accuracy against latency,\n"
            "energy and size), checkpoint.mpq; the demo adds DIR/summary.csv. A new run first\n"
            "moves these files of an earlier run to DIR/previous-run/ (--resume keeps the\n"
            "checkpoint in place).\n"
            "Every output directory is checked writable before any work.\n"
            "Exit status: 0 success, 1 the library reported an error, 2 usage error.\n");
}

/* ---- options ------------------------------------------------------------------------------ */

typedef struct kv {
    char name[64];
    double value;
} kv;

typedef struct options {
    const char *method, *model, *hw, *budget, *objective, *out, *data, *cache, *methods;
    long long episodes, seed, finetune_epochs, checkpoint_every, demo_episodes, demo_finetune;
    long long rescore; /* -1: the default (demo 5, else 0) */
    double time_limit;
    int resume, quiet, demo;
    int workers_mpi;         /* --workers mpi */
    double worker_timeout;   /* --worker-timeout */
    long long eval_delay_ms; /* --eval-delay */
    const char *eval_fail;   /* --eval-fail */
    int worker;              /* an MPI worker rank: says nothing rank 0 says already */
    /* given on the command line, not defaults: a resumed run compares them with its checkpoint */
    int budget_given, objective_given, seed_given;
    /* options of one kind of run only: "-m" for a single search, "--methods" for the demo */
    const char *single_only, *demo_only;
    kv sets[MAX_SETS], eval_sets[MAX_SETS];
    int nsets, neval_sets;
    /* --budgets: a sweep over these fractions of one resource (nbudgets 0: one budget, -b) */
    const char *budgets;
    double budget_list[MAX_BUDGETS];
    int nbudgets;
    mpq_search_resource budget_resource;
} options;

/* Integer option bounded by a search parameter's range. */
static int parse_search_int(const char *opt, const char *arg, mpq_search_param id, long long min,
                            long long *out)
{
    mpq_param_info info = {sizeof info, NULL, NULL, 0, 0, 0, 0};
    mpq_status st = mpq_search_param_info(MPQ_SEARCH_HAQ, id, &info);
    if (st != MPQ_OK)
        return cli_fail("search", st);
    return cli_parse_int("search", opt, arg, min, (long long)info.max_value, out);
}

/* ---- small file helpers ------------------------------------------------------------------- */

static mpq_status write_text(const char *path, const char *text)
{
    return mpq_write_file_atomic(path, text, strlen(text));
}

static void cache_dir(const options *o, char *out, size_t n)
{
    if (o->cache) {
        snprintf(out, n, "%s", o->cache);
        return;
    }
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(out, n, "%s/mpq", xdg);
    else if (home && *home)
        snprintf(out, n, "%s/.cache/mpq", home);
    else
        snprintf(out, n, ".mpq-cache");
}

/* ---- progress bar ------------------------------------------------------------------------- */

typedef struct view {
    int tty, quiet;
    const char *label;
} view;

static void fmt_duration(double s, char *out, size_t n)
{
    if (!(s >= 0.0) || s > 1e7)
        snprintf(out, n, "--");
    else if (s < 60)
        snprintf(out, n, "%.0fs", s);
    else if (s < 3600)
        snprintf(out, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(out, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

static mpq_status on_search_progress(void *user, const mpq_search_progress *p)
{
    view *v = user;
    if (v->quiet)
        return MPQ_OK;
    int64_t done = p->episode + 1;
    int last = done >= p->episodes;
    if (!v->tty && !last && done % 10 != 0)
        return MPQ_OK;
    int width = 24, fill = (int)((double)done / (double)p->episodes * width);
    if (fill > width)
        fill = width;
    char bar[32], eta[16], el[16];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fmt_duration(p->eta_s, eta, sizeof eta);
    fmt_duration(p->elapsed_s, el, sizeof el);
    fprintf(stderr,
            "%s%-7s %5lld/%-5lld [%s] acc %5.2f%% lat %.3f reward %+.3f | best acc %5.2f%% | %s "
            "ETA %s  %s",
            v->tty ? "\r" : "", v->label, (long long)done, (long long)p->episodes, bar,
            100.0 * p->record->accuracy, p->record->latency_ratio, p->record->reward,
            100.0 * p->best_accuracy, el, eta, v->tty ? "" : "\n");
    fflush(stderr);
    return MPQ_OK;
}

static void end_progress(const view *v)
{
    if (!v->quiet && v->tty)
        fprintf(stderr, "\n");
}

/* ---- proxy evaluator for zoo models ------------------------------------------------------- *
 * A closed-form STAND-IN, not a measurement: accuracy = 0.76 - sum over layers of
 * s_l * mean over kernels of 4^-(w-1) - t_l * 4^-(a-1), with sensitivities that grow for layers
 * with few weights per kernel (depthwise, first layer) and for the first and last layer, the
 * pattern HAQ's and AutoQ's published policies show. It lets the search and the command line be
 * exercised on ImageNet-sized networks without data. */

typedef struct proxy {
    const mpq_model *model;
    double *s, *t;
} proxy;

static mpq_status proxy_init(proxy *p, const mpq_model *m)
{
    size_t L = mpq_model_get_layer_count(m);
    p->model = m;
    p->s = calloc(L, sizeof *p->s);
    p->t = calloc(L, sizeof *p->t);
    if (!p->s || !p->t)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "proxy evaluator");
    double total = 0.0;
    for (size_t l = 0; l < L; l++) {
        double per = (double)mpq_model_get_layer_weight_count(m, l) /
                     (double)mpq_model_get_layer_kernel_count(m, l);
        double s = 1.0 / sqrt(per);
        if (l == 0 || l + 1 == L)
            s *= 3.0;
        p->s[l] = s;
        total += s;
    }
    /* all layers at 2 bits lose ~60 points of top-1 (weights 2/3, activations 1/3) */
    for (size_t l = 0; l < L; l++) {
        p->s[l] = p->s[l] / total * 0.4 / 0.25;
        p->t[l] = p->s[l] * 0.5;
    }
    return MPQ_OK;
}

static void proxy_free(proxy *p)
{
    free(p->s);
    free(p->t);
}

static mpq_status proxy_eval(void *user, const mpq_policy *policy, double *accuracy)
{
    const proxy *p = user;
    double acc = 0.76;
    for (size_t l = 0; l < mpq_policy_get_layer_count(policy); l++) {
        const uint8_t *bits;
        int64_t n;
        int a;
        mpq_status st = mpq_policy_get_weight_bits(policy, l, &bits, &n);
        if (st == MPQ_OK)
            st = mpq_policy_get_act_bits(policy, l, &a);
        if (st != MPQ_OK)
            return st;
        double w = 0.0;
        for (int64_t k = 0; k < n; k++)
            w += pow(4.0, -(double)(bits[k] - 1));
        acc -= p->s[l] * w / (double)n + p->t[l] * pow(4.0, -(double)(a - 1));
    }
    *accuracy = acc > 0.0 ? acc : 0.0;
    return MPQ_OK;
}

/* ---- SVG ---------------------------------------------------------------------------------- */

typedef struct series {
    const char *label;
    const char *color;
    const mpq_search *search;
} series;

/* One panel per resource: every episode as a dot, the Pareto front as a line, the best policy
 * as a ring; several searches (the demo) share the panels in different colours. */
static mpq_status write_svg(const char *path, const series *ser, int nser)
{
    const mpq_search_resource res[3] = {MPQ_SEARCH_RESOURCE_LATENCY, MPQ_SEARCH_RESOURCE_ENERGY,
                                        MPQ_SEARCH_RESOURCE_SIZE};
    const int pw = 320, ph = 260, ml = 50, mb = 40, mt = 30;
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "svg");
#define OUT(...)                                                                                  \
    do {                                                                                          \
        int n_ = snprintf(buf + len, cap - len, __VA_ARGS__);                                     \
        if (n_ < 0)                                                                               \
            break;                                                                                \
        if (len + (size_t)n_ >= cap) {                                                            \
            size_t nc = (cap + (size_t)n_) * 2;                                                   \
            char *nb = realloc(buf, nc);                                                          \
            if (!nb) {                                                                            \
                free(buf);                                                                        \
                return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "svg");                               \
            }                                                                                     \
            buf = nb;                                                                             \
            cap = nc;                                                                             \
            n_ = snprintf(buf + len, cap - len, __VA_ARGS__);                                     \
        }                                                                                         \
        len += (size_t)n_;                                                                        \
    } while (0)
    int W = 3 * (pw + ml) + 20, H = ph + mb + mt + 20 + 18 * nser;
    OUT("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
        "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" "
        "fill=\"white\"/>\n",
        W, H);
    /* shared accuracy range */
    double amin = 1.0, amax = 0.0;
    for (int s = 0; s < nser; s++)
        for (int64_t i = 0; i < mpq_search_get_history_count(ser[s].search); i++) {
            mpq_search_record r = {.size = sizeof r};
            mpq_search_get_record(ser[s].search, i, &r);
            if (r.accuracy < amin)
                amin = r.accuracy;
            if (r.accuracy > amax)
                amax = r.accuracy;
        }
    if (amax <= amin) {
        amin -= 0.01;
        amax += 0.01;
    }
    for (int k = 0; k < 3; k++) {
        int x0 = 10 + k * (pw + ml) + ml, y0 = mt;
        double cmax = 0.0;
        for (int s = 0; s < nser; s++)
            for (int64_t i = 0; i < mpq_search_get_history_count(ser[s].search); i++) {
                mpq_search_record r = {.size = sizeof r};
                mpq_search_get_record(ser[s].search, i, &r);
                double c = k == 0 ? r.latency_ratio : k == 1 ? r.energy_ratio : r.size_ratio;
                if (c > cmax)
                    cmax = c;
            }
        if (!(cmax > 0.0))
            cmax = 1.0;
        OUT("<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#888\"/>\n",
            x0, y0, pw, ph);
        OUT("<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s / all-8-bit</text>\n", x0 + pw / 2,
            y0 + ph + 28, mpq_search_resource_name(res[k]));
        OUT("<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">0</text>\n", x0, y0 + ph + 14);
        OUT("<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%.2f</text>\n", x0 + pw, y0 + ph + 14,
            cmax);
        OUT("<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.1f%%</text>\n", x0 - 4, y0 + 4,
            100 * amax);
        OUT("<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.1f%%</text>\n", x0 - 4, y0 + ph,
            100 * amin);
        OUT("<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-weight=\"bold\">top-1 vs %s"
            "</text>\n",
            x0 + pw / 2, y0 - 10, mpq_search_resource_name(res[k]));
        for (int s = 0; s < nser; s++) {
            const mpq_search *S = ser[s].search;
            for (int64_t i = 0; i < mpq_search_get_history_count(S); i++) {
                mpq_search_record r = {.size = sizeof r};
                mpq_search_get_record(S, i, &r);
                double c = k == 0 ? r.latency_ratio : k == 1 ? r.energy_ratio : r.size_ratio;
                OUT("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"1.6\" fill=\"%s\" fill-opacity=\"0.35\"/>"
                    "\n",
                    x0 + c / cmax * pw, y0 + (amax - r.accuracy) / (amax - amin) * ph,
                    ser[s].color);
            }
            int64_t *idx = NULL, n = 0;
            if (mpq_search_get_pareto(S, res[k], &idx, &n) == MPQ_OK && n > 0) {
                OUT("<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"",
                    ser[s].color);
                for (int64_t i = 0; i < n; i++) {
                    mpq_search_record r = {.size = sizeof r};
                    mpq_search_get_record(S, idx[i], &r);
                    double c = k == 0 ? r.latency_ratio : k == 1 ? r.energy_ratio : r.size_ratio;
                    OUT("%.1f,%.1f ", x0 + c / cmax * pw,
                        y0 + (amax - r.accuracy) / (amax - amin) * ph);
                }
                OUT("\"/>\n");
            }
            mpq_free(idx);
            const mpq_policy *best;
            mpq_search_record r = {.size = sizeof r};
            if (mpq_search_get_best(S, &best, &r) == MPQ_OK) {
                double c = k == 0 ? r.latency_ratio : k == 1 ? r.energy_ratio : r.size_ratio;
                OUT("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"none\" stroke=\"%s\" "
                    "stroke-width=\"2\"/>\n",
                    x0 + c / cmax * pw, y0 + (amax - r.accuracy) / (amax - amin) * ph,
                    ser[s].color);
            }
        }
    }
    for (int s = 0; s < nser; s++) {
        int y = mt + ph + mb + 12 + 18 * s;
        OUT("<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>\n", 10 + ml, y - 10,
            ser[s].color);
        OUT("<text x=\"%d\" y=\"%d\">%s: episodes (dots), Pareto front (line), best within "
            "budget (ring)</text>\n",
            10 + ml + 18, y, ser[s].label);
    }
    OUT("</svg>\n");
#undef OUT
    mpq_status st = mpq_write_file_atomic(path, buf, len);
    free(buf);
    return st;
}

/* ---- one search --------------------------------------------------------------------------- */

/* Counts the search's calls of the evaluator: the search caches scores by policy, so these are
 * its distinct evaluations (the figure that costs time), not its episodes. */
typedef struct eval_counter {
    mpq_evaluator_fn fn;
    void *user;
    int64_t calls;
} eval_counter;

static mpq_status counting_eval(void *user, const mpq_policy *policy, double *accuracy)
{
    eval_counter *c = user;
    c->calls++;
    return c->fn(c->user, policy, accuracy);
}

/* --eval-delay / --eval-fail around the real evaluator (on every rank of an MPI run). */
typedef struct padded_eval {
    mpq_evaluator_fn fn;
    void *user;
    long long delay_ms;
    int has_fail;
    uint64_t fail_hash; /* the policy of --eval-fail */
} padded_eval;

static mpq_status padded_evaluate(void *user, const mpq_policy *policy, double *accuracy)
{
    padded_eval *pe = user;
    if (pe->has_fail && mpq_policy_hash(policy) == pe->fail_hash)
        return mpq_set_error(MPQ_ERR_IO, "injected failure (--eval-fail) on policy %016llx",
                             (unsigned long long)pe->fail_hash);
    if (pe->delay_ms > 0) {
        struct timespec ts = {(time_t)(pe->delay_ms / 1000), (long)(pe->delay_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    return pe->fn(pe->user, policy, accuracy);
}

typedef struct result {
    eval_counter count; /* the search's evaluator: keep the result in place while it lives */
    mpq_search_method method;
    mpq_search *search;
    double accuracy;      /* final accuracy (test after fine-tune, or the search's figure) */
    int finetuned;
    mpq_search_record best;
    int has_best;
    double seconds;
    int conflict; /* the command line contradicts the checkpoint being resumed: a usage error */
} result;

/* What the search really uses ("latency:0.5", "accuracy objective"): after a resume that is the
 * checkpoint's setting, not necessarily the command line's. */
static void describe_objective(const mpq_search *s, char *buf, size_t n)
{
    double objective = 0, resource = 0, fraction = 0;
    mpq_search_get_param(s, MPQ_SEARCH_OBJECTIVE, &objective);
    mpq_search_get_param(s, MPQ_SEARCH_BUDGET_RESOURCE, &resource);
    mpq_search_get_param(s, MPQ_SEARCH_BUDGET, &fraction);
    if ((int)objective == MPQ_SEARCH_OBJECTIVE_ACCURACY)
        snprintf(buf, n, "accuracy objective");
    else
        snprintf(buf, n, "%s:%g", mpq_search_resource_name((mpq_search_resource)(int)resource),
                 fraction);
}

static int changeable_on_resume(mpq_search_param id)
{
    return id == MPQ_SEARCH_EPISODES || id == MPQ_SEARCH_CHECKPOINT_EVERY ||
           id == MPQ_SEARCH_TIME_LIMIT;
}

/* A resumed run continues with its checkpoint's settings (the library fixes them once an episode
 * ran). An option that asks for another value is refused instead of being silently ignored while
 * the summary shows it; the same value (the original command line repeated with --resume) is
 * fine. Episodes, checkpoint_every and time_limit may change and are applied. */
static mpq_status check_resume_options(const mpq_search *s, const options *o)
{
    double v = 0;
    char have[64];
    describe_objective(s, have, sizeof have);
    if (o->objective_given || o->budget_given) {
        mpq_search_get_param(s, MPQ_SEARCH_OBJECTIVE, &v);
        int want_acc = strcmp(o->objective, "accuracy") == 0;
        int conflict = want_acc != ((int)v == MPQ_SEARCH_OBJECTIVE_ACCURACY);
        if (!conflict && !want_acc && o->budget_given) {
            mpq_search_resource r;
            double f, cr = 0, cf = 0;
            mpq_search_parse_budget(o->budget, &r, &f);
            mpq_search_get_param(s, MPQ_SEARCH_BUDGET_RESOURCE, &cr);
            mpq_search_get_param(s, MPQ_SEARCH_BUDGET, &cf);
            conflict = (int)cr != (int)r || cf != f;
        }
        if (conflict)
            return mpq_set_error(MPQ_ERR_MISMATCH,
                                 "--resume: the checkpoint's run has %s, the command line asks "
                                 "for %s; a resumed run keeps its budget (drop -b/--objective, "
                                 "or start a new run in another directory)",
                                 have,
                                 strcmp(o->objective, "accuracy") == 0 ? "accuracy objective"
                                                                       : o->budget);
    }
    if (o->seed_given) {
        mpq_search_get_param(s, MPQ_SEARCH_SEED, &v);
        if (v != (double)o->seed)
            return mpq_set_error(MPQ_ERR_MISMATCH,
                                 "--resume: the checkpoint's run has seed %.0f, the command line "
                                 "asks for %lld; a resumed run keeps its seed",
                                 v, o->seed);
    }
    for (int i = 0; i < o->nsets; i++) {
        mpq_search_param id;
        mpq_status st = mpq_search_param_find(o->sets[i].name, &id);
        if (st != MPQ_OK)
            return st;
        if (changeable_on_resume(id))
            continue;
        mpq_search_get_param(s, id, &v);
        if (v != o->sets[i].value)
            return mpq_set_error(MPQ_ERR_MISMATCH,
                                 "--resume: the checkpoint's run has %s=%g, the command line asks "
                                 "for %g; only episodes, checkpoint_every and time_limit can "
                                 "change on resume",
                                 o->sets[i].name, v, o->sets[i].value);
    }
    if (o->rescore > 0 && mpq_search_get_param(s, MPQ_SEARCH_KEEP_TOP, &v) == MPQ_OK &&
        (double)o->rescore > v)
        return mpq_set_error(MPQ_ERR_MISMATCH,
                             "--resume: --rescore %lld needs the %lld best policies, the "
                             "checkpoint's run keeps %.0f",
                             o->rescore, o->rescore, v);
    return MPQ_OK;
}

/* Every file a run writes into its directory. A new run first moves those of an earlier run into
 * DIR/previous-run/ (replacing what an even earlier run left there): a run that finds no
 * feasible policy must not leave the old best_policy.json beside its own history, and a command
 * re-run without --resume must not destroy hours of an interrupted run's checkpoint. A resumed
 * run keeps its checkpoint in place. */
static mpq_status supersede_earlier_outputs(const char *dir, int keep_checkpoint)
{
    static const char *const names[] = {"history.csv", "best_policy.json", "final_policy.json",
                                        "pareto.csv",  "pareto.svg",       "checkpoint.mpq"};
    char prev[1100];
    snprintf(prev, sizeof prev, "%s/previous-run", dir);
    int moved = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (keep_checkpoint && strcmp(names[i], "checkpoint.mpq") == 0)
            continue;
        char path[1200], old[1200];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(old, sizeof old, "%s/%s", prev, names[i]);
        if (access(path, F_OK) != 0) {
            /* the earlier run wrote no such file: none of an older run may stand for it */
            if (unlink(old) != 0 && errno != ENOENT && errno != ENOTDIR)
                return mpq_set_error(MPQ_ERR_IO, "cannot remove %s: %s", old, strerror(errno));
            continue;
        }
        if (!moved && mkdir(prev, 0777) != 0 && errno != EEXIST)
            return mpq_set_error(MPQ_ERR_IO, "cannot create %s for the earlier run's files: %s",
                                 prev, strerror(errno));
        if (rename(path, old) != 0)
            return mpq_set_error(MPQ_ERR_IO, "cannot move the earlier run's %s to %s: %s", path,
                                 prev, strerror(errno));
        moved++;
    }
    if (moved)
        fprintf(stderr, "mpq search: moved %d file(s) of the earlier run in %s to %s/\n", moved,
                dir, prev);
    return MPQ_OK;
}

static mpq_status write_outputs(const char *dir, const mpq_search *s, const mpq_model *model,
                                const char *label, FILE *files_list)
{
    char path[1200];
    mpq_status st;
    snprintf(path, sizeof path, "%s/history.csv", dir);
    if ((st = mpq_search_save_history(s, path)) != MPQ_OK)
        return st;
    fprintf(files_list, "  %s\n", path);
    const mpq_policy *best;
    if (mpq_search_get_best(s, &best, NULL) == MPQ_OK) {
        snprintf(path, sizeof path, "%s/best_policy.json", dir);
        if ((st = mpq_policy_save(best, model, path)) != MPQ_OK)
            return st;
        fprintf(files_list, "  %s\n", path);
    }
    char *csv = NULL;
    if ((st = mpq_search_pareto_csv(s, &csv)) != MPQ_OK)
        return st;
    snprintf(path, sizeof path, "%s/pareto.csv", dir);
    st = write_text(path, csv);
    mpq_free(csv);
    if (st != MPQ_OK)
        return st;
    fprintf(files_list, "  %s\n", path);
    snprintf(path, sizeof path, "%s/pareto.svg", dir);
    series one = {label, "#1f77b4", s};
    if ((st = write_svg(path, &one, 1)) != MPQ_OK)
        return st;
    fprintf(files_list, "  %s\n", path);
    return MPQ_OK;
}

/* A run shorter than the papers' keeps their exploration shape: HAQ decays sigma by 0.99 over
 * 580 learning episodes (0.5 -> 0.0015), AutoQ holds it for the first quarter (100 of 400) and
 * decays by 0.99 over the other 300; the decay is rescaled so that a run of N episodes ends at
 * the same sigma. --set noise_decay=... / noise_hold=... override this. */
static mpq_status scale_schedule(mpq_search *s, mpq_search_method method, long long episodes)
{
    double warmup, hold = 0.0;
    mpq_status st = mpq_search_get_param(s, MPQ_SEARCH_WARMUP, &warmup);
    if (st != MPQ_OK)
        return st;
    double paper = method == MPQ_SEARCH_HAQ ? 580.0 : 300.0;
    if (method == MPQ_SEARCH_AUTOQ) {
        hold = floor((double)episodes / 4.0);
        if ((st = mpq_search_set_param(s, MPQ_SEARCH_NOISE_HOLD, hold)) != MPQ_OK)
            return st;
    }
    double learning = (double)episodes - (warmup + 1.0) - hold;
    if (learning < 1.0)
        return MPQ_OK;
    return mpq_search_set_param(s, MPQ_SEARCH_NOISE_DECAY, pow(0.99, paper / learning));
}

typedef struct context {
    const options *o;
    const mpq_model *model;
    mpq_hw *hw;
    mpq_evaluator_fn eval;
    void *eval_user;
    mpq_evaluator *runtime; /* NULL for the proxy */
    int is_proxy;
    /* MPI: rank 0's batch evaluator (NULL: evaluations in this process) */
    mpq_search_batch_fn batch;
    void *batch_user;
} context;

/* Episodes are scored on a subset of the validation split (the demo: 2000 of 5000 images), so
 * the single best score partly reflects luck. The few best distinct policies are scored again on
 * the whole split and the best of them is the answer (DIR/final_policy.json), fine-tuned and
 * reported. */
static mpq_status rescore_top(const context *cx, const mpq_search *s, long long n,
                              const char *dir, const mpq_policy **chosen, result *res,
                              FILE *files_list)
{
    double limit = 0.0;
    mpq_status st = mpq_evaluator_get_param(cx->runtime, MPQ_EVAL_LIMIT, &limit);
    if (st != MPQ_OK || (st = mpq_evaluator_set_param(cx->runtime, MPQ_EVAL_LIMIT, 0)) != MPQ_OK)
        return st;
    int64_t count = mpq_search_get_top_count(s);
    if (count > n)
        count = n;
    double best_acc = -1.0;
    if (!cx->o->quiet)
        fprintf(stderr, "%s: the %lld best policies re-scored on the whole validation split:",
                mpq_search_method_name(res->method), (long long)count);
    for (int64_t i = 0; i < count && st == MPQ_OK; i++) {
        const mpq_policy *p;
        mpq_search_record r = {.size = sizeof r};
        double acc = NAN;
        if ((st = mpq_search_get_top(s, i, &p, &r)) == MPQ_OK &&
            (st = mpq_evaluator_evaluate(cx->runtime, p, &acc)) == MPQ_OK) {
            if (!cx->o->quiet)
                fprintf(stderr, " %.2f%% (episode %lld: %.2f%%)", 100.0 * acc,
                        (long long)r.episode, 100.0 * r.accuracy);
            if (acc > best_acc) {
                best_acc = acc;
                *chosen = p;
                res->best = r;
            }
        }
    }
    if (!cx->o->quiet)
        fprintf(stderr, "; chosen: episode %lld\n", (long long)res->best.episode);
    mpq_status rst = mpq_evaluator_set_param(cx->runtime, MPQ_EVAL_LIMIT, limit);
    if (st == MPQ_OK)
        st = rst;
    if (st != MPQ_OK)
        return st;
    res->accuracy = best_acc;
    char path[1200];
    snprintf(path, sizeof path, "%s/final_policy.json", dir);
    if ((st = mpq_policy_save(*chosen, cx->model, path)) != MPQ_OK)
        return st;
    fprintf(files_list, "  %s\n", path);
    return MPQ_OK;
}

static mpq_status run_one(const context *cx, mpq_search_method method, long long episodes,
                          const char *dir, long long finetune_epochs, result *res,
                          FILE *files_list)
{
    const options *o = cx->o;
    memset(res, 0, sizeof *res);
    res->method = method;
    res->accuracy = NAN;
    res->count.fn = cx->eval;
    res->count.user = cx->eval_user;
    mpq_search *s = NULL;
    mpq_status st = mpq_search_create(&s, method, cx->model, cx->hw, counting_eval, &res->count);
    if (st != MPQ_OK)
        return st;
    res->search = s;
    /* all of a round's independent evaluations go out at once (width 0) */
    if (cx->batch && (st = mpq_search_set_batch_evaluator(s, cx->batch, cx->batch_user, 0)) !=
                         MPQ_OK)
        return st;
    const long long rescore = o->rescore >= 0 ? o->rescore : o->demo ? 5 : 0;
    /* A resumed run takes every setting from its checkpoint: nothing to set before. */
    if (!o->resume) {
        if (strcmp(o->objective, "accuracy") == 0) {
            st = mpq_search_set_param(s, MPQ_SEARCH_OBJECTIVE, MPQ_SEARCH_OBJECTIVE_ACCURACY);
        } else {
            mpq_search_resource r;
            double f;
            st = mpq_search_parse_budget(o->budget, &r, &f);
            if (st == MPQ_OK)
                st = mpq_search_set_budget(s, r, f);
        }
        if (st == MPQ_OK)
            st = mpq_search_set_param(s, MPQ_SEARCH_SEED, (double)o->seed);
        if (st == MPQ_OK && episodes > 0)
            st = mpq_search_set_param(s, MPQ_SEARCH_EPISODES, (double)episodes);
        if (st == MPQ_OK && episodes > 0 &&
            (method == MPQ_SEARCH_HAQ || method == MPQ_SEARCH_AUTOQ))
            st = scale_schedule(s, method, episodes);
        /* The demo compares methods on equal terms, so its wall treats every layer alike. HAQ's
         * rule (first/last forced to 8 bit only when the wall runs) makes the result depend on
         * whether a proposal lands over budget: AutoQ, whose kernel-wise proposals often do, fell
         * to 64.6% test top-1 at a 0.4 latency budget under it (88.5% free); at 0.5, 3 seeds:
         * AutoQ 90.07 -> 90.52%, HAQ 90.50 -> 90.27%, greedy 87.85 -> 90.23%. --set first_last=1
         * restores HAQ's rule. */
        if (st == MPQ_OK && o->demo)
            st = mpq_search_set_param(s, MPQ_SEARCH_FIRST_LAST, MPQ_SEARCH_FIRST_LAST_FREE);
    }
    /* checkpoint_every and time_limit belong to this process, not to the checkpoint; an explicit
     * --set of either comes after and wins over the option's default. */
    if (st == MPQ_OK)
        st = mpq_search_set_param(s, MPQ_SEARCH_CHECKPOINT_EVERY, (double)o->checkpoint_every);
    if (st == MPQ_OK && o->time_limit > 0)
        st = mpq_search_set_param(s, MPQ_SEARCH_TIME_LIMIT, o->time_limit);
    for (int i = 0; st == MPQ_OK && i < o->nsets; i++) {
        mpq_search_param id;
        st = mpq_search_param_find(o->sets[i].name, &id);
        if (st == MPQ_OK && (!o->resume || changeable_on_resume(id)) &&
            !(o->resume && id == MPQ_SEARCH_EPISODES))
            st = mpq_search_set_param(s, id, o->sets[i].value);
    }
    if (st == MPQ_OK && !o->resume && method == MPQ_SEARCH_UNIFORM) {
        /* uniform plays each (w, a) pair once: show that count, not a larger cap */
        double w0, w1, a0, a1;
        mpq_search_get_param(s, MPQ_SEARCH_W_MIN_BITS, &w0);
        mpq_search_get_param(s, MPQ_SEARCH_W_MAX_BITS, &w1);
        mpq_search_get_param(s, MPQ_SEARCH_A_MIN_BITS, &a0);
        mpq_search_get_param(s, MPQ_SEARCH_A_MAX_BITS, &a1);
        double pairs = (w1 - w0 + 1) * (a1 - a0 + 1);
        if (pairs >= 1 && (episodes <= 0 || (double)episodes > pairs))
            st = mpq_search_set_param(s, MPQ_SEARCH_EPISODES, pairs);
    }
    double keep = 0.0;
    if (st == MPQ_OK && !o->resume && rescore > 0 &&
        (st = mpq_search_get_param(s, MPQ_SEARCH_KEEP_TOP, &keep)) == MPQ_OK &&
        (double)rescore > keep)
        st = mpq_search_set_param(s, MPQ_SEARCH_KEEP_TOP, (double)rescore);
    char ckpt[1200];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.mpq", dir);
    if (st == MPQ_OK)
        st = mpq_search_set_checkpoint(s, ckpt);
    if (st == MPQ_OK && o->resume) {
        st = mpq_search_resume(s, ckpt);
        if (st == MPQ_OK && (st = check_resume_options(s, o)) != MPQ_OK)
            res->conflict = 1;
        if (st == MPQ_OK)
            fprintf(stderr, "resumed %s after episode %lld from %s\n",
                    mpq_search_method_name(method), (long long)mpq_search_get_history_count(s), ckpt);
        /* The checkpoint brings the run's own episode count; an explicit -e (or --set
         * episodes=N) sets a new target so that a finished or interrupted run can be extended.
         * Everything else (noise decay included) stays as the checkpoint has it. */
        long long want = episodes;
        for (int i = 0; i < o->nsets; i++)
            if (strcmp(o->sets[i].name, "episodes") == 0)
                want = (long long)o->sets[i].value;
        double target = 0.0;
        if (st == MPQ_OK && want > 0 &&
            mpq_search_get_param(s, MPQ_SEARCH_EPISODES, &target) == MPQ_OK &&
            target != (double)want) {
            st = mpq_search_set_param(s, MPQ_SEARCH_EPISODES, (double)want);
            if (st == MPQ_OK)
                fprintf(stderr, "episode target %lld (the checkpoint's run had %.0f)\n", want,
                        target);
        }
    }
    if (st == MPQ_OK)
        st = mpq_search_prepare(s);
    /* The run starts here: what an earlier run left in this directory goes now, not before (a
     * refused command line keeps it). */
    if (st == MPQ_OK)
        st = supersede_earlier_outputs(dir, o->resume);
    if (st != MPQ_OK)
        return st;
    view v = {isatty(2), o->quiet, mpq_search_method_name(method)};
    mpq_search_set_progress(s, on_search_progress, &v);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    st = mpq_search_run(s);
    clock_gettime(CLOCK_MONOTONIC, &b);
    end_progress(&v);
    res->seconds = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    if (st == MPQ_ERR_CANCELLED) {
        fprintf(stderr, "mpq search: %s; keeping the best policy so far (checkpoint %s)\n",
                mpq_last_error(), ckpt);
        st = MPQ_OK;
    }
    /* Files are written whatever happened, so a failed run keeps its history. */
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", mpq_last_error());
    mpq_status wst = write_outputs(dir, s, cx->model, mpq_search_method_name(method), files_list);
    if (st != MPQ_OK) {
        mpq_set_error(st, "%s", msg);
        return st;
    }
    if (wst != MPQ_OK)
        return wst;
    res->best.size = sizeof res->best;
    const mpq_policy *best = NULL;
    if (mpq_search_get_best(s, &best, &res->best) == MPQ_OK) {
        res->has_best = 1;
        res->accuracy = res->best.accuracy;
        if (cx->runtime && rescore > 0 &&
            (st = rescore_top(cx, s, rescore, dir, &best, res, files_list)) != MPQ_OK)
            return st;
        if (cx->runtime && finetune_epochs > 0) {
            double acc;
            if ((st = mpq_evaluator_finetune(cx->runtime, best, (int32_t)finetune_epochs,
                                             MPQ_SPLIT_TEST, &acc, NULL)) != MPQ_OK)
                return st;
            res->accuracy = acc;
            res->finetuned = 1;
        }
    }
    return MPQ_OK;
}

/* ---- evaluator setup ---------------------------------------------------------------------- */

#ifdef MPQ_HAVE_MPI
/* A barrier that naps instead of spinning (Open MPI's blocking calls busy-wait, and the ranks
 * share the cores with the one that is training or evaluating). */
static void mpi_wait_all(void)
{
    MPI_Request req;
    int done = 0;
    if (MPI_Ibarrier(MPI_COMM_WORLD, &req) != MPI_SUCCESS)
        return;
    while (!done && MPI_Test(&req, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS) {
        struct timespec ts = {0, 1000000L};
        if (!done)
            nanosleep(&ts, NULL);
    }
}
#endif

typedef struct setup {
    mpq_dataset *ds;
    mpq_net *net;
    mpq_evaluator *ev;
    mpq_model *zoo;
    proxy px;
    int has_proxy;
} setup;

static void setup_free(setup *su)
{
    mpq_evaluator_destroy(su->ev);
    mpq_net_destroy(su->net);
    mpq_dataset_destroy(su->ds);
    mpq_model_destroy(su->zoo);
    if (su->has_proxy)
        proxy_free(&su->px);
}

typedef struct train_view {
    int tty, quiet;
} train_view;

static mpq_status on_train(void *user, const mpq_train_progress *p)
{
    train_view *v = user;
    int end = p->batch + 1 == p->batches;
    if (v->quiet || (!v->tty && !end) || (v->tty && !end && p->batch % 20 != 0))
        return MPQ_OK;
    fprintf(stderr, "%straining epoch %d/%d batch %lld/%lld loss %.4f acc %.2f%% %.0f img/s%s",
            v->tty ? "\r" : "", p->epoch + 1, p->epochs, (long long)p->batch + 1,
            (long long)p->batches, p->loss, 100.0 * p->accuracy, p->images_per_second,
            end || !v->tty ? "\n" : "");
    fflush(stderr);
    return MPQ_OK;
}

static int is_builtin_net(const char *name)
{
    return strcmp(name, "fashion-cnn") == 0 || strcmp(name, "fashion-tiny") == 0;
}

static mpq_status setup_evaluator(const options *o, setup *su, context *cx)
{
    mpq_status st;
    memset(su, 0, sizeof *su);
    size_t len = strlen(o->model);
    int is_onnx = len > 5 && strcmp(o->model + len - 5, ".onnx") == 0;
    int is_file = (len > 7 && strcmp(o->model + len - 7, ".mpqnet") == 0) || is_onnx;
    if (!is_builtin_net(o->model) && !is_file) {
        if ((st = mpq_model_zoo(&su->zoo, o->model)) != MPQ_OK)
            return st;
        if ((st = proxy_init(&su->px, su->zoo)) != MPQ_OK)
            return st;
        su->has_proxy = 1;
        cx->model = su->zoo;
        cx->eval = proxy_eval;
        cx->eval_user = &su->px;
        cx->is_proxy = 1;
        if (!o->worker)
            fprintf(stderr, "NOTE: %s has no data here: accuracy is a closed-form PROXY (a stand-in "
                        "formula of the bits), not a measured accuracy\n",
                o->model);
        return MPQ_OK;
    }
    char path[1200], dir[1024];
    int cached = 1;
    if (!is_file) {
        cache_dir(o, dir, sizeof dir);
        snprintf(path, sizeof path, "%s/%s.mpqnet", dir, o->model);
        cached = access(path, R_OK) == 0; /* else check_output_dirs() probed dir */
    }
    if ((st = mpq_dataset_load(&su->ds, o->data)) != MPQ_OK)
        return st;
    if (is_file) {
        snprintf(path, sizeof path, "%s", o->model);
        if ((st = is_onnx ? mpq_net_load_onnx(&su->net, path, 1) : mpq_net_load(&su->net, path, 1)) !=
            MPQ_OK)
            return st;
    } else {
        if (cached) {
            if ((st = mpq_net_load(&su->net, path, 1)) != MPQ_OK)
                return st;
            if (!o->worker)
                fprintf(stderr, "using the trained %s cached in %s\n", o->model, path);
        } else {
            fprintf(stderr, "no trained %s in %s: training it now (once)\n", o->model, path);
            if ((st = mpq_net_create_named(&su->net, o->model, 1)) != MPQ_OK)
                return st;
            train_view tv = {isatty(2), o->quiet};
            mpq_net_set_progress(su->net, on_train, &tv);
            if ((st = mpq_net_train(su->net, su->ds, MPQ_SPLIT_TRAIN, NULL)) != MPQ_OK)
                return st;
            mpq_net_set_progress(su->net, NULL, NULL);
            if ((st = mpq_net_save(su->net, path)) != MPQ_OK)
                return st;
            fprintf(stderr, "saved the trained network to %s\n", path);
        }
    }
    if ((st = mpq_evaluator_create(&su->ev, su->net, su->ds, 1)) != MPQ_OK)
        return st;
    /* The demo scores search episodes on 2000 of the 5000 validation images (its time budget);
     * --eval-set limit=0 restores the whole split. Final figures are on the test split. */
    if (o->demo && (st = mpq_evaluator_set_param(su->ev, MPQ_EVAL_LIMIT, 2000)) != MPQ_OK)
        return st;
    /* ... after re-estimating the BN statistics under each policy on 4 training batches: at a 0.3
     * latency budget on fashion-cnn this lifts the Spearman correlation between episode scores
     * and the final fine-tuned test top-1 from about 0.5 to about 0.8 at no measurable cost
     * (bench/bench_signal.c, guide 4.8); --eval-set bn_batches=0 restores the papers' scoring. */
    if (o->demo && (st = mpq_evaluator_set_param(su->ev, MPQ_EVAL_BN_BATCHES, 4)) != MPQ_OK)
        return st;
    for (int i = 0; i < o->neval_sets; i++) {
        mpq_eval_param id;
        if ((st = mpq_evaluator_param_find(o->eval_sets[i].name, &id)) != MPQ_OK ||
            (st = mpq_evaluator_set_param(su->ev, id, o->eval_sets[i].value)) != MPQ_OK)
            return st;
    }
    cx->model = mpq_evaluator_get_model(su->ev);
    cx->eval = mpq_evaluator_callback;
    cx->eval_user = su->ev;
    cx->runtime = su->ev;
    return MPQ_OK;
}

/* ---- reporting ---------------------------------------------------------------------------- */

static void print_table_header(FILE *f, int is_proxy, int finetuned)
{
    fprintf(f, "%-8s %9s %12s %7s %12s %7s %10s %7s %10s %7s %6s\n", "method",
            is_proxy ? "proxy-acc" : finetuned ? "test-top1" : "val-top1", "latency(ms)", "x8bit",
            "energy(mJ)", "x8bit", "area", "x8bit", "size(KB)", "x8bit", "time");
}

static void print_row(FILE *f, const char *name, double acc, const mpq_search_record *r,
                      double seconds)
{
    char t[16];
    fmt_duration(seconds, t, sizeof t);
    fprintf(f, "%-8s %8.2f%% %12.4f %7.3f %12.4f %7.3f %10.1f %7.3f %10.1f %7.3f %6s\n", name,
            100.0 * acc, 1e3 * r->latency_s, r->latency_ratio, 1e3 * r->energy_j, r->energy_ratio,
            r->area, r->area_ratio, r->size_bytes / 1024.0, r->size_ratio, t);
}

static void list_params(void)
{
    printf("Search parameters (--set NAME=VALUE); defaults HAQ / AutoQ:\n");
    /* Dense ids from 0 (the papers' settings), then from MPQ_PARAM_EXTENSION_BASE (libmpq's
     * own); the first refused id ends each range. */
    for (int i = 0;; i++) {
        mpq_param_info h = {sizeof h, NULL, NULL, 0, 0, 0, 0}, a = h;
        if (mpq_search_param_info(MPQ_SEARCH_HAQ, (mpq_search_param)i, &h) != MPQ_OK ||
            mpq_search_param_info(MPQ_SEARCH_AUTOQ, (mpq_search_param)i, &a) != MPQ_OK) {
            if (i < MPQ_PARAM_EXTENSION_BASE) {
                i = MPQ_PARAM_EXTENSION_BASE - 1;
                continue;
            }
            break;
        }
        printf("  %-20s %g / %g  [%g, %g]  %s\n", h.name, h.default_value, a.default_value,
               h.min_value, h.max_value, h.description);
    }
}

/* ---- the demo ----------------------------------------------------------------------------- */

/* Directory of budget @p i of a sweep (DIR/latency-0.3), or DIR itself for a single budget. */
static void budget_dir(const options *o, int i, char *buf, size_t n)
{
    if (o->nbudgets == 0)
        snprintf(buf, n, "%s", o->out);
    else
        snprintf(buf, n, "%s/%s-%g", o->out, mpq_search_resource_name(o->budget_resource),
                 o->budget_list[i]);
}

/* A sweep's smallest budget is checked for every method before anything runs: the minimum
 * reachable fraction depends on the method's bit ranges and --set, and a refusal after an hour
 * of larger budgets would waste that hour. */
static mpq_status check_reachable(const context *cx, const char *name, const char *spec)
{
    const options *o = cx->o;
    mpq_search_method m;
    mpq_search *s = NULL;
    mpq_search_resource r;
    double f;
    mpq_status st = mpq_search_method_from_name(name, &m);
    if (st == MPQ_OK)
        st = mpq_search_create(&s, m, cx->model, cx->hw, cx->eval, cx->eval_user);
    if (st == MPQ_OK)
        st = mpq_search_parse_budget(spec, &r, &f);
    if (st == MPQ_OK)
        st = mpq_search_set_budget(s, r, f);
    if (st == MPQ_OK)
        st = mpq_search_set_param(s, MPQ_SEARCH_FIRST_LAST, MPQ_SEARCH_FIRST_LAST_FREE);
    for (int i = 0; st == MPQ_OK && i < o->nsets; i++) {
        mpq_search_param id;
        if ((st = mpq_search_param_find(o->sets[i].name, &id)) == MPQ_OK)
            st = mpq_search_set_param(s, id, o->sets[i].value);
    }
    if (st == MPQ_OK)
        st = mpq_search_prepare(s);
    mpq_search_destroy(s);
    return st;
}

/* Test top-1 against budget, one line per method, all-8-bit as a dashed line. */
static mpq_status write_sweep_svg(const char *path, const options *o, double res_acc[][MAX_METHODS],
                                  const char *const *names, const char *const *colors, int n,
                                  double ref_acc, const char *acc_name)
{
    const int W = 560, H = 380, ml = 60, mr = 20, mt = 34, mb = 50, pw = W - ml - mr,
              ph = H - mt - mb - 18 * ((n + 2) / 3);
    int nb = o->nbudgets;
    double lo = isfinite(ref_acc) ? ref_acc : 1.0, hi = isfinite(ref_acc) ? ref_acc : 0.0;
    for (int m = 0; m < n; m++)
        for (int b = 0; b < nb; b++)
            if (isfinite(res_acc[b][m])) {
                lo = fmin(lo, res_acc[b][m]);
                hi = fmax(hi, res_acc[b][m]);
            }
    if (!(hi > lo)) {
        lo -= 0.01;
        hi += 0.01;
    }
    double pad = 0.05 * (hi - lo);
    lo = fmax(0.0, lo - pad);
    hi = fmin(1.0, hi + pad);
    double x0 = o->budget_list[0], x1 = o->budget_list[nb - 1];
    if (!(x1 > x0)) {
        x0 -= 0.05;
        x1 += 0.05;
    }
    char buf[32768];
    size_t len = 0;
#define SV(...)                                                                                   \
    do {                                                                                          \
        if (len < sizeof buf)                                                                     \
            len += (size_t)snprintf(buf + len, sizeof buf - len, __VA_ARGS__);                    \
    } while (0)
#define PX(x) (ml + ((x) - x0) / (x1 - x0) * pw)
#define PY(a) (mt + (hi - (a)) / (hi - lo) * ph)
    SV("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
       "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" "
       "fill=\"white\"/>\n",
       W, H);
    SV("<text x=\"%d\" y=\"18\" text-anchor=\"middle\" font-weight=\"bold\">%s: %s against %s "
       "budget (%s)</text>\n",
       ml + pw / 2, o->model, acc_name, mpq_search_resource_name(o->budget_resource), o->hw);
    SV("<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#888\"/>\n", ml,
       mt, pw, ph);
    for (int k = 0; k <= 4; k++) {
        double a = lo + (hi - lo) * k / 4.0;
        SV("<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eee\"/>\n", ml, PY(a),
           ml + pw, PY(a));
        SV("<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.1f%%</text>\n", ml - 4, PY(a) + 4,
           100 * a);
    }
    for (int b = 0; b < nb; b++)
        SV("<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", PX(o->budget_list[b]),
           mt + ph + 14, o->budget_list[b]);
    SV("<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s budget / all-8-bit</text>\n",
       ml + pw / 2, mt + ph + 30, mpq_search_resource_name(o->budget_resource));
    if (isfinite(ref_acc))
        SV("<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#000\" "
           "stroke-dasharray=\"4 3\"/>\n",
           ml, PY(ref_acc), ml + pw, PY(ref_acc));
    for (int m = 0; m < n; m++) {
        /* a budget without a policy breaks the line */
        int open = 0;
        for (int b = 0; b < nb; b++) {
            double a = res_acc[b][m];
            if (!isfinite(a)) {
                if (open)
                    SV("\"/>\n");
                open = 0;
                continue;
            }
            if (!open)
                SV("<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
                   colors[m % 5]);
            open = 1;
            SV("%.1f,%.1f ", PX(o->budget_list[b]), PY(a));
        }
        if (open)
            SV("\"/>\n");
        for (int b = 0; b < nb; b++)
            if (isfinite(res_acc[b][m]))
                SV("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"><title>%s %g: %.2f%%"
                   "</title></circle>\n",
                   PX(o->budget_list[b]), PY(res_acc[b][m]), colors[m % 5], names[m],
                   o->budget_list[b], 100 * res_acc[b][m]);
    }
    for (int m = 0; m <= n; m++) {
        int x = ml + (m % 3) * 160, y = mt + ph + 50 + 18 * (m / 3);
        if (m < n)
            SV("<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>\n<text x=\"%d\" "
               "y=\"%d\">%s</text>\n",
               x, y - 10, colors[m % 5], x + 18, y, names[m]);
        else if (isfinite(ref_acc))
            SV("<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000\" "
               "stroke-dasharray=\"4 3\"/>\n<text x=\"%d\" y=\"%d\">w8a8 (all 8 bit)</text>\n",
               x, y - 4, x + 12, y - 4, x + 18, y);
    }
    SV("</svg>\n");
#undef SV
#undef PX
#undef PY
    if (len >= sizeof buf)
        return mpq_set_error(MPQ_ERR_INTERNAL, "%s: plot larger than %zu bytes", path,
                             sizeof buf);
    return mpq_write_file_atomic(path, buf, len);
}

static int run_demo(const options *o, context *cx, setup *su)
{
    (void)su;
    static const char *const colors[] = {"#7f7f7f", "#2ca02c", "#1f77b4", "#d62728", "#9467bd"};
    const int sweep = o->nbudgets > 0, nb = sweep ? o->nbudgets : 1;
    /* per budget: the results of its searches (a search lives until its budget's files are
     * written); accuracies kept for the table */
    result res[MAX_METHODS];
    typedef struct row {
        mpq_search_method method;
        int has_best;
        double accuracy, seconds;
        int64_t evaluations;
        mpq_search_record best;
    } row;
    row rows[MAX_BUDGETS][MAX_METHODS];
    double acc[MAX_BUDGETS][MAX_METHODS];
    const char *names[MAX_METHODS];
    int n = 0;
    mpq_status st = MPQ_OK;
    FILE *files = tmpfile();
    if (!files)
        files = stderr;
    char objective[64] = "", specs[MAX_BUDGETS][64];
    double seed = (double)o->seed;
    for (int b = 0; b < nb; b++) {
        if (sweep) {
            /* The shortest text that reads back as the same double: "0.3", not the
             * "0.29999999999999999" of %.17g, in headings, paths and summary.csv. */
            int digits = 1;
            char num[40];
            do
                snprintf(num, sizeof num, "%.*g", digits, o->budget_list[b]);
            while (strtod(num, NULL) != o->budget_list[b] && ++digits <= 17);
            snprintf(specs[b], sizeof specs[b], "%s:%s",
                     mpq_search_resource_name(o->budget_resource), num);
        } else
            snprintf(specs[b], sizeof specs[b], "%s", o->budget);
    }
    /* The demo's own files of an earlier demo in DIR: its per-method files go in run_one(). */
    static const char *const own[] = {"summary.csv", "pareto.svg", "sweep.svg"};
    for (size_t i = 0; i < sizeof own / sizeof own[0] && st == MPQ_OK; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", o->out, own[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            st = mpq_set_error(MPQ_ERR_IO, "cannot remove the earlier run's %s: %s", path,
                               strerror(errno));
    }
    char methods[256];
    snprintf(methods, sizeof methods, "%s", o->methods);
    for (char *tok = strtok(methods, ","); tok && n < MAX_METHODS;
         tok = strtok(NULL, ","))
        names[n++] = tok;
    for (int m = 0; sweep && st == MPQ_OK && m < n; m++)
        st = check_reachable(cx, names[m], specs[0]);
    if (st != MPQ_OK) {
        if (files != stderr)
            fclose(files);
        return cli_fail("search --demo", st);
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int ran = 0;
    for (int bi = 0; bi < nb && st == MPQ_OK; bi++) {
        options ob = *o;
        char dir0[1100];
        budget_dir(o, bi, dir0, sizeof dir0);
        ob.budget = specs[bi];
        context cb = *cx;
        cb.o = &ob;
        if (sweep && !o->quiet)
            fprintf(stderr, "== budget %s (%d of %d) ==\n", specs[bi], bi + 1, nb);
        ran = 0;
        for (int m = 0; m < n && st == MPQ_OK; m++) {
            mpq_search_method meth;
            if ((st = mpq_search_method_from_name(names[m], &meth)) != MPQ_OK)
                break;
            char dir[1200]; /* created and probed by check_output_dirs() */
            snprintf(dir, sizeof dir, "%s/%s", dir0, names[m]);
            long long episodes = o->demo_episodes;
            /* all pairs, all probes: uniform stops after its last pair, ilp after its solution
             * (capped at --demo-episodes, ilp lost a probe and 2 points at 0.3, guide 4.9) */
            if (meth == MPQ_SEARCH_UNIFORM || meth == MPQ_SEARCH_ILP)
                episodes = 1000;
            /* lazy greedy needs 2 x layers evaluations to score every lowering once, then a few
             * per step: on fashion-cnn it reaches a 0.5 latency budget in ~150 */
            if (meth == MPQ_SEARCH_GREEDY)
                episodes = 3 * o->demo_episodes;
            st = run_one(&cb, meth, episodes, dir, o->demo_finetune, &res[m], files);
            ran++;
            row *r = &rows[bi][m];
            r->method = meth;
            r->has_best = res[m].has_best;
            r->accuracy = res[m].accuracy;
            r->seconds = res[m].seconds;
            r->evaluations = res[m].count.calls;
            r->best = res[m].best;
            acc[bi][m] = res[m].has_best ? res[m].accuracy : NAN;
        }
        if (st == MPQ_OK && bi == 0) {
            describe_objective(res[0].search, objective, sizeof objective);
            mpq_search_get_param(res[0].search, MPQ_SEARCH_SEED, &seed);
        }
        if (st == MPQ_OK) {
            series ser[MAX_METHODS];
            for (int m = 0; m < n; m++) {
                ser[m].label = names[m];
                ser[m].color = colors[m % 5];
                ser[m].search = res[m].search;
            }
            char path[1200];
            snprintf(path, sizeof path, "%s/pareto.svg", dir0);
            if (write_svg(path, ser, n) == MPQ_OK)
                fprintf(files, "  %s\n", path);
        }
        int conflict = st != MPQ_OK && ran > 0 && res[ran - 1].conflict;
        for (int m = 0; m < ran; m++) {
            mpq_search_destroy(res[m].search);
            res[m].search = NULL;
        }
        if (st != MPQ_OK) {
            if (files != stderr)
                fclose(files);
            return conflict ? cli_usage_error("search", "%s", mpq_last_error())
                            : cli_fail("search --demo", st);
        }
    }
    /* all-8-bit reference row: same fine-tune as the others for a fair comparison */
    mpq_policy *ref = NULL;
    double ref_acc = NAN;
    mpq_search_record ref_rec;
    memset(&ref_rec, 0, sizeof ref_rec);
    if ((st = mpq_policy_create_uniform(&ref, cx->model, 8, 8)) == MPQ_OK) {
        if (cx->runtime && o->demo_finetune > 0)
            st = mpq_evaluator_finetune(cx->runtime, ref, (int32_t)o->demo_finetune,
                                        MPQ_SPLIT_TEST, &ref_acc, NULL);
        else
            st = cx->eval(cx->eval_user, ref, &ref_acc);
        mpq_hw_cost c = {.size = sizeof c};
        if (st == MPQ_OK)
            st = mpq_hw_reference_total(cx->hw, cx->model, &c);
        ref_rec.latency_s = c.latency_s;
        ref_rec.energy_j = c.energy_j;
        ref_rec.area = isfinite(c.area_mm2) ? c.area_mm2 : c.bram36;
        ref_rec.size_bytes = c.size_bytes;
        ref_rec.latency_ratio = ref_rec.energy_ratio = ref_rec.area_ratio = ref_rec.size_ratio = 1;
    }
    mpq_policy_destroy(ref);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double total = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    int finetuned = cx->runtime && o->demo_finetune > 0;
    /* What the searches used: after --resume, their checkpoints' settings. */
    char budget[128];
    if (sweep)
        snprintf(budget, sizeof budget, "%s budgets %s of all-8-bit",
                 mpq_search_resource_name(o->budget_resource),
                 strchr(o->budgets, ':') ? strchr(o->budgets, ':') + 1 : o->budgets);
    else if (strchr(objective, ':'))
        snprintf(budget, sizeof budget, "budget %s of all-8-bit", objective);
    else
        snprintf(budget, sizeof budget, "%s", objective);
    printf("\nmpq demo: %s on %s, %s, seed %.0f%s\n", o->model, o->hw, budget, seed,
           cx->is_proxy ? " (PROXY accuracy: closed-form stand-in)" : "");
    if (finetuned)
        printf("test top-1 after %lld fine-tune epoch(s) of each method's best policy; area in "
               "BRAM36 (zynq7020) or mm^2\n",
               o->demo_finetune);
    const char *acc_name = cx->is_proxy ? "proxy-acc" : finetuned ? "test-top1" : "val-top1";
    if (sweep) {
        printf("evals: distinct policies each search scored; time: the search alone (re-scoring "
               "and fine-tune not included)\n");
        printf("%-8s %6s %9s %12s %7s %12s %7s %10s %7s %6s %6s\n", "method", "budget", acc_name,
               "latency(ms)", "x8bit", "energy(mJ)", "x8bit", "size(KB)", "x8bit", "evals",
               "time");
        if (st == MPQ_OK)
            printf("%-8s %6s %8.2f%% %12.4f %7.3f %12.4f %7.3f %10.1f %7.3f %6s %6s\n", "w8a8",
                   "-", 100.0 * ref_acc, 1e3 * ref_rec.latency_s, 1.0, 1e3 * ref_rec.energy_j,
                   1.0, ref_rec.size_bytes / 1024.0, 1.0, "-", "-");
        for (int m = 0; m < n; m++)
            for (int bi = 0; bi < nb; bi++) {
                const row *r = &rows[bi][m];
                char t[16];
                fmt_duration(r->seconds, t, sizeof t);
                if (!r->has_best) {
                    printf("%-8s %6g (no policy within the budget) %30lld %6s\n", names[m],
                           o->budget_list[bi], (long long)r->evaluations, t);
                    continue;
                }
                printf("%-8s %6g %8.2f%% %12.4f %7.3f %12.4f %7.3f %10.1f %7.3f %6lld %6s\n",
                       names[m], o->budget_list[bi], 100.0 * r->accuracy,
                       1e3 * r->best.latency_s, r->best.latency_ratio, 1e3 * r->best.energy_j,
                       r->best.energy_ratio, r->best.size_bytes / 1024.0, r->best.size_ratio,
                       (long long)r->evaluations, t);
            }
        printf("\n%s by budget:\n%-8s", acc_name, "method");
        for (int bi = 0; bi < nb; bi++)
            printf(" %8g", o->budget_list[bi]);
        printf("\n");
        for (int m = 0; m < n; m++) {
            printf("%-8s", names[m]);
            for (int bi = 0; bi < nb; bi++)
                if (rows[bi][m].has_best)
                    printf(" %7.2f%%", 100.0 * rows[bi][m].accuracy);
                else
                    printf(" %8s", "-");
            printf("\n");
        }
    } else {
        print_table_header(stdout, cx->is_proxy, finetuned);
        if (st == MPQ_OK)
            print_row(stdout, "w8a8", ref_acc, &ref_rec, 0.0);
        for (int m = 0; m < n; m++) {
            if (!rows[0][m].has_best)
                printf("%-8s (no policy within the budget)\n", names[m]);
            else
                print_row(stdout, names[m], rows[0][m].accuracy, &rows[0][m].best,
                          rows[0][m].seconds);
        }
    }
    char csvbuf[16384];
    size_t cl = (size_t)snprintf(csvbuf, sizeof csvbuf,
                                 "method,budget,accuracy,latency_s,latency_ratio,energy_j,"
                                 "energy_ratio,area,area_ratio,size_bytes,size_ratio,evaluations,"
                                 "search_seconds\n");
    for (int m = 0; m < n; m++)
        for (int bi = 0; bi < nb; bi++) {
            const row *r = &rows[bi][m];
            double frac = sweep ? o->budget_list[bi] : NAN;
            if (!sweep) {
                mpq_search_resource rr;
                if (mpq_search_parse_budget(specs[0], &rr, &frac) != MPQ_OK ||
                    strcmp(o->objective, "accuracy") == 0)
                    frac = NAN;
            }
            char fb[32] = "";
            if (isfinite(frac))
                snprintf(fb, sizeof fb, "%g", frac);
            if (!r->has_best || cl >= sizeof csvbuf)
                continue;
            cl += (size_t)snprintf(csvbuf + cl, sizeof csvbuf - cl,
                                   "%s,%s,%.6f,%.9g,%.6f,%.9g,%.6f,%.6g,%.6f,%.0f,%.6f,%lld,%.1f\n",
                                   names[m], fb, r->accuracy, r->best.latency_s,
                                   r->best.latency_ratio, r->best.energy_j, r->best.energy_ratio,
                                   r->best.area, r->best.area_ratio, r->best.size_bytes,
                                   r->best.size_ratio, (long long)r->evaluations, r->seconds);
        }
    char path[1200];
    snprintf(path, sizeof path, "%s/summary.csv", o->out);
    if (write_text(path, csvbuf) == MPQ_OK)
        fprintf(files, "  %s\n", path);
    if (sweep) {
        snprintf(path, sizeof path, "%s/sweep.svg", o->out);
        if (write_sweep_svg(path, o, acc, names, colors, n, st == MPQ_OK ? ref_acc : NAN,
                            acc_name) == MPQ_OK)
            fprintf(files, "  %s\n", path);
    }
    char t[16];
    fmt_duration(total, t, sizeof t);
    printf("\ntotal time %s. Files written:\n", t);
    if (files != stderr) {
        rewind(files);
        char line[1300];
        while (fgets(line, sizeof line, files))
            fputs(line, stdout);
        fclose(files);
    }
    return CLI_OK;
}

/* ---- command-line checks ------------------------------------------------------------------ */

static int is_zoo_model(const char *name)
{
    size_t len = strlen(name);
    return !is_builtin_net(name) && !(len > 7 && strcmp(name + len - 7, ".mpqnet") == 0) &&
           !(len > 5 && strcmp(name + len - 5, ".onnx") == 0);
}

/* Calls @p fn on each method name of the demo's --methods list (a copy: strtok writes). */
static int for_each_demo_method(const options *o, int (*fn)(const options *, const char *, void *),
                                void *user)
{
    char methods[256];
    if (strlen(o->methods) >= sizeof methods)
        return cli_usage_error("search", "--methods: list longer than %zu bytes",
                               sizeof methods - 1);
    snprintf(methods, sizeof methods, "%s", o->methods);
    char *save = NULL;
    for (char *tok = strtok_r(methods, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int rc = fn(o, tok, user);
        if (rc != CLI_OK)
            return rc;
    }
    return CLI_OK;
}

static int check_demo_method(const options *o, const char *name, void *user)
{
    (void)o;
    unsigned *seen = user;
    mpq_search_method m;
    if (mpq_search_method_from_name(name, &m) != MPQ_OK)
        return cli_usage_error("search", "--methods: %s", mpq_last_error());
    if (*seen & (1u << m))
        return cli_usage_error("search", "--methods: '%s' listed twice (each method writes to "
                                         "DIR/%s)",
                               name, name);
    *seen |= 1u << m;
    return CLI_OK;
}

static int check_demo_dir(const options *o, const char *name, void *user)
{
    (void)user;
    int rc = CLI_OK;
    for (int b = 0; b < (o->nbudgets ? o->nbudgets : 1) && rc == CLI_OK; b++) {
        char base[CLI_MAX_PATH + 64], dir[CLI_MAX_PATH + 128];
        budget_dir(o, b, base, sizeof base);
        if (o->nbudgets)
            rc = cli_check_output_dir("search", "--out", base, 1);
        snprintf(dir, sizeof dir, "%s/%s", base, name);
        if (rc == CLI_OK)
            rc = cli_check_output_dir("search", "--out", dir, 1);
    }
    return rc;
}

static int check_output_dirs(const options *o)
{
    int rc = cli_check_output_dir("search", "--out", o->out, 1);
    if (rc == CLI_OK && o->demo)
        rc = for_each_demo_method(o, check_demo_dir, NULL);
    if (rc == CLI_OK && is_builtin_net(o->model)) {
        /* A network not cached yet is trained first (minutes) and then saved there. */
        char dir[1024], path[1200];
        cache_dir(o, dir, sizeof dir);
        snprintf(path, sizeof path, "%s/%s.mpqnet", dir, o->model);
        if (access(path, R_OK) != 0)
            rc = cli_check_output_dir("search", "--cache", dir, 1);
    }
    return rc;
}

/* A duration option: seconds > 0 (0 would stop a run before it starts). */
static int parse_seconds(const char *option, const char *arg, double *out)
{
    int rc = cli_parse_double("search", option, arg, 0, 1e9, out);
    if (rc == CLI_OK && !(*out > 0))
        return cli_usage_error("search", "%s needs seconds > 0, got '%s'", option, arg);
    return rc;
}

/* --budgets "[R:]F,F,...": fractions in (0, 1), strictly increasing (a sweep's table and plot
 * read left to right; a repeated or unsorted list is more likely a typo than a wish). */
static int parse_budgets(options *o)
{
    const char *list = o->budgets, *colon = strchr(list, ':');
    char res[32] = "latency";
    if (colon) {
        if ((size_t)(colon - list) >= sizeof res)
            return cli_usage_error("search", "--budgets: unknown resource in '%s'", list);
        snprintf(res, sizeof res, "%.*s", (int)(colon - list), list);
        list = colon + 1;
    }
    if (mpq_search_resource_from_name(res, &o->budget_resource) != MPQ_OK)
        return cli_usage_error("search", "--budgets: %s", mpq_last_error());
    o->nbudgets = 0;
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char tok[64];
        if (len == 0)
            return cli_usage_error("search", "--budgets: empty budget in '%s' (a comma-separated "
                                             "list such as 0.25,0.3,0.4)",
                                   o->budgets);
        if (len >= sizeof tok)
            return cli_usage_error("search", "--budgets: '%.*s' is not a number", (int)len, p);
        if (o->nbudgets == MAX_BUDGETS)
            return cli_usage_error("search", "--budgets: more than %d budgets", MAX_BUDGETS);
        snprintf(tok, sizeof tok, "%.*s", (int)len, p);
        int rc = cli_parse_double("search", "--budgets", tok, 0, 1, &o->budget_list[o->nbudgets]);
        if (rc != CLI_OK)
            return rc;
        double f = o->budget_list[o->nbudgets];
        if (!(f > 0 && f < 1))
            return cli_usage_error("search", "--budgets: %s is not a fraction in (0, 1)", tok);
        if (o->nbudgets > 0 && !(f > o->budget_list[o->nbudgets - 1]))
            return cli_usage_error("search", "--budgets must increase: %s after %g in '%s'", tok,
                                   o->budget_list[o->nbudgets - 1], o->budgets);
        o->nbudgets++;
        if (!end)
            break;
        p = end + 1;
    }
    return CLI_OK;
}

/* Everything that can be checked without the network: names, values against the parameters'
 * ranges, options that would be silently ignored. A search may first train a network for minutes
 * and then run for hours; none of this may surface only then. */
static int validate_options(options *o)
{
    int rc;
    if ((rc = cli_check_path("search", "--out", o->out)) != CLI_OK ||
        (rc = cli_check_path("search", "--model", o->model)) != CLI_OK ||
        (o->data && (rc = cli_check_path("search", "--data", o->data)) != CLI_OK) ||
        (o->cache && (rc = cli_check_path("search", "--cache", o->cache)) != CLI_OK))
        return rc;
    if (o->demo && o->single_only)
        return cli_usage_error("search", "%s applies to a single search, not to --demo (see "
                                         "--methods, --demo-episodes, --demo-finetune)",
                               o->single_only);
    if (!o->demo && o->demo_only)
        return cli_usage_error("search", "%s needs --demo", o->demo_only);
    if (o->demo) {
        unsigned seen = 0;
        if ((rc = for_each_demo_method(o, check_demo_method, &seen)) != CLI_OK)
            return rc;
        if (!seen)
            return cli_usage_error("search", "--methods: no method in '%s'", o->methods);
    }
    if (o->budgets) {
        if (o->budget_given)
            return cli_usage_error("search", "--budgets replaces --budget (give the resource as "
                                             "--budgets R:F,F,...)");
        if (strcmp(o->objective, "accuracy") == 0)
            return cli_usage_error("search", "--budgets has no effect with --objective accuracy");
        if (o->resume)
            return cli_usage_error("search", "--resume continues one demo; a --budgets sweep "
                                             "starts afresh");
        int rc2 = parse_budgets(o);
        if (rc2 != CLI_OK)
            return rc2;
    }
    if (strcmp(o->objective, "accuracy") == 0) {
        if (o->budget_given)
            return cli_usage_error("search", "--budget has no effect with --objective accuracy");
    } else {
        mpq_search_resource r;
        double frac;
        if (mpq_search_parse_budget(o->budget, &r, &frac) != MPQ_OK)
            return cli_usage_error("search", "%s", mpq_last_error());
    }
    for (int i = 0; i < o->nsets; i++) {
        mpq_search_param id;
        mpq_param_info info = {sizeof info, NULL, NULL, 0, 0, 0, 0};
        const kv *k = &o->sets[i];
        if (mpq_search_param_find(k->name, &id) != MPQ_OK ||
            mpq_search_param_info(MPQ_SEARCH_HAQ, id, &info) != MPQ_OK)
            return cli_usage_error("search", "--set: %s", mpq_last_error());
        if (k->value < info.min_value || k->value > info.max_value ||
            (info.is_integer && k->value != floor(k->value)))
            return cli_usage_error("search", "--set %s needs %s in [%g, %g], got %g", k->name,
                                   info.is_integer ? "an integer" : "a number", info.min_value,
                                   info.max_value, k->value);
    }
    for (int i = 0; i < o->neval_sets; i++) {
        mpq_eval_param id;
        mpq_param_info info = {sizeof info, NULL, NULL, 0, 0, 0, 0};
        const kv *k = &o->eval_sets[i];
        if (mpq_evaluator_param_find(k->name, &id) != MPQ_OK ||
            mpq_evaluator_param_info(id, &info) != MPQ_OK) {
            char names[512];
            size_t len = 0;
            for (int p = 0; len < sizeof names; p++) {
                mpq_param_info pi = {sizeof pi, NULL, NULL, 0, 0, 0, 0};
                if (mpq_evaluator_param_info((mpq_eval_param)p, &pi) != MPQ_OK)
                    break;
                len += (size_t)snprintf(names + len, sizeof names - len, "%s%s",
                                        len ? ", " : "", pi.name);
            }
            return cli_usage_error("search", "--eval-set: unknown evaluator parameter '%s' "
                                             "(valid: %s)",
                                   k->name, names);
        }
        if (k->value < info.min_value || k->value > info.max_value ||
            (info.is_integer && k->value != floor(k->value)))
            return cli_usage_error("search", "--eval-set %s needs %s in [%g, %g], got %g",
                                   k->name, info.is_integer ? "an integer" : "a number",
                                   info.min_value, info.max_value, k->value);
    }
    /* A zoo model is scored by the closed-form proxy: there is no network to evaluate, fine-tune
     * or re-score, so these options would do nothing. */
    if (is_zoo_model(o->model)) {
        const char *what = o->neval_sets ? "--eval-set"
                           : o->finetune_epochs > 0 ? "--finetune-epochs"
                           : o->rescore > 0 ? "--rescore"
                                            : NULL;
        if (what)
            return cli_usage_error("search", "%s needs a real network (fashion-cnn, "
                                             "fashion-tiny, a .mpqnet or .onnx file); '%s' is "
                                             "scored by the closed-form proxy",
                                   what, o->model);
    }
    return CLI_OK;
}

/* ---- entry -------------------------------------------------------------------------------- */

int cmd_search(int argc, char **argv)
{
    enum {
        OPT_HW = 256, OPT_OBJECTIVE, OPT_CACHE, OPT_SET, OPT_EVAL_SET, OPT_FINETUNE, OPT_CKPT,
        OPT_RESUME, OPT_TIME, OPT_LIST, OPT_DEMO, OPT_METHODS, OPT_DEMO_EPISODES,
        OPT_DEMO_FINETUNE, OPT_RESCORE, OPT_BUDGETS, OPT_WORKERS, OPT_WORKER_TIMEOUT,
        OPT_EVAL_DELAY, OPT_EVAL_FAIL
    };
    static const struct option opts[] = {
        {"method", required_argument, NULL, 'm'},
        {"model", required_argument, NULL, 'M'},
        {"hw", required_argument, NULL, OPT_HW},
        {"budget", required_argument, NULL, 'b'},
        {"objective", required_argument, NULL, OPT_OBJECTIVE},
        {"episodes", required_argument, NULL, 'e'},
        {"seed", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},
        {"data", required_argument, NULL, 'd'},
        {"cache", required_argument, NULL, OPT_CACHE},
        {"set", required_argument, NULL, OPT_SET},
        {"eval-set", required_argument, NULL, OPT_EVAL_SET},
        {"finetune-epochs", required_argument, NULL, OPT_FINETUNE},
        {"checkpoint-every", required_argument, NULL, OPT_CKPT},
        {"resume", no_argument, NULL, OPT_RESUME},
        {"time-limit", required_argument, NULL, OPT_TIME},
        {"list-params", no_argument, NULL, OPT_LIST},
        {"demo", no_argument, NULL, OPT_DEMO},
        {"methods", required_argument, NULL, OPT_METHODS},
        {"demo-episodes", required_argument, NULL, OPT_DEMO_EPISODES},
        {"demo-finetune", required_argument, NULL, OPT_DEMO_FINETUNE},
        {"rescore", required_argument, NULL, OPT_RESCORE},
        {"budgets", required_argument, NULL, OPT_BUDGETS},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"worker-timeout", required_argument, NULL, OPT_WORKER_TIMEOUT},
        {"eval-delay", required_argument, NULL, OPT_EVAL_DELAY},
        {"eval-fail", required_argument, NULL, OPT_EVAL_FAIL},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    options o;
    memset(&o, 0, sizeof o);
    o.method = "haq";
    o.model = "fashion-cnn";
    o.hw = "zynq7020";
    o.budget = "latency:0.5";
    o.objective = "resource";
    o.out = "mpq-search-out";
    o.methods = "uniform,greedy,ilp,haq,autoq";
    o.episodes = 0;
    o.seed = 234;
    o.checkpoint_every = 10;
    o.demo_episodes = 100;
    o.demo_finetune = 1;
    o.rescore = -1;
    o.worker_timeout = 3600.0;
    int c, rc;
    /* Parse from argv[1] even when the caller ran getopt before (mpq help --all calls every
     * command in turn without resetting it, and a search without --help is expensive). */
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "m:M:b:e:s:o:d:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            o.method = optarg;
            o.single_only = "--method";
            break;
        case 'M': o.model = optarg; break;
        case OPT_HW: o.hw = optarg; break;
        case 'b':
            o.budget = optarg;
            o.budget_given = 1;
            break;
        case OPT_OBJECTIVE:
            if (strcmp(optarg, "resource") != 0 && strcmp(optarg, "accuracy") != 0)
                return cli_usage_error("search", "--objective must be resource or accuracy, got "
                                                 "'%s'",
                                       optarg);
            o.objective = optarg;
            o.objective_given = 1;
            break;
        case 'e':
            if ((rc = parse_search_int("--episodes", optarg, MPQ_SEARCH_EPISODES, 1,
                                       &o.episodes)) != CLI_OK)
                return rc;
            o.single_only = "--episodes";
            break;
        case OPT_DEMO_EPISODES:
            if ((rc = parse_search_int("--demo-episodes", optarg, MPQ_SEARCH_EPISODES, 1,
                                       &o.demo_episodes)) != CLI_OK)
                return rc;
            o.demo_only = "--demo-episodes";
            break;
        case 's':
            if ((rc = parse_search_int("--seed", optarg, MPQ_SEARCH_SEED, 0, &o.seed)) != CLI_OK)
                return rc;
            o.seed_given = 1;
            break;
        case OPT_CKPT:
            if ((rc = parse_search_int("--checkpoint-every", optarg, MPQ_SEARCH_CHECKPOINT_EVERY, 0,
                                       &o.checkpoint_every)) != CLI_OK)
                return rc;
            break;
        case OPT_RESCORE:
            if ((rc = parse_search_int("--rescore", optarg, MPQ_SEARCH_KEEP_TOP, 0,
                                       &o.rescore)) != CLI_OK)
                return rc;
            break;
        case OPT_FINETUNE:
        case OPT_DEMO_FINETUNE:
            /* the same bound as mpq eval --epochs and the network's own epochs */
            if ((rc = cli_parse_int("search",
                                    c == OPT_FINETUNE ? "--finetune-epochs" : "--demo-finetune",
                                    optarg, 0, 1000,
                                    c == OPT_FINETUNE ? &o.finetune_epochs : &o.demo_finetune)) !=
                CLI_OK)
                return rc;
            if (c == OPT_FINETUNE)
                o.single_only = "--finetune-epochs";
            else
                o.demo_only = "--demo-finetune";
            break;
        case OPT_TIME:
            if ((rc = parse_seconds("--time-limit", optarg, &o.time_limit)) != CLI_OK)
                return rc;
            break;
        case 'o': o.out = optarg; break;
        case 'd': o.data = optarg; break;
        case OPT_CACHE: o.cache = optarg; break;
        case OPT_SET:
        case OPT_EVAL_SET: {
            kv *arr = c == OPT_SET ? o.sets : o.eval_sets;
            int *n = c == OPT_SET ? &o.nsets : &o.neval_sets;
            const char *opt = c == OPT_SET ? "--set" : "--eval-set";
            if (*n >= MAX_SETS)
                return cli_usage_error("search", "more than %d %s options", MAX_SETS, opt);
            if ((rc = cli_parse_name_value("search", opt, optarg, arr[*n].name,
                                           sizeof arr[*n].name, &arr[*n].value)) != CLI_OK)
                return rc;
            (*n)++;
            break;
        }
        case OPT_RESUME: o.resume = 1; break;
        case OPT_LIST: list_params(); return CLI_OK;
        case OPT_DEMO: o.demo = 1; break;
        case OPT_METHODS:
            o.methods = optarg;
            o.demo_only = "--methods";
            break;
        case OPT_BUDGETS:
            o.budgets = optarg;
            o.demo_only = "--budgets";
            break;
        case OPT_WORKERS:
            if (strcmp(optarg, "mpi") == 0)
                o.workers_mpi = 1;
            else if (strcmp(optarg, "local") != 0)
                return cli_usage_error("search", "--workers must be local or mpi, got '%s'",
                                       optarg);
            break;
        case OPT_WORKER_TIMEOUT:
            if ((rc = parse_seconds("--worker-timeout", optarg, &o.worker_timeout)) != CLI_OK)
                return rc;
            break;
        case OPT_EVAL_DELAY:
            if ((rc = cli_parse_int("search", "--eval-delay", optarg, 0, 3600000,
                                    &o.eval_delay_ms)) != CLI_OK)
                return rc;
            break;
        case OPT_EVAL_FAIL: o.eval_fail = optarg; break;
        case 'q': o.quiet = 1; break;
        case 'h': search_usage(stdout); return CLI_OK;
        default:
            return cli_usage_error("search", "unknown option or missing value '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("search", "unexpected argument '%s'", argv[optind]);
    if (o.demo && !o.budget_given)
        o.budget = DEMO_BUDGET;
    if ((rc = validate_options(&o)) != CLI_OK)
        return rc;
    if (o.workers_mpi) {
#ifndef MPQ_HAVE_MPI
        return cli_usage_error("search", "--workers mpi: this mpq was built without MPI (apt-get "
                                         "install libopenmpi-dev openmpi-bin, then meson setup "
                                         "-Dmpi=enabled)");
#endif
        if (o.demo)
            return cli_usage_error("search", "--workers mpi runs one search, not --demo");
    }
    mpq_search_method method;
    mpq_status st = mpq_search_method_from_name(o.method, &method);
    if (st != MPQ_OK)
        return cli_usage_error("search", "%s", mpq_last_error());
    context cx;
    memset(&cx, 0, sizeof cx);
    cx.o = &o;
    if ((st = mpq_hw_create(&cx.hw, o.hw)) != MPQ_OK)
        return cli_usage_error("search", "%s", mpq_last_error());
    /* Every directory the run writes to, before any work: a long run must not end unable to
     * save its results. */
    if ((rc = check_output_dirs(&o)) != CLI_OK) {
        mpq_hw_destroy(cx.hw);
        return rc;
    }
#ifdef MPQ_HAVE_MPI
    int rank = 0, nranks = 1;
    mpq_dist *dist = NULL;
    if (o.workers_mpi) {
        MPI_Init(NULL, NULL);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &nranks);
        /* rank 0 sets up first: a built-in network is trained and cached once, then loaded */
        o.worker = rank > 0;
        if (rank > 0)
            mpi_wait_all();
    }
#endif
    setup su;
    st = setup_evaluator(&o, &su, &cx);
    padded_eval pe = {cx.eval, cx.eval_user, o.eval_delay_ms, 0, 0};
    if (st == MPQ_OK && o.eval_fail) {
        mpq_policy *fp = NULL;
        if ((st = mpq_policy_from_spec(&fp, cx.model, o.eval_fail)) == MPQ_OK) {
            pe.has_fail = 1;
            pe.fail_hash = mpq_policy_hash(fp);
        }
        mpq_policy_destroy(fp);
    }
    if (o.eval_delay_ms > 0 || pe.has_fail) {
        cx.eval = padded_evaluate;
        cx.eval_user = &pe;
    }
#ifdef MPQ_HAVE_MPI
    if (o.workers_mpi && st == MPQ_OK && (st = mpq_dist_create(&dist, cx.model)) == MPQ_OK)
        st = mpq_dist_set_timeout(dist, o.worker_timeout);
    if (o.workers_mpi && st != MPQ_OK) {
        /* the other ranks wait for this one: end the whole job */
        cli_fail("search", st);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (o.workers_mpi && rank == 0 && nranks > 1)
        mpi_wait_all();
    if (o.workers_mpi && rank > 0) {
        if ((st = mpq_dist_serve(dist, cx.eval, cx.eval_user)) != MPQ_OK) {
            cli_fail("search", st);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        mpq_dist_destroy(dist);
        setup_free(&su);
        mpq_hw_destroy(cx.hw);
        MPI_Finalize();
        return CLI_OK;
    }
    if (dist && nranks > 1) {
        cx.batch = mpq_dist_batch_evaluate;
        cx.batch_user = dist;
        fprintf(stderr, "MPI: rank 0 runs the search, %d worker rank(s) evaluate\n", nranks - 1);
    }
#endif
    if (st != MPQ_OK) {
        setup_free(&su);
        mpq_hw_destroy(cx.hw);
        return cli_fail("search", st);
    }
    if (o.demo) {
        rc = run_demo(&o, &cx, &su);
    } else {
        result res;
        FILE *files = tmpfile();
        st = run_one(&cx, method, o.episodes, o.out, o.finetune_epochs, &res,
                     files ? files : stderr);
        if (st != MPQ_OK && res.conflict) {
            rc = cli_usage_error("search", "%s", mpq_last_error());
        } else if (st != MPQ_OK) {
            rc = cli_fail("search", st);
            /* A run refused before its first episode (e.g. an impossible budget) wrote nothing:
             * no file list then. */
            if (files && ftell(files) > 0) {
                rewind(files);
                char line[1300];
                fprintf(stderr, "history so far written:\n");
                while (fgets(line, sizeof line, files))
                    fputs(line, stderr);
            }
        } else {
            rc = CLI_OK;
            char objective[64];
            describe_objective(res.search, objective, sizeof objective);
            printf("%s on %s (%s), %s%s: %lld episodes in %.1f s\n", mpq_search_method_name(method),
                   o.model, o.hw, objective, cx.is_proxy ? ", PROXY accuracy" : "",
                   (long long)mpq_search_get_history_count(res.search), res.seconds);
            print_table_header(stdout, cx.is_proxy, res.finetuned);
            if (res.has_best)
                print_row(stdout, mpq_search_method_name(method), res.accuracy, &res.best,
                          res.seconds);
            else
                printf("no policy within the budget was found\n");
            printf("files written:\n");
            if (files) {
                rewind(files);
                char line[1300];
                while (fgets(line, sizeof line, files))
                    fputs(line, stdout);
            }
        }
        if (files)
            fclose(files);
#ifdef MPQ_HAVE_MPI
        if (dist && nranks > 1) {
            mpq_dist_stats ds = {.size = sizeof ds};
            int64_t episodes = res.search ? mpq_search_get_history_count(res.search) : 0;
            if (mpq_dist_get_stats(dist, &ds) == MPQ_OK)
                fprintf(stderr,
                        "MPI: %lld evaluations on %d workers in %lld batches, %lld messages "
                        "(%lld bytes), %.2f messages per episode\n",
                        (long long)ds.jobs, nranks - 1, (long long)ds.batches,
                        (long long)ds.messages, (long long)ds.bytes,
                        episodes > 0 ? (double)ds.messages / (double)episodes : 0.0);
        }
#endif
        mpq_search_destroy(res.search);
    }
    setup_free(&su);
    mpq_hw_destroy(cx.hw);
#ifdef MPQ_HAVE_MPI
    if (dist) {
        if (nranks > 1 && mpq_dist_stop(dist) != MPQ_OK) {
            /* workers that never answered would hold MPI_Finalize forever */
            fprintf(stderr, "mpq search: %s; ending the MPI job\n", mpq_last_error());
            MPI_Abort(MPI_COMM_WORLD, rc != CLI_OK ? rc : 1);
        }
        mpq_dist_destroy(dist);
        MPI_Finalize();
    }
#endif
    return rc;
}
