/* doppel check INDEX: read every section and verify its checksum, the
 * bounds of every entry and that every vector is finite. */
#include "cli.h"

#include <getopt.h>
#include <string.h>

int dp_cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {
        {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    bool quiet = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        switch (c) {
        case 'q':
            quiet = true;
            break;
        case 'h':
            printf("usage: doppel check INDEX... [-q]\n\n"
                   "Verify each index: header, commit slots, directory, every section's\n"
                   "CRC-32C, string bounds of every entry, finite vectors. Prints the first\n"
                   "problem per file; exit status 1 if any file has one.\n\n"
                   "  -q, --quiet  print only problems\n"
                   "  -h, --help   this help\n");
            return DP_EXIT_OK;
        default:
            return dp_cli_usage("check", "bad option");
        }
    }
    if (optind >= argc) return dp_cli_usage("check", "expects at least one INDEX");
    int rc = DP_EXIT_OK;
    for (int i = optind; i < argc; i++) {
        dp_index_open_params op = dp_index_default_open_params();
        op.verify = true;
        dp_index *ix = NULL;
        if (dp_index_open(argv[i], &op, &ix)) {
            fprintf(stderr, "doppel check: %s\n", dp_last_error());
            rc = DP_EXIT_ERROR;
            continue;
        }
        dp_index_info in;
        dp_index_describe(ix, &in);
        if (!quiet)
            printf("%s: ok (%zu entries, %zu sections, %llu bytes checked)\n", argv[i], in.count,
                   in.sections, (unsigned long long)in.file_bytes);
        dp_index_free(ix);
    }
    return rc;
}
