/* How well does a search episode's score predict what the user finally gets? (issue 14, part 5)
 *
 * Collects distinct policies at one latency budget from short searches (by default HAQ, AutoQ,
 * greedy and random, their best policies taken rank by rank in turn), scores each under several
 * evaluator settings (the episode signal: the demo's 2000 validation images, optionally after
 * BN re-estimation or a few fine-tune batches), then fine-tunes each for the demo's final epoch
 * and scores it on the test split. Prints, per setting, the Spearman rank correlation between
 * the episode scores and the final test top-1, and the mean seconds per evaluation. The final
 * figure is the demo's own (mpq_evaluator_finetune, 1 epoch, test split), so the correlation is
 * the one the demo's searches live with.
 *
 * Usage: bench-signal [-n NET.mpqnet] [-d DATA_DIR] [-w HW] [-b BUDGET] [-m METHODS]
 *                     [-e EPISODES] [-p POLICIES] [-s SEED] [-o OUT_DIR] [-P DIR] [-r FIRST:END]
 *                     [-F] [SETTING ...]
 * A SETTING is a comma-separated list of evaluator parameters on top of the demo's (limit=2000),
 * e.g. "bn_batches=4" or "finetune_batches=20,bn_batches=4"; "-" is the demo's own. Defaults:
 * the cached ~/.cache/mpq/fashion-cnn.mpqnet, /usr/share/datasets/fashion-mnist, zynq7020,
 * latency 0.3, haq,autoq,greedy,random, 40 episodes each, 24 policies, seed 234, and the
 * settings "-" bn_batches=1 bn_batches=4 finetune_batches=20 finetune_batches=20,bn_batches=4.
 * OUT_DIR (default bench-signal-out) receives the policies as JSON (pNN.json, written before
 * any scoring) and results.csv (one row per policy, rewritten after each final fine-tune with the
 * correlations so far on stdout), so that a figure can be checked policy by policy. -P DIR scores
 * the pNN.json of an earlier run instead of searching; -r FIRST:END scores only policies
 * FIRST..END-1, so that several processes can share the final fine-tunes (bench/signal_merge.py
 * joins their results.csv and prints the correlations over all of them); -F scores the episode
 * signals only (more settings for policies whose finals another run has: the merge joins them). Timings depend on the machine's load;
 * scores and correlations do not (the evaluator is deterministic for a seed). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mpq/mpq.h>

#define MAX_POL 200
#define MAX_SET 16

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int die(const char *what, mpq_status st)
{
    fprintf(stderr, "bench-signal: %s: %s (%s)\n", what, mpq_status_string(st), mpq_last_error());
    return 1;
}

/* Average ranks (ties share the mean rank). */
static void ranks(const double *x, int n, double *r)
{
    for (int i = 0; i < n; i++) {
        int less = 0, equal = 0;
        for (int j = 0; j < n; j++) {
            less += x[j] < x[i];
            equal += x[j] == x[i];
        }
        r[i] = less + 0.5 * (equal - 1);
    }
}

static double spearman(const double *x, const double *y, int n)
{
    double rx[MAX_POL], ry[MAX_POL], mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    ranks(x, n, rx);
    ranks(y, n, ry);
    for (int i = 0; i < n; i++) {
        mx += rx[i] / n;
        my += ry[i] / n;
    }
    for (int i = 0; i < n; i++) {
        sxy += (rx[i] - mx) * (ry[i] - my);
        sxx += (rx[i] - mx) * (rx[i] - mx);
        syy += (ry[i] - my) * (ry[i] - my);
    }
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
}

/* Applies "name=value,name=value" on top of the demo's settings ("-": none). */
static mpq_status apply_setting(mpq_evaluator *ev, const char *spec)
{
    static const char *const names[] = {"finetune_batches", "bn_batches", "limit"};
    static const double demo[] = {0, 0, 2000};
    mpq_status st = MPQ_OK;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && st == MPQ_OK; i++) {
        mpq_eval_param id;
        if ((st = mpq_evaluator_param_find(names[i], &id)) == MPQ_OK)
            st = mpq_evaluator_set_param(ev, id, demo[i]);
    }
    if (strcmp(spec, "-") == 0)
        return st;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *tok = strtok(buf, ","); tok && st == MPQ_OK; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        mpq_eval_param id;
        if (!eq)
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "setting '%s': no '='", tok);
        *eq = '\0';
        if ((st = mpq_evaluator_param_find(tok, &id)) == MPQ_OK)
            st = mpq_evaluator_set_param(ev, id, strtod(eq + 1, NULL));
    }
    return st;
}

typedef struct pol {
    mpq_policy *p;
    char source[64];
    double lat;
    double score[MAX_SET], secs[MAX_SET];
    double final;
} pol;

static mpq_status write_results(const char *out, const pol *P, int n, const char *const *settings,
                                int nset)
{
    char buf[65536];
    size_t len = (size_t)snprintf(buf, sizeof buf, "source,latency_ratio,final_test");
    for (int s = 0; s < nset && len < sizeof buf; s++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, ",\"%s\"", settings[s]);
    for (int s = 0; s < nset && len < sizeof buf; s++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, ",\"seconds %s\"", settings[s]);
    for (int i = 0; i < n && len < sizeof buf; i++) {
        len += (size_t)snprintf(buf + len, sizeof buf - len, "\n%s,%.4f,%.4f", P[i].source,
                                P[i].lat, P[i].final);
        for (int s = 0; s < nset && len < sizeof buf; s++)
            len += (size_t)snprintf(buf + len, sizeof buf - len, ",%.4f", P[i].score[s]);
        for (int s = 0; s < nset && len < sizeof buf; s++)
            len += (size_t)snprintf(buf + len, sizeof buf - len, ",%.3f", P[i].secs[s]);
    }
    if (len + 1 >= sizeof buf)
        return mpq_set_error(MPQ_ERR_INTERNAL, "results larger than %zu bytes", sizeof buf);
    buf[len++] = '\n';
    char path[1200];
    snprintf(path, sizeof path, "%s/results.csv", out);
    return mpq_write_file_atomic(path, buf, len);
}

static void print_table(const pol *P, int n, const char *const *settings, int nset, double budget,
                        const char *hw_name, const char *source, long episodes,
                        unsigned long long seed, int last)
{
    double fin[MAX_POL], sc[MAX_POL], fmean = 0;
    for (int i = 0; i < n; i++) {
        fin[i] = P[i].final;
        fmean += P[i].final / n;
    }
    printf("%s%d policies at latency %.2f on %s (%s, %ld episodes each, seed %llu); final: 1 "
           "fine-tune epoch, test top-1 (mean %.2f%%)\n",
           last ? "FINAL: " : "so far: ", n, budget, hw_name, source, episodes, seed,
           100 * fmean);
    printf("%-36s %9s %12s %10s\n", "episode signal (limit=2000 +)", "spearman", "s/evaluation",
           "mean score");
    for (int s = 0; s < nset; s++) {
        double secs = 0, mean = 0;
        for (int i = 0; i < n; i++) {
            sc[i] = P[i].score[s];
            secs += P[i].secs[s] / n;
            mean += P[i].score[s] / n;
        }
        printf("%-36s %9.3f %12.2f %9.2f%%\n", settings[s], spearman(sc, fin, n), secs, 100 * mean);
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    char defnet[1024];
    const char *home = getenv("HOME");
    snprintf(defnet, sizeof defnet, "%s/.cache/mpq/fashion-cnn.mpqnet", home ? home : ".");
    const char *net_path = defnet, *data = "/usr/share/datasets/fashion-mnist", *hw_name = "zynq7020";
    const char *methods = "haq,autoq,greedy,random", *out = "bench-signal-out", *from = NULL;
    double budget = 0.3;
    long episodes = 40, npol = 24;
    unsigned long long seed = 234;
    const char *settings[MAX_SET];
    int nset = 0, r0 = 0, r1 = MAX_POL, no_finals = 0;
    int c;
    while ((c = getopt(argc, argv, "n:d:w:b:m:e:p:s:o:P:r:F")) != -1) {
        switch (c) {
        case 'n': net_path = optarg; break;
        case 'd': data = optarg; break;
        case 'w': hw_name = optarg; break;
        case 'b': budget = strtod(optarg, NULL); break;
        case 'm': methods = optarg; break;
        case 'e': episodes = strtol(optarg, NULL, 10); break;
        case 'p': npol = strtol(optarg, NULL, 10); break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 'o': out = optarg; break;
        case 'P': from = optarg; break;
        case 'F': no_finals = 1; break;
        case 'r':
            if (sscanf(optarg, "%d:%d", &r0, &r1) != 2 || r0 < 0 || r1 <= r0) {
                fprintf(stderr, "bench-signal: -r needs FIRST:END\n");
                return 2;
            }
            break;
        default:
            fprintf(stderr, "usage: bench-signal [-n NET] [-d DATA] [-w HW] [-b BUDGET] [-m METHODS] "
                            "[-e EPISODES] [-p POLICIES] [-s SEED] [-o OUT_DIR] [-P DIR] [-r FIRST:END] [-F] [SETTING ...]\n");
            return 2;
        }
    }
    for (int i = optind; i < argc && nset < MAX_SET; i++)
        settings[nset++] = argv[i];
    if (nset == 0) {
        static const char *const def[] = {"-", "bn_batches=1", "bn_batches=4",
                                          "finetune_batches=20", "finetune_batches=20,bn_batches=4"};
        for (size_t i = 0; i < sizeof def / sizeof def[0]; i++)
            settings[nset++] = def[i];
    }
    if (npol < 3 || npol > MAX_POL || episodes < 1) {
        fprintf(stderr, "bench-signal: -p must be 3..%d and -e positive\n", MAX_POL);
        return 2;
    }
    if (mkdir(out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "bench-signal: cannot create %s: %s\n", out, strerror(errno));
        return 1;
    }
    mpq_dataset *ds = NULL;
    mpq_net *net = NULL;
    mpq_evaluator *ev = NULL;
    mpq_hw *hw = NULL;
    mpq_status st;
    if ((st = mpq_dataset_load(&ds, data)) != MPQ_OK)
        return die("dataset", st);
    if ((st = mpq_net_load(&net, net_path, 1)) != MPQ_OK)
        return die(net_path, st);
    if ((st = mpq_evaluator_create(&ev, net, ds, 1)) != MPQ_OK)
        return die("evaluator", st);
    if ((st = mpq_hw_create(&hw, hw_name)) != MPQ_OK)
        return die(hw_name, st);
    const mpq_model *model = mpq_evaluator_get_model(ev);
    if ((st = apply_setting(ev, "-")) != MPQ_OK)
        return die("evaluator settings", st);

    /* 1. policies: the searches' distinct feasible policies by rank, one method after another */
    static pol P[MAX_POL];
    int n = 0;
    mpq_search *srch[8];
    int nsrch = 0;
    char mbuf[256];
    snprintf(mbuf, sizeof mbuf, "%s", from ? "" : methods);
    double t0 = now();
    for (int i = 0; from && i < npol; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/p%02d.json", from, i);
        if (access(path, R_OK) != 0)
            break;
        if ((st = mpq_policy_load(&P[n].p, model, path)) != MPQ_OK)
            return die(path, st);
        mpq_hw_cost cost = {.size = sizeof cost}, ref = {.size = sizeof ref};
        if ((st = mpq_hw_cost_total(hw, model, P[n].p, &cost)) != MPQ_OK ||
            (st = mpq_hw_reference_total(hw, model, &ref)) != MPQ_OK)
            return die(path, st);
        snprintf(P[n].source, sizeof P[n].source, "p%02d", i);
        P[n].lat = cost.latency_s / ref.latency_s;
        n++;
    }
    for (char *tok = strtok(mbuf, ","); tok && nsrch < 8; tok = strtok(NULL, ",")) {
        mpq_search_method m;
        mpq_search *s = NULL;
        if ((st = mpq_search_method_from_name(tok, &m)) != MPQ_OK ||
            (st = mpq_search_create(&s, m, model, hw, mpq_evaluator_callback, ev)) != MPQ_OK)
            return die(tok, st);
        srch[nsrch++] = s;
        st = mpq_search_set_budget(s, MPQ_SEARCH_RESOURCE_LATENCY, budget);
        if (st == MPQ_OK)
            st = mpq_search_set_param(s, MPQ_SEARCH_SEED, (double)seed);
        if (st == MPQ_OK)
            st = mpq_search_set_param(s, MPQ_SEARCH_EPISODES, (double)episodes);
        if (st == MPQ_OK)
            st = mpq_search_set_param(s, MPQ_SEARCH_KEEP_TOP, (double)npol);
        /* as the demo: every layer alike under the wall */
        if (st == MPQ_OK)
            st = mpq_search_set_param(s, MPQ_SEARCH_FIRST_LAST, MPQ_SEARCH_FIRST_LAST_FREE);
        if (st == MPQ_OK && (m == MPQ_SEARCH_HAQ || m == MPQ_SEARCH_AUTOQ))
            st = mpq_search_set_param(s, MPQ_SEARCH_WARMUP, (double)(episodes / 2));
        if (st == MPQ_OK)
            st = mpq_search_prepare(s);
        if (st == MPQ_OK)
            st = mpq_search_run(s);
        if (st != MPQ_OK)
            return die(tok, st);
        fprintf(stderr, "%s: %lld episodes, %lld distinct feasible kept (%.0f s so far)\n", tok,
                (long long)mpq_search_get_history_count(s), (long long)mpq_search_get_top_count(s),
                now() - t0);
    }
    for (int64_t rank = 0; n < npol; rank++) {
        int any = 0;
        for (int k = 0; k < nsrch && n < npol; k++) {
            const mpq_policy *p;
            mpq_search_record r = {.size = sizeof r};
            if (rank >= mpq_search_get_top_count(srch[k]) || mpq_search_get_top(srch[k], rank, &p, &r) != MPQ_OK)
                continue;
            any = 1;
            int dup = 0;
            for (int i = 0; i < n && !dup; i++)
                dup = mpq_policy_equal(P[i].p, p);
            if (dup)
                continue;
            if ((st = mpq_policy_clone(&P[n].p, p)) != MPQ_OK)
                return die("clone", st);
            mpq_search_method method = MPQ_SEARCH_HAQ;
            mpq_search_get_method(srch[k], &method);
            snprintf(P[n].source, sizeof P[n].source, "p%02d %s#%lld", n,
                     mpq_search_method_name(method), (long long)rank);
            P[n].lat = r.latency_ratio;
            n++;
        }
        if (!any)
            break;
    }
    for (int k = 0; k < nsrch; k++)
        mpq_search_destroy(srch[k]);
    fprintf(stderr, "%d distinct policies collected in %.0f s\n", n, now() - t0);
    if (n < 3)
        return fprintf(stderr, "bench-signal: fewer than 3 policies\n"), 1;
    for (int i = 0; i < n; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/p%02d.json", out, i);
        if ((st = mpq_policy_save(P[i].p, model, path)) != MPQ_OK)
            return die(path, st);
    }

    /* only the range this process scores (-r) */
    if (r1 > n)
        r1 = n;
    if (r0 >= r1)
        return fprintf(stderr, "bench-signal: -r selects no policy of %d\n", n), 1;
    for (int i = 0; i < n; i++)
        if (i < r0 || i >= r1)
            mpq_policy_destroy(P[i].p);
    memmove(P, P + r0, (size_t)(r1 - r0) * sizeof *P);
    n = r1 - r0;

    /* 2. episode signals */
    for (int s = 0; s < nset; s++) {
        if ((st = apply_setting(ev, settings[s])) != MPQ_OK)
            return die(settings[s], st);
        for (int i = 0; i < n; i++) {
            double a = now();
            if ((st = mpq_evaluator_evaluate(ev, P[i].p, &P[i].score[s])) != MPQ_OK)
                return die("evaluate", st);
            P[i].secs[s] = now() - a;
        }
        fprintf(stderr, "setting %s scored\n", settings[s]);
    }
    /* the episode signals are kept even if the fine-tunes below do not finish (final NaN) */
    for (int i = 0; i < n; i++)
        P[i].final = NAN;
    if ((st = write_results(out, P, n, settings, nset)) != MPQ_OK)
        return die("results.csv", st);

    /* 3. final figures, the demo's: 1 fine-tune epoch, test split; the table after each */
    if ((st = apply_setting(ev, "-")) != MPQ_OK)
        return die("evaluator settings", st);
    for (int done = 1; done <= n && !no_finals; done++) {
        pol *q = &P[done - 1];
        double a = now();
        if ((st = mpq_evaluator_finetune(ev, q->p, 1, MPQ_SPLIT_TEST, &q->final, NULL)) != MPQ_OK)
            return die("finetune", st);
        fprintf(stderr, "policy %d/%d (%s, latency %.3f): final %.2f%% (%.0f s)\n", done, n,
                q->source, q->lat, 100 * q->final, now() - a);
        if ((st = write_results(out, P, n, settings, nset)) != MPQ_OK)
            return die("results.csv", st);
        if (done >= 3)
            print_table(P, done, settings, nset, budget, hw_name, from ? from : methods,
                        episodes, seed, done == n);
    }
    for (int i = 0; i < n; i++)
        mpq_policy_destroy(P[i].p);
    mpq_hw_destroy(hw);
    mpq_evaluator_destroy(ev);
    mpq_net_destroy(net);
    mpq_dataset_destroy(ds);
    return 0;
}
