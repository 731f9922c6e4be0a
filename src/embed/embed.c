/* Embedders: a featuriser plus everything needed to apply it identically
 * at index time and at query time (see include/doppel/embed.h). */
#include "doppel/embed.h"
#include "doppel/model.h"
#include "embed/classic.h"
#include "util/util.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef DP_SOURCE_MODELS_DIR
#define DP_SOURCE_MODELS_DIR "models"
#endif
#ifndef DP_INSTALL_MODELS_DIR
#define DP_INSTALL_MODELS_DIR "/usr/local/share/doppel/models"
#endif

enum { KIND_CNN, KIND_HIST, KIND_PHASH, KIND_THUMB };
enum { POOL_NONE, POOL_AVG, POOL_MAX };

#define MAX_JSON_BYTES (1 << 20)

struct dp_embedder {
    int kind;
    char name[256];
    char spec[4096];
    char model_path[4096];
    char node[512];
    char fingerprint[65];
    int pool;
    int dim;
    size_t slot_floats;
    uint64_t max_pixels;
    dp_preprocess pre;
    dp_model *model;
    char input_name[512];
    float *pooled; /* scratch for one batch of unnormalised vectors */
    size_t pooled_cap;
};

dp_embedder_params dp_embedder_default_params(void)
{
    dp_embedder_params p = {0};
    return p;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Find <dir>/<name>.onnx in the configured places. */
static int resolve_named(const dp_embedder_params *p, const char *name, char *onnx, size_t cap)
{
    const char *dirs[4];
    size_t nd = 0;
    if (p->models_dir) dirs[nd++] = p->models_dir;
    const char *env = getenv("DOPPEL_MODELS");
    if (env && *env) dirs[nd++] = env;
    dirs[nd++] = DP_SOURCE_MODELS_DIR;
    dirs[nd++] = DP_INSTALL_MODELS_DIR;
    for (size_t i = 0; i < nd; i++) {
        snprintf(onnx, cap, "%s/%s.onnx", dirs[i], name);
        if (file_exists(onnx)) return 0;
    }
    return dp_set_error(DP_ERR_NOT_FOUND,
                        "model '%s' not found (looked for %s.onnx in %s%s%s); run "
                        "tools/fetch_models.sh %s, or pass a path to an .onnx file",
                        name, name, p->models_dir ? p->models_dir : "", p->models_dir ? ", " : "",
                        DP_SOURCE_MODELS_DIR, name);
}

static int json_floats(json_t *arr, float *out, int n, const char *path, const char *key)
{
    if (!json_is_array(arr) || (int)json_array_size(arr) != n)
        return dp_set_error(DP_ERR_FORMAT, "%s: '%s' must be an array of %d numbers", path, key, n);
    for (int i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, (size_t)i);
        if (!json_is_number(v))
            return dp_set_error(DP_ERR_FORMAT, "%s: '%s' must hold numbers", path, key);
        out[i] = (float)json_number_value(v);
    }
    return 0;
}

/* Read the sidecar JSON written by tools/fetch_models.sh. */
static int read_sidecar(dp_embedder *e, const char *json_path, char *sha, size_t sha_cap)
{
    void *buf;
    size_t size;
    int rc = dp_read_file(json_path, MAX_JSON_BYTES, &buf, &size);
    if (rc) return rc;
    json_error_t jerr;
    json_t *root = json_loadb(buf, size, 0, &jerr);
    free(buf);
    if (!root)
        return dp_set_error(DP_ERR_FORMAT, "%s: line %d: %s", json_path, jerr.line, jerr.text);
    rc = DP_ERR_FORMAT;
    json_t *in = json_object_get(root, "input");
    json_t *emb = json_object_get(root, "embedding");
    if (!json_is_object(in) || !json_is_object(emb)) {
        dp_set_error(rc, "%s: needs 'input' and 'embedding' objects", json_path);
        goto done;
    }
    json_t *w = json_object_get(in, "width"), *h = json_object_get(in, "height");
    if (!json_is_integer(w) || !json_is_integer(h) || json_integer_value(w) < 1 ||
        json_integer_value(h) < 1 || json_integer_value(w) > 8192 || json_integer_value(h) > 8192) {
        dp_set_error(rc, "%s: input.width/height must be integers in 1..8192", json_path);
        goto done;
    }
    e->pre.width = (int)json_integer_value(w);
    e->pre.height = (int)json_integer_value(h);
    const char *color = json_string_value(json_object_get(in, "color"));
    e->pre.bgr = color && !strcmp(color, "BGR");
    const char *resize = json_string_value(json_object_get(in, "resize"));
    e->pre.resize = resize && !strcmp(resize, "crop") ? DP_RESIZE_CROP : DP_RESIZE_SQUASH;
    json_t *scale = json_object_get(in, "scale");
    if (scale && json_is_number(scale)) e->pre.scale = (float)json_number_value(scale);
    if (json_object_get(in, "mean") &&
        json_floats(json_object_get(in, "mean"), e->pre.mean, 3, json_path, "input.mean"))
        goto done;
    if (json_object_get(in, "std") &&
        json_floats(json_object_get(in, "std"), e->pre.std, 3, json_path, "input.std"))
        goto done;
    for (int c = 0; c < 3; c++)
        if (!(e->pre.std[c] > 0)) {
            dp_set_error(rc, "%s: input.std must be positive", json_path);
            goto done;
        }
    const char *iname = json_string_value(json_object_get(in, "name"));
    if (iname) snprintf(e->input_name, sizeof e->input_name, "%s", iname);
    const char *node = json_string_value(json_object_get(emb, "node"));
    if (node && !e->node[0]) snprintf(e->node, sizeof e->node, "%s", node);
    const char *pool = json_string_value(json_object_get(emb, "pool"));
    e->pool = !pool || !strcmp(pool, "avg") ? POOL_AVG
              : !strcmp(pool, "max")        ? POOL_MAX
                                            : POOL_NONE;
    const char *s = json_string_value(json_object_get(root, "sha256"));
    if (s) snprintf(sha, sha_cap, "%s", s);
    const char *nm = json_string_value(json_object_get(root, "name"));
    if (nm) snprintf(e->name, sizeof e->name, "%s", nm);
    rc = 0;
done:
    json_decref(root);
    return rc;
}

/* Output shape of the embedding node for one sample -> dim after pooling. */
static int embedding_dim(const dp_embedder *e, const dp_tensor *t)
{
    if (t->ndim == 4 && e->pool != POOL_NONE) return (int)t->dims[1];
    int64_t d = 1;
    for (int i = 1; i < t->ndim; i++)
        d *= t->dims[i];
    return (int)d;
}

static int open_cnn(dp_embedder *e, const dp_embedder_params *p, const char *onnx)
{
    char json_path[4200], expected_sha[80] = "";
    snprintf(e->model_path, sizeof e->model_path, "%s", onnx);
    snprintf(json_path, sizeof json_path, "%.*s.json", (int)(strlen(onnx) - 5), onnx);
    if (p->embedding_node) snprintf(e->node, sizeof e->node, "%s", p->embedding_node);
    e->pre = dp_preprocess_default();
    e->pool = POOL_AVG;
    int rc;
    if (file_exists(json_path) &&
        (rc = read_sidecar(e, json_path, expected_sha, sizeof expected_sha)))
        return rc;

    char sha[65];
    if ((rc = dp_sha256_file(onnx, sha))) return rc;
    if (expected_sha[0] && strcmp(expected_sha, sha) != 0)
        return dp_set_error(DP_ERR_MISMATCH,
                            "%s: sha256 %s does not match %s (%s); re-run tools/fetch_models.sh",
                            onnx, sha, json_path, expected_sha);

    dp_model_params mp = dp_model_default_params();
    mp.threads = p->threads;
    const char *outs[1] = {e->node};
    if (e->node[0]) {
        mp.outputs = outs;
        mp.n_outputs = 1;
    }
    if ((rc = dp_model_open(onnx, &mp, &e->model))) return rc;

    dp_tensor in;
    if ((rc = dp_model_input(e->model, 0, &in))) return rc;
    if (!e->input_name[0]) snprintf(e->input_name, sizeof e->input_name, "%s", in.name);
    if (in.ndim != 4 || (in.dims[1] != 3 && in.dims[1] != -1))
        return dp_set_error(DP_ERR_UNSUPPORTED,
                            "%s: input '%s' must be NCHW with 3 channels (has %d dims)", onnx,
                            in.name, in.ndim);
    /* Without a sidecar the graph's declared size decides the input size. */
    if (!file_exists(json_path) && in.dims[2] > 0 && in.dims[3] > 0) {
        e->pre.height = (int)in.dims[2];
        e->pre.width = (int)in.dims[3];
    }
    dp_tensor out;
    if ((rc = dp_model_output_info(e->model, 0, &out))) return rc;
    if (!e->node[0]) snprintf(e->node, sizeof e->node, "%s", out.name);
    e->slot_floats = (size_t)3 * (size_t)e->pre.width * (size_t)e->pre.height;

    /* The output's dims may be dynamic: one run on a blank image settles dim. */
    float *probe = calloc(e->slot_floats, sizeof *probe);
    if (!probe) return dp_set_error(DP_ERR_NOMEM, "%s: out of memory", onnx);
    dp_tensor t = {.name = e->input_name,
                   .dtype = DP_F32,
                   .ndim = 4,
                   .dims = {1, 3, e->pre.height, e->pre.width},
                   .data = probe};
    rc = dp_model_run(e->model, &t, 1);
    free(probe);
    if (rc) return dp_prefix_error(rc, "%s", onnx);
    if ((rc = dp_model_output(e->model, e->node, &out))) return rc;
    e->dim = embedding_dim(e, &out);

    /* v2: small images are resampled bilinearly by the image module's lean
     * path; bump this whenever preprocessing changes what a model sees. */
    char desc[1024];
    snprintf(desc, sizeof desc,
             "cnn:v2;onnx=%s;node=%s;pool=%d;in=%dx%d;resize=%d;bgr=%d;scale=%.9g;"
             "mean=%.9g,%.9g,%.9g;std=%.9g,%.9g,%.9g",
             sha, e->node, e->pool, e->pre.width, e->pre.height, e->pre.resize, e->pre.bgr,
             (double)e->pre.scale, (double)e->pre.mean[0], (double)e->pre.mean[1],
             (double)e->pre.mean[2], (double)e->pre.std[0], (double)e->pre.std[1],
             (double)e->pre.std[2]);
    dp_sha256_hex(desc, strlen(desc), e->fingerprint);
    return 0;
}

int dp_embedder_open(const dp_embedder_params *p, dp_embedder **out)
{
    *out = NULL;
    dp_embedder_params defaults = dp_embedder_default_params();
    if (!p) p = &defaults;
    dp_embedder *e = calloc(1, sizeof *e);
    if (!e) return dp_set_error(DP_ERR_NOMEM, "dp_embedder_open: out of memory");
    e->max_pixels = p->max_pixels;
    const char *model = p->model ? p->model : DP_DEFAULT_MODEL;
    snprintf(e->spec, sizeof e->spec, "%s", model);
    int rc = 0;
    if (!strcmp(model, "thumb8")) {
        e->kind = KIND_THUMB;
        snprintf(e->name, sizeof e->name, "%s", model);
        e->dim = DP_THUMB_DIM;
        e->slot_floats = (size_t)e->dim;
        const char *desc = "thumb8:v1:squash8x8:rgb/255:l2";
        dp_sha256_hex(desc, strlen(desc), e->fingerprint);
    } else if (!strcmp(model, "hist") || !strcmp(model, "phash")) {
        /* Classic featurisers: the slot already holds the final vector. */
        bool hist = model[0] == 'h';
        e->kind = hist ? KIND_HIST : KIND_PHASH;
        snprintf(e->name, sizeof e->name, "%s", model);
        e->dim = hist ? DP_HIST_DIM : 64;
        e->slot_floats = (size_t)e->dim;
        const char *desc =
            hist ? "hist:v1:hsv8x8x8:sqrt-l1:fit256" : "phash:v1:dct32:8x8-no-dc:pm1/8";
        dp_sha256_hex(desc, strlen(desc), e->fingerprint);
    } else if (ends_with(model, ".onnx")) {
        const char *base = strrchr(model, '/');
        snprintf(e->name, sizeof e->name, "%s", base ? base + 1 : model);
        rc = open_cnn(e, p, model);
    } else {
        char onnx[4096];
        snprintf(e->name, sizeof e->name, "%s", model);
        rc = resolve_named(p, model, onnx, sizeof onnx);
        if (!rc) rc = open_cnn(e, p, onnx);
    }
    if (rc) goto fail;
    e->pre.max_pixels = e->max_pixels;
    *out = e;
    return 0;
fail:
    dp_embedder_free(e);
    return dp_prefix_error(rc, "dp_embedder_open");
}

void dp_embedder_free(dp_embedder *e)
{
    if (!e) return;
    dp_model_free(e->model);
    free(e->pooled);
    free(e);
}

int dp_embedder_describe(const dp_embedder *e, dp_embedder_info *info)
{
    info->name = e->name;
    info->spec = e->spec;
    info->model_path = e->model_path;
    info->node = e->node;
    info->fingerprint = e->fingerprint;
    info->dim = e->dim;
    info->slot_floats = e->slot_floats;
    info->preprocess = e->pre;
    return 0;
}

/* The classic featurisers decode themselves; the image size for the index
 * comes from a header-only probe. */
static int classic_prepare(const dp_embedder *e, const void *data, size_t size, const char *path,
                           float *slot, dp_image_info *info)
{
    int rc;
    if (e->kind == KIND_HIST) {
        rc = data ? dp_classic_hist_memory(data, size, path, e->max_pixels, slot)
                  : dp_classic_hist(path, e->max_pixels, slot);
    } else if (e->kind == KIND_THUMB) {
        rc = data ? dp_classic_thumb_memory(data, size, path, e->max_pixels, slot)
                  : dp_classic_thumb(path, e->max_pixels, slot);
    } else {
        uint64_t h;
        rc = data ? dp_classic_phash_memory(data, size, path, e->max_pixels, &h)
                  : dp_classic_phash(path, e->max_pixels, &h);
        if (!rc) dp_classic_phash_to_vec(h, slot);
    }
    if (!rc && info)
        rc = data ? dp_image_probe_memory(data, size, path, info) : dp_image_probe(path, info);
    return rc;
}

int dp_embedder_prepare(const dp_embedder *e, const char *path, float *slot, dp_image_info *info)
{
    if (e->kind != KIND_CNN) return classic_prepare(e, NULL, 0, path, slot, info);
    return dp_image_load_tensor(path, &e->pre, slot, info);
}

int dp_embedder_prepare_memory(const dp_embedder *e, const void *data, size_t size,
                               const char *name, float *slot, dp_image_info *info)
{
    if (e->kind != KIND_CNN) return classic_prepare(e, data, size, name, slot, info);
    return dp_image_load_tensor_memory(data, size, name, &e->pre, slot, info);
}

static void l2_normalise(float *v, int dim)
{
    double s = 0;
    for (int i = 0; i < dim; i++)
        s += (double)v[i] * v[i];
    if (s <= 0) return; /* an all-zero vector stays zero rather than NaN */
    float inv = (float)(1.0 / sqrt(s));
    for (int i = 0; i < dim; i++)
        v[i] *= inv;
}

/* Pool an [n, C, H, W] feature map per channel, or copy a flat one. */
static void pool_output(const dp_embedder *e, const dp_tensor *t, size_t n, float *out)
{
    const float *x = t->data;
    if (t->ndim == 4 && e->pool != POOL_NONE) {
        size_t c = (size_t)t->dims[1], hw = (size_t)(t->dims[2] * t->dims[3]);
        for (size_t i = 0; i < n * c; i++) {
            const float *p = x + i * hw;
            float acc = e->pool == POOL_AVG ? 0.0f : p[0];
            for (size_t j = 0; j < hw; j++)
                acc = e->pool == POOL_AVG ? acc + p[j] : (p[j] > acc ? p[j] : acc);
            out[i] = e->pool == POOL_AVG ? acc / (float)hw : acc;
        }
    } else {
        memcpy(out, x, n * (size_t)e->dim * sizeof *out);
    }
}

int dp_embedder_run(dp_embedder *e, const float *slots, size_t n, float *out)
{
    if (n == 0) return 0;
    if (e->kind != KIND_CNN) {
        memcpy(out, slots, n * (size_t)e->dim * sizeof *out);
        return 0;
    }
    /* Bounded batches keep activation memory flat whatever the caller sends. */
    const size_t max_batch = 64;
    for (size_t b = 0; b < n; b += max_batch) {
        size_t m = n - b < max_batch ? n - b : max_batch;
        dp_tensor t = {.name = e->input_name,
                       .dtype = DP_F32,
                       .ndim = 4,
                       .dims = {(int64_t)m, 3, e->pre.height, e->pre.width},
                       .data = (void *)(slots + b * e->slot_floats)};
        int rc = dp_model_run(e->model, &t, 1);
        if (rc) return dp_prefix_error(rc, "dp_embedder_run: %s", e->name);
        dp_tensor o;
        if ((rc = dp_model_output(e->model, e->node, &o))) return rc;
        if (o.ndim < 1 || o.dims[0] != (int64_t)m || embedding_dim(e, &o) != e->dim)
            return dp_set_error(DP_ERR_BACKEND, "dp_embedder_run: %s: node '%s' changed shape",
                                e->name, e->node);
        pool_output(e, &o, m, out + b * (size_t)e->dim);
    }
    for (size_t i = 0; i < n; i++)
        l2_normalise(out + i * (size_t)e->dim, e->dim);
    return 0;
}

int dp_embed_file(dp_embedder *e, const char *path, float *out)
{
    float *slot = malloc(e->slot_floats * sizeof *slot);
    if (!slot) return dp_set_error(DP_ERR_NOMEM, "%s: out of memory", path);
    int rc = dp_embedder_prepare(e, path, slot, NULL);
    if (!rc) rc = dp_embedder_run(e, slot, 1, out);
    free(slot);
    return rc;
}
