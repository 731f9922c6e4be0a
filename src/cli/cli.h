/* Shared pieces of the doppel command: the subcommand table, error exits and
 * the progress bar. Subcommands call only the public API. */
#ifndef DP_CLI_H
#define DP_CLI_H

#include <doppel/doppel.h>
#include <jansson.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct dp_cli_cmd {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} dp_cli_cmd;

/* Exit codes shared by all subcommands. */
enum {
    DP_EXIT_OK = 0,
    DP_EXIT_ERROR = 1,   /* the command failed */
    DP_EXIT_USAGE = 2,   /* bad command line */
    DP_EXIT_PARTIAL = 3, /* finished, but some inputs were skipped */
};

/* Print "doppel <cmd>: <msg>: <dp_last_error()>" to stderr; returns DP_EXIT_ERROR. */
int dp_cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print a usage error and hint at --help; returns DP_EXIT_USAGE. */
int dp_cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A one-line progress bar on stderr, drawn only when stderr is a TTY and
 * quiet is false: "[#####     ] 512/1000  43.1 img/s  0:12 ETA 0:11". */
typedef struct dp_progress {
    const char *label;
    uint64_t total;
    double start, last_draw;
    bool enabled;
} dp_progress;
void dp_progress_begin(dp_progress *p, const char *label, uint64_t total, bool quiet);
void dp_progress_update(dp_progress *p, uint64_t done);
void dp_progress_end(dp_progress *p, uint64_t done);
/* A dp_progress_fn for the library: user_data is a dp_progress; a total of 0
 * given at begin is taken from the first call. */
int dp_cli_progress_cb(uint64_t done, uint64_t total, void *user_data);
/* A JSON string of a file name, which need not be UTF-8. */
json_t *dp_cli_json_str(const char *s);

/* Command entry points. */
int dp_cmd_model(int argc, char **argv);
int dp_cmd_embed(int argc, char **argv);
int dp_cmd_eval(int argc, char **argv);
int dp_cmd_pca(int argc, char **argv);
int dp_cmd_dedup(int argc, char **argv);
int dp_cmd_export(int argc, char **argv);
int dp_cmd_index(int argc, char **argv);
int dp_cmd_search(int argc, char **argv);
int dp_cmd_info(int argc, char **argv);
int dp_cmd_check(int argc, char **argv);
int dp_cmd_viz(int argc, char **argv);
int dp_cmd_ann(int argc, char **argv);
int dp_cmd_bench(int argc, char **argv);

/* doppel search helpers (search_images.c). */
struct dp_index;
int dp_cli_embed_queries(const struct dp_index *ix, const char *const *paths, size_t n, float *out);
int dp_cli_search_grid(const struct dp_index *ix, const char *out_png,
                       const char *const *query_names, const char *const *query_images, size_t nq,
                       const int64_t *ids, const float *dist, size_t k);

#endif
