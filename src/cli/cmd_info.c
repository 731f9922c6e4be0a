/* doppel info INDEX: what an index holds, from its header and directory
 * only (nothing is read through). */
#include "cli.h"

#include <getopt.h>
#include <glib.h>
#include <jansson.h>
#include <string.h>

static void help(FILE *f)
{
    fprintf(f, "usage: doppel info INDEX [--json]\n\n"
               "Show an index's entry count, model, dimension, metric, metadata, sections\n"
               "with their sizes, and the files the last indexing run skipped.\n\n"
               "  --json      print the same as JSON\n"
               "  -h, --help  this help\n");
}

static const char *metric_desc(int m)
{
    switch (m) {
    case DP_METRIC_L2:
        return "squared Euclidean";
    case DP_METRIC_IP:
        return "negated inner product";
    case DP_METRIC_COSINE:
        return "1 - cosine similarity";
    case DP_METRIC_L1:
        return "Manhattan";
    default:
        return "?";
    }
}

int dp_cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    bool as_json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            as_json = true;
            break;
        case 'h':
            help(stdout);
            return DP_EXIT_OK;
        default:
            return dp_cli_usage("info", "bad option");
        }
    }
    if (optind != argc - 1) return dp_cli_usage("info", "expects one INDEX");
    const char *path = argv[optind];
    dp_index *ix = NULL;
    if (dp_index_open(path, NULL, &ix)) return dp_cli_fail("info", "cannot open %s", path);
    dp_index_info in;
    dp_index_describe(ix, &in);
    size_t nmeta = dp_index_meta_count(ix), nfail = dp_index_failure_count(ix);

    if (as_json) {
        json_t *o = json_object();
        json_object_set_new(o, "index", dp_cli_json_str(path));
        json_object_set_new(o, "format_version", json_integer(in.format_version));
        json_object_set_new(o, "file_bytes", json_integer((json_int_t)in.file_bytes));
        json_object_set_new(o, "commit", json_integer((json_int_t)in.commit_seq));
        json_object_set_new(o, "count", json_integer((json_int_t)in.count));
        json_object_set_new(o, "rows", json_integer((json_int_t)in.rows));
        json_object_set_new(o, "segments", json_integer((json_int_t)in.segments));
        json_object_set_new(o, "dim", json_integer(dp_index_dim(ix)));
        json_object_set_new(o, "metric", json_string(dp_metric_name(dp_index_metric(ix))));
        json_object_set_new(o, "normalized", json_boolean(dp_index_normalized(ix)));
        json_object_set_new(o, "model", dp_cli_json_str(dp_index_model_name(ix)));
        json_object_set_new(o, "model_fingerprint",
                            dp_cli_json_str(dp_index_model_fingerprint(ix)));
        json_t *meta = json_object();
        for (size_t i = 0; i < nmeta; i++) {
            const char *key, *s;
            int t;
            int64_t v;
            double f;
            dp_index_meta_at(ix, i, &key, &t);
            gchar *k = g_utf8_make_valid(key, -1);
            if (t == DP_META_STR && !dp_index_get_meta_str(ix, key, &s))
                json_object_set_new(meta, k, dp_cli_json_str(s));
            else if (t == DP_META_I64 && !dp_index_get_meta_i64(ix, key, &v))
                json_object_set_new(meta, k, json_integer(v));
            else if (t == DP_META_F64 && !dp_index_get_meta_f64(ix, key, &f))
                json_object_set_new(meta, k, json_real(f));
            g_free(k);
        }
        json_object_set_new(o, "metadata", meta);
        json_t *secs = json_array();
        for (size_t i = 0; i < in.sections; i++) {
            dp_index_section s;
            if (dp_index_section_at(ix, i, &s)) continue;
            char crc[9];
            snprintf(crc, sizeof crc, "%08x", s.crc32c);
            json_array_append_new(
                secs, json_pack("{s:s,s:I,s:I,s:I,s:I,s:s}", "name", s.name, "segment",
                                (json_int_t)s.segment, "offset", (json_int_t)s.offset, "bytes",
                                (json_int_t)s.bytes, "count", (json_int_t)s.count, "crc32c", crc));
        }
        json_object_set_new(o, "sections", secs);
        json_t *fails = json_array();
        for (size_t i = 0; i < nfail; i++) {
            const char *p, *r;
            if (dp_index_failure_at(ix, i, &p, &r)) continue;
            json_t *f = json_object();
            json_object_set_new(f, "path", dp_cli_json_str(p));
            json_object_set_new(f, "reason", dp_cli_json_str(r));
            json_array_append_new(fails, f);
        }
        json_object_set_new(o, "failures", fails);
        char *s = json_dumps(o, JSON_INDENT(2));
        puts(s);
        free(s);
        json_decref(o);
        dp_index_free(ix);
        return DP_EXIT_OK;
    }

    printf("index      %s\n", path);
    printf("format     version %u, %llu bytes, commit %llu\n", in.format_version,
           (unsigned long long)in.file_bytes, (unsigned long long)in.commit_seq);
    printf("entries    %zu", in.count);
    if (in.rows != in.count || in.segments > 1)
        printf(" (%zu rows stored, %zu segments; removed rows go at the next compaction)", in.rows,
               in.segments);
    printf("\ndim        %u\n", dp_index_dim(ix));
    printf("metric     %s (%s)%s\n", dp_metric_name(dp_index_metric(ix)),
           metric_desc(dp_index_metric(ix)),
           dp_index_normalized(ix) ? ", vectors L2-normalised" : "");
    const char *mn = dp_index_model_name(ix), *mf = dp_index_model_fingerprint(ix);
    printf("model      %s%s%s%s\n", *mn ? mn : "(none)", *mf ? " (fingerprint " : "", mf,
           *mf ? ")" : "");
    printf("metadata\n");
    for (size_t i = 0; i < nmeta; i++) {
        const char *key, *s;
        int t;
        int64_t v;
        double f;
        dp_index_meta_at(ix, i, &key, &t);
        if (t == DP_META_STR && !dp_index_get_meta_str(ix, key, &s))
            printf("  %-26s %s\n", key, s);
        else if (t == DP_META_I64 && !dp_index_get_meta_i64(ix, key, &v))
            printf("  %-26s %lld\n", key, (long long)v);
        else if (t == DP_META_F64 && !dp_index_get_meta_f64(ix, key, &f))
            printf("  %-26s %g\n", key, f);
    }
    /* Named sections (hnsw.levels, ...) set the width of the name column. */
    int nw = 9;
    for (size_t i = 0; i < in.sections; i++) {
        dp_index_section s;
        if (!dp_index_section_at(ix, i, &s) && (int)strlen(s.name) > nw) nw = (int)strlen(s.name);
    }
    printf("sections   %-*s %4s %12s %14s %10s  %s\n", nw, "name", "seg", "offset", "bytes",
           "count", "crc32c");
    for (size_t i = 0; i < in.sections; i++) {
        dp_index_section s;
        if (dp_index_section_at(ix, i, &s)) continue;
        printf("           %-*s %4u %12llu %14llu %10llu  %08x\n", nw, s.name, s.segment,
               (unsigned long long)s.offset, (unsigned long long)s.bytes,
               (unsigned long long)s.count, s.crc32c);
    }
    printf("failures   %zu file(s) skipped by the last run\n", nfail);
    for (size_t i = 0; i < nfail; i++) {
        const char *p, *r;
        if (!dp_index_failure_at(ix, i, &p, &r)) printf("  %s: %s\n", p, r);
    }
    dp_index_free(ix);
    return DP_EXIT_OK;
}
