/* Folder -> index synchronisation (see include/doppel/ingest.h).
 *
 * The walk collects (relative path, full path) pairs, hashes each file, and
 * compares with what the index holds by path; only new or changed files go
 * through the decode/inference pipeline. Symlinks are followed, but every
 * directory is entered at most once (keyed by device and inode), which both
 * breaks symlink loops and keeps a folder linked twice from being indexed
 * twice. */
#include "doppel/ann.h"
#include "doppel/embed.h"
#include "doppel/index.h"
#include "doppel/ingest.h"
#include "doppel/pca.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const image_exts[] = {"jpg",  "jpeg", "jpe", "jfif", "png",  "webp",
                                         "gif",  "bmp",  "tif", "tiff", "heic", "heif",
                                         "avif", "jp2",  "jxl", "ppm",  "pgm",  "pnm"};

int dp_ingest_is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return 0;
    for (size_t i = 0; i < sizeof image_exts / sizeof *image_exts; i++)
        if (!strcasecmp(dot + 1, image_exts[i])) return 1;
    return 0;
}

/* Files with no extension are taken when their first bytes are an image
 * signature; anything with some other extension is not an image. */
static int sniff_image(const char *path)
{
    unsigned char b[12] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return 1;         /* JPEG */
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return 1;                   /* PNG */
    if (n >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6))) return 1; /* GIF */
    if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4)) return 1;  /* WebP */
    if (n >= 2 && b[0] == 'B' && b[1] == 'M') return 1;                           /* BMP */
    if (n >= 4 && (!memcmp(b, "II*\0", 4) || !memcmp(b, "MM\0*", 4))) return 1;   /* TIFF */
    if (n >= 12 && !memcmp(b + 4, "ftyp", 4)) return 1;                           /* HEIF/AVIF */
    return 0;
}

typedef struct file_rec {
    char *rel, *full;
    uint8_t hash[DP_INDEX_HASH_BYTES];
    int hash_status;
    char hash_error[256];
    uint64_t old_id; /* UINT64_MAX when new */
} file_rec;

typedef struct walk_state {
    GArray *files; /* file_rec */
    GHashTable *seen_dirs;
    GArray *failures; /* dp_ingest_failure */
} walk_state;

static void add_failure(GArray *failures, const char *path, const char *reason)
{
    dp_ingest_failure f = {g_strdup(path), g_strdup(reason)};
    g_array_append_val(failures, f);
}

static void walk(walk_state *w, const char *full, const char *rel, int depth)
{
    if (depth > 256) {
        add_failure(w->failures, rel, "folder nesting deeper than 256 levels, not entered");
        return;
    }
    DIR *d = opendir(full);
    if (!d) {
        char msg[300];
        snprintf(msg, sizeof msg, "cannot open folder: %s", strerror(errno));
        add_failure(w->failures, rel[0] ? rel : ".", msg);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue; /* ., .., hidden files, .git */
        char *cfull = g_strconcat(full, "/", de->d_name, NULL);
        char *crel = rel[0] ? g_strconcat(rel, "/", de->d_name, NULL) : g_strdup(de->d_name);
        struct stat st;
        if (stat(cfull, &st) != 0) {
            if (dp_ingest_is_image_name(de->d_name)) {
                char msg[300];
                snprintf(msg, sizeof msg, "cannot read: %s", strerror(errno));
                add_failure(w->failures, crel, msg);
            }
        } else if (S_ISDIR(st.st_mode)) {
            char *key = g_strdup_printf("%llu:%llu", (unsigned long long)st.st_dev,
                                        (unsigned long long)st.st_ino);
            if (!g_hash_table_contains(w->seen_dirs, key)) {
                g_hash_table_add(w->seen_dirs, key);
                key = NULL;
                walk(w, cfull, crel, depth + 1);
            }
            g_free(key);
        } else if (S_ISREG(st.st_mode) && (dp_ingest_is_image_name(de->d_name) ||
                                           (!strchr(de->d_name, '.') && sniff_image(cfull)))) {
            file_rec r = {.rel = crel, .full = cfull, .old_id = UINT64_MAX};
            g_array_append_val(w->files, r);
            continue; /* the record owns the strings now */
        }
        g_free(cfull);
        g_free(crel);
    }
    closedir(d);
}

static int cmp_rec(const void *a, const void *b)
{
    return strcmp(((const file_rec *)a)->rel, ((const file_rec *)b)->rel);
}

static void hex_to_bytes(const char *hex, uint8_t *out)
{
    for (int i = 0; i < DP_INDEX_HASH_BYTES; i++) {
        unsigned v = 0;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

dp_ingest_params dp_ingest_default_params(void)
{
    dp_ingest_params p = {0};
    return p;
}

void dp_ingest_report_free(dp_ingest_report *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->failed; i++) {
        g_free(r->failures[i].path);
        g_free(r->failures[i].reason);
    }
    g_free(r->failures);
    r->failures = NULL;
    r->failed = 0;
}

typedef struct sink_ctx {
    dp_index *ix;
    file_rec **todo;
    GArray *failures;
    size_t since_commit, commit_every;
    double last_commit, commit_seconds;
    size_t added, updated;
    int rc;
    /* An index reduced by doppel pca: vectors are projected before adding. */
    const dp_pca *pca;
    float *pv;
    size_t in_dim;
} sink_ctx;

static int commit_now(sink_ctx *s)
{
    int rc = dp_index_commit(s->ix);
    s->since_commit = 0;
    s->last_commit = dp_now();
    return rc;
}

static int sink(const dp_embed_result *r, void *user)
{
    sink_ctx *s = user;
    file_rec *f = s->todo[r->index];
    if (r->status) {
        /* The pipeline's message starts with the full path; store the
         * relative one the user knows the file by. */
        const char *msg = r->error;
        size_t fl = strlen(f->full);
        if (!strncmp(msg, f->full, fl) && msg[fl] == ':') msg += fl + 1 + (msg[fl + 1] == ' ');
        add_failure(s->failures, f->rel, msg);
        return 0;
    }
    const char *slash = strrchr(f->rel, '/');
    char *label = NULL;
    if (slash) {
        const char *start = slash;
        while (start > f->rel && start[-1] != '/')
            start--;
        label = g_strndup(start, (size_t)(slash - start));
    }
    dp_index_entry en = {.path = f->rel,
                         .label = label ? label : "",
                         .width = (uint32_t)r->info.width,
                         .height = (uint32_t)r->info.height,
                         .vector = r->vec};
    memcpy(en.hash, f->hash, sizeof en.hash);
    int rc = 0;
    if (s->pca) {
        rc = dp_index_map_vectors(s->ix, s->pca, r->vec, 1, s->in_dim, s->pv);
        en.vector = s->pv;
    }
    if (!rc && f->old_id != UINT64_MAX) rc = dp_index_remove(s->ix, f->old_id);
    if (!rc) rc = dp_index_add(s->ix, &en, 1, NULL);
    g_free(label);
    if (rc) {
        s->rc = rc;
        return 1;
    }
    if (f->old_id != UINT64_MAX)
        s->updated++;
    else
        s->added++;
    if (++s->since_commit >= s->commit_every || dp_now() - s->last_commit >= s->commit_seconds) {
        if ((rc = commit_now(s))) {
            s->rc = rc;
            return 1;
        }
    }
    return 0;
}

/* Keep an ANN structure in step with the entries: new images are inserted,
 * removed ones are already tombstoned by the index. Built from scratch when
 * asked for and absent. */
static int sync_ann(dp_index *ix, const dp_ingest_params *p)
{
    dp_ann *a = NULL;
    dp_ann_build_params bp = dp_ann_default_build_params();
    int rc = dp_ann_open(ix, NULL, &a);
    if (rc == DP_ERR_NOT_FOUND) {
        if (!p->ann_kind || dp_index_count(ix) == 0) return 0;
        bp.kind = p->ann_kind;
        rc = dp_ann_build(ix, &bp, &a);
    } else if (!rc) {
        rc = dp_ann_update(a, ix, &bp);
    }
    if (!rc) rc = dp_ann_save(a, ix);
    dp_ann_free(a);
    if (!rc) rc = dp_index_commit(ix);
    return rc;
}

static void fill_failures(dp_ingest_report *rep, GArray *failures)
{
    rep->failed = failures->len;
    rep->failures = (dp_ingest_failure *)(void *)g_array_free(failures, FALSE);
}

int dp_ingest_dir(dp_embedder *e, const char *dir, const char *index_path,
                  const dp_ingest_params *p, dp_ingest_report *rep)
{
    dp_ingest_params defaults = dp_ingest_default_params();
    if (!p) p = &defaults;
    memset(rep, 0, sizeof *rep);
    double t0 = dp_now();
    dp_embedder_info ei;
    dp_embedder_describe(e, &ei);

    struct stat st;
    if (stat(dir, &st) != 0) return dp_set_error(DP_ERR_IO, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return dp_set_error(DP_ERR_INVALID, "%s: not a folder", dir);

    walk_state w = {.files = g_array_new(FALSE, TRUE, sizeof(file_rec)),
                    .seen_dirs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
                    .failures = g_array_new(FALSE, TRUE, sizeof(dp_ingest_failure))};
    g_hash_table_add(w.seen_dirs, g_strdup_printf("%llu:%llu", (unsigned long long)st.st_dev,
                                                  (unsigned long long)st.st_ino));
    walk(&w, dir, "", 0);
    file_rec *files = (file_rec *)(void *)w.files->data;
    size_t nfiles = w.files->len;
    qsort(files, nfiles, sizeof *files, cmp_rec);
    rep->found = nfiles;

    dp_index *ix = NULL;
    file_rec **todo = NULL;
    const char **todo_paths = NULL;
    GHashTable *present = NULL;
    int rc;

    /* Open the index; another model's index is rebuilt from scratch. */
    dp_index_open_params op = dp_index_default_open_params();
    op.writable = true;
    op.expect_fingerprint = ei.fingerprint;
    if (access(index_path, F_OK) == 0) {
        rc = dp_index_open(index_path, &op, &ix);
        if (rc == DP_ERR_MISMATCH) {
            rep->rebuilt = 1;
            ix = NULL;
        } else if (rc) {
            goto done;
        }
    }
    if (!ix) {
        dp_index_create_params cp = dp_index_default_create_params();
        cp.dim = (uint32_t)ei.dim;
        cp.metric = DP_METRIC_L2;
        cp.normalized = true;
        cp.model_name = ei.name;
        cp.model_fingerprint = ei.fingerprint;
        if ((rc = dp_index_create(index_path, &cp, &ix))) goto done;
    }
    char *absdir = realpath(dir, NULL);
    rc = dp_index_set_meta_str(ix, "source.root", absdir ? absdir : dir);
    free(absdir);
    /* A model path is stored absolute so searches from elsewhere find it. */
    char *abs_model = ei.model_path[0] && strchr(ei.spec, '/') ? realpath(ei.spec, NULL) : NULL;
    if (!rc) rc = dp_index_set_meta_str(ix, "source.model", abs_model ? abs_model : ei.spec);
    free(abs_model);
    if (rc) goto done;

    /* Hash every file and decide what needs embedding. */
    present = g_hash_table_new(g_str_hash, g_str_equal);
    todo = calloc(nfiles ? nfiles : 1, sizeof *todo);
    todo_paths = calloc(nfiles ? nfiles : 1, sizeof *todo_paths);
    if (!todo || !todo_paths) {
        rc = dp_set_error(DP_ERR_NOMEM, "dp_ingest_dir: out of memory");
        goto done;
    }
    size_t ntodo = 0;
    for (size_t i = 0; i < nfiles; i++) {
        file_rec *f = &files[i];
        g_hash_table_add(present, f->rel);
        char hex[65];
        if (dp_sha256_file(f->full, hex)) {
            const char *msg = dp_last_error();
            size_t fl = strlen(f->full);
            if (!strncmp(msg, f->full, fl) && msg[fl] == ':') msg += fl + 1 + (msg[fl + 1] == ' ');
            add_failure(w.failures, f->rel, msg);
            continue;
        }
        hex_to_bytes(hex, f->hash);
        dp_index_entry old;
        if (dp_index_find_path(ix, f->rel, &old) == 0) {
            if (!memcmp(old.hash, f->hash, sizeof f->hash)) {
                rep->unchanged++;
                continue;
            }
            f->old_id = old.id;
        }
        todo[ntodo] = f;
        todo_paths[ntodo++] = f->full;
    }

    /* Entries whose file is gone. A file that exists but cannot be read now
     * keeps its old entry and is listed as a failure. */
    {
        GArray *gone = g_array_new(FALSE, FALSE, sizeof(uint64_t));
        size_t cur = 0;
        dp_index_entry en;
        while ((rc = dp_index_next(ix, &cur, &en)) == 1)
            if (!g_hash_table_contains(present, en.path)) g_array_append_val(gone, en.id);
        for (guint i = 0; i < gone->len && rc == 0; i++)
            rc = dp_index_remove(ix, g_array_index(gone, uint64_t, i));
        rep->removed = rc == 0 ? gone->len : 0;
        g_array_free(gone, TRUE);
        if (rc < 0) goto done;
    }
    if ((rc = dp_index_commit(ix))) goto done;

    sink_ctx s = {.ix = ix,
                  .todo = todo,
                  .failures = w.failures,
                  .commit_every = p->commit_every ? p->commit_every : 256,
                  .commit_seconds = p->commit_seconds > 0 ? p->commit_seconds : 30,
                  .last_commit = dp_now()};
    dp_pca *pca = NULL;
    if ((rc = dp_index_pca(ix, &pca)) == DP_ERR_NOT_FOUND) rc = 0;
    if (rc) goto done;
    if (pca) {
        s.pca = pca;
        s.in_dim = (size_t)ei.dim;
        if (!(s.pv = malloc(dp_index_dim(ix) * sizeof *s.pv))) {
            dp_pca_free(pca);
            rc = dp_set_error(DP_ERR_NOMEM, "dp_ingest_dir: out of memory");
            goto done;
        }
    }
    dp_pipeline_params pp = dp_pipeline_default_params();
    pp.decode_threads = p->decode_threads;
    pp.batch = p->batch;
    pp.progress = p->progress;
    pp.user_data = p->user_data;
    double te = dp_now();
    rc = dp_embed_files(e, todo_paths, ntodo, &pp, sink, &s);
    dp_pca_free(pca);
    free(s.pv);
    rep->embed_seconds = dp_now() - te;
    rep->added = s.added;
    rep->updated = s.updated;
    if (rc == DP_ERR_CANCELLED && s.rc) rc = s.rc;
    if (rc) {
        dp_index_commit(ix); /* keep what was embedded before the failure */
        goto done;
    }
    {
        GArray *fl = w.failures;
        const char **paths = malloc((fl->len + 1) * sizeof *paths);
        const char **reasons = malloc((fl->len + 1) * sizeof *reasons);
        if (!paths || !reasons) {
            free(paths);
            free(reasons);
            rc = dp_set_error(DP_ERR_NOMEM, "dp_ingest_dir: out of memory");
            goto done;
        }
        for (guint i = 0; i < fl->len; i++) {
            paths[i] = g_array_index(fl, dp_ingest_failure, i).path;
            reasons[i] = g_array_index(fl, dp_ingest_failure, i).reason;
        }
        rc = dp_index_set_failures(ix, paths, reasons, fl->len);
        free(paths);
        free(reasons);
    }
    if (!rc) rc = dp_index_commit(ix);
    if (!rc) rc = sync_ann(ix, p);

done:
    fill_failures(rep, w.failures);
    rep->seconds = dp_now() - t0;
    dp_index_free(ix);
    if (present) g_hash_table_destroy(present);
    g_hash_table_destroy(w.seen_dirs);
    for (size_t i = 0; i < nfiles; i++) {
        g_free(files[i].rel);
        g_free(files[i].full);
    }
    g_array_free(w.files, TRUE);
    free(todo);
    free(todo_paths);
    return rc;
}
