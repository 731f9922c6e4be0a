/* Image decoding on libvips: header check, shrink-on-load thumbnail, colour
 * normalisation to 8-bit sRGB, then the model tensor or an RGB buffer.
 *
 * Every load opens the input twice through one VipsSource: first for the
 * header only (cheap, no pixels), which is where decompression bombs are
 * refused, then through vips_thumbnail_source(), which picks the loader's
 * shrink-on-load factor (JPEG 1/2..1/8 in the DCT, WebP, TIFF pyramids) and
 * streams the rest sequentially, so memory stays near the output size. We
 * use VipsSource rather than vips_thumbnail(filename) because libvips
 * parses "[options]" at the end of a file name. */
#include "util/util.h"

#include "doppel/image.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <vips/vips.h>

#define DP_DEFAULT_MAX_PIXELS 100000000ULL
#define DP_MAX_TENSOR_SIDE 16384
#define DP_CROP_MAX_INTERMEDIATE 16e6 /* pixels */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_failed;
static char init_reason[256];

/* libvips reports recoverable decoder trouble (extraneous bytes, unknown
 * markers) through g_warning; the library must not print, and real errors
 * come back through vips_error and fail_on=error anyway. */
static void drop_log(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer user)
{
    (void)domain;
    (void)level;
    (void)msg;
    (void)user;
}

static void do_init(void)
{
    if (vips_init("doppel") != 0) {
        char *m = vips_error_buffer_copy();
        snprintf(init_reason, sizeof init_reason, "%s", m ? m : "");
        g_free(m);
        init_failed = 1;
        return;
    }
    /* The operation cache keeps recent images and files open; a long
     * indexing run never revisits an image, so it would only grow. */
    vips_cache_set_max(0);
    vips_cache_set_max_mem(0);
    vips_cache_set_max_files(0);
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO,
                      drop_log, NULL);
}

int dp_image_init(void)
{
    pthread_once(&init_once, do_init);
    if (init_failed)
        return dp_set_error(DP_ERR_BACKEND, "dp_image_init: libvips failed to start: %s",
                            init_reason);
    return 0;
}

dp_preprocess dp_preprocess_default(void)
{
    dp_preprocess p;
    memset(&p, 0, sizeof p);
    p.width = 224;
    p.height = 224;
    p.resize = DP_RESIZE_SQUASH;
    p.bgr = 0;
    p.scale = 1.0f / 255.0f;
    for (int c = 0; c < 3; c++) {
        p.mean[c] = 0.0f;
        p.std[c] = 1.0f;
    }
    p.max_pixels = 0;
    return p;
}

/* Where the bytes come from; name is what messages call it. */
typedef struct src_desc {
    const char *path; /* NULL for memory */
    const void *data;
    size_t size;
    const char *name;
} src_desc;

/* Take libvips' error text and clear it (one locked step inside libvips).
 * The buffer is process-wide: we never clear it on success, since that
 * could wipe another thread's reason between its failure and its copy, and
 * keep only the last lines, which belong to the most recent failure. */
#define DP_REASON_LINES 3
static void vips_reason(char *buf, size_t n)
{
    char *m = vips_error_buffer_copy();
    char *lines[DP_REASON_LINES] = {0};
    int count = 0;
    buf[0] = '\0';
    if (m) {
        char *save = NULL;
        for (char *line = strtok_r(m, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            size_t len = strlen(line);
            while (len && (line[len - 1] == ' ' || line[len - 1] == '\r'))
                line[--len] = '\0';
            if (!len) continue;
            if (count == DP_REASON_LINES) {
                memmove(lines, lines + 1, sizeof lines[0] * (DP_REASON_LINES - 1));
                count--;
            }
            lines[count++] = line;
        }
        size_t o = 0;
        for (int i = 0; i < count; i++) {
            int w = snprintf(buf + o, n - o, "%s%s", o ? "; " : "", lines[i]);
            if (w < 0 || (size_t)w >= n - o) break;
            o += (size_t)w;
        }
        g_free(m);
    }
    if (!buf[0]) snprintf(buf, n, "libvips gave no reason");
}

/* libvips' error buffer is one per process, and some loaders (HEIF) leave
 * text in it even on success, which would then show up as the "reason" of
 * the next failure. Clearing it is only safe when no other thread is
 * between a failing libvips call and its copy of the text, so calls are
 * counted: a call that starts or ends while it is the only one clears. Under
 * constant concurrency a cap keeps the (fixed 10 KB, then silently
 * truncated) buffer from filling up. */
static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;
static int err_active;

static void vips_enter(void)
{
    pthread_mutex_lock(&err_mu);
    if (err_active++ == 0) vips_error_clear();
    pthread_mutex_unlock(&err_mu);
}

static void vips_leave(int ok)
{
    pthread_mutex_lock(&err_mu);
    if (ok) {
        const char *b = vips_error_buffer();
        if (err_active == 1 || (b && strnlen(b, 4096) >= 4096)) vips_error_clear();
    }
    err_active--;
    pthread_mutex_unlock(&err_mu);
}

static int vips_fail(const src_desc *s, const char *what)
{
    char reason[768];
    vips_reason(reason, sizeof reason);
    return dp_set_error(DP_ERR_FORMAT, "%s: %s: %s", s->name, what, reason);
}

static void fmt_mp(char *buf, size_t n, double px)
{
    double mp = px / 1e6;
    if (mp >= 10.0)
        snprintf(buf, n, "%.0f", mp);
    else
        snprintf(buf, n, "%.2g", mp);
}

/* Checks that cost nothing and give better messages than libvips would:
 * missing file, directory, empty file. */
static int check_input(const src_desc *s)
{
    if (s->path) {
        struct stat st;
        if (stat(s->path, &st) != 0)
            return dp_set_error(DP_ERR_IO, "%s: %s", s->name, strerror(errno));
        if (!S_ISREG(st.st_mode)) return dp_set_error(DP_ERR_IO, "%s: not a regular file", s->name);
        if (st.st_size == 0) return dp_set_error(DP_ERR_FORMAT, "%s: empty file", s->name);
    } else {
        if (!s->data && s->size) return dp_set_error(DP_ERR_INVALID, "%s: NULL data", s->name);
        if (s->size == 0) return dp_set_error(DP_ERR_FORMAT, "%s: empty buffer", s->name);
    }
    return 0;
}

static VipsSource *open_source(const src_desc *s)
{
    if (s->path) return vips_source_new_from_file(s->path);
    return vips_source_new_from_memory(s->data, s->size);
}

/* What the header says, before any pixel is decoded. */
typedef struct header {
    int width, height; /* of the page we load, before orientation */
    int bands;
    int swap; /* EXIF orientation swaps width and height */
    int has_icc;
    char format[16];
} header;

static int read_header(VipsSource *src, const src_desc *s, uint64_t max_pixels, header *h)
{
    VipsImage *im = vips_image_new_from_source(src, "", "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                                               VIPS_FAIL_ON_ERROR, NULL);
    if (!im) return vips_fail(s, "cannot read image header");
    memset(h, 0, sizeof *h);
    h->width = vips_image_get_width(im);
    h->height = vips_image_get_page_height(im);
    h->bands = vips_image_get_bands(im);
    h->swap = vips_image_get_orientation_swap(im) ? 1 : 0;
    h->has_icc = vips_image_get_typeof(im, VIPS_META_ICC_NAME) != 0;
    const char *loader = NULL;
    if (vips_image_get_typeof(im, VIPS_META_LOADER) &&
        vips_image_get_string(im, VIPS_META_LOADER, &loader) == 0 && loader) {
        /* "jpegload_source" -> "jpeg" */
        const char *end = strstr(loader, "load");
        size_t len = end ? (size_t)(end - loader) : strlen(loader);
        if (len >= sizeof h->format) len = sizeof h->format - 1;
        memcpy(h->format, loader, len);
        h->format[len] = '\0';
    }
    g_object_unref(im);

    if (h->width <= 0 || h->height <= 0)
        return dp_set_error(DP_ERR_FORMAT, "%s: image header declares %dx%d pixels", s->name,
                            h->width, h->height);
    uint64_t limit = max_pixels ? max_pixels : DP_DEFAULT_MAX_PIXELS;
    uint64_t px = (uint64_t)h->width * (uint64_t)h->height;
    if (px > limit) {
        char a[32], b[32];
        fmt_mp(a, sizeof a, (double)px);
        fmt_mp(b, sizeof b, (double)limit);
        return dp_set_error(DP_ERR_NOMEM, "%s: image is %dx%d (%s MP), above the limit of %s MP",
                            s->name, h->width, h->height, a, b);
    }
    return 0;
}

static void fill_info(const header *h, dp_image_info *info)
{
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->width = h->swap ? h->height : h->width;
    info->height = h->swap ? h->width : h->height;
    info->bands = h->bands;
    memcpy(info->format, h->format, sizeof info->format);
}

/* Any thumbnail (grey, grey+alpha, 16-bit, CMYK, Lab, sRGB+alpha, float)
 * to 3-band 8-bit sRGB with alpha composited onto white. */
static int to_srgb8(VipsImage *in, VipsImage **out)
{
    VipsImage *t[5] = {0};
    VipsImage *cur = in;
    int rc = -1;

    /* 16-bit images are tagged RGB16/GREY16 by the loaders; a ushort image
     * that claims sRGB would otherwise be clipped instead of scaled. */
    if (vips_image_get_format(cur) == VIPS_FORMAT_USHORT &&
        (vips_image_get_interpretation(cur) == VIPS_INTERPRETATION_sRGB ||
         vips_image_get_interpretation(cur) == VIPS_INTERPRETATION_B_W)) {
        VipsInterpretation i =
            vips_image_get_bands(cur) >= 3 ? VIPS_INTERPRETATION_RGB16 : VIPS_INTERPRETATION_GREY16;
        if (vips_copy(cur, &t[0], "interpretation", i, NULL)) goto done;
        cur = t[0];
    }
    if (vips_colourspace(cur, &t[1], VIPS_INTERPRETATION_sRGB, NULL)) goto done;
    cur = t[1];
    if (vips_image_hasalpha(cur)) {
        VipsArrayDouble *bg = vips_array_double_newv(3, 255.0, 255.0, 255.0);
        int r = vips_flatten(cur, &t[2], "background", bg, "max_alpha", 255.0, NULL);
        vips_area_unref(VIPS_AREA(bg));
        if (r) goto done;
        cur = t[2];
    }
    if (vips_image_get_bands(cur) > 3) {
        if (vips_extract_band(cur, &t[3], 0, "n", 3, NULL)) goto done;
        cur = t[3];
    } else if (vips_image_get_bands(cur) < 3) {
        VipsImage *three[3] = {cur, cur, cur};
        if (vips_bandjoin(three, &t[4], 3, NULL)) goto done;
        cur = t[4];
    }
    if (vips_cast(cur, out, VIPS_FORMAT_UCHAR, NULL)) goto done;
    rc = 0;
done:
    for (int i = 0; i < 5; i++)
        if (t[i]) g_object_unref(t[i]);
    return rc;
}

/* The largest JPEG block shrink (1, 2, 4, 8) that keeps the decoded image
 * at least as big as the target in the dimension that limits it: for fit
 * (DOWN) the image scales by the larger ratio, for squash and cover by the
 * smaller one. */
static int jpeg_shrink(int ow, int oh, int tw, int th, VipsSize size)
{
    double sx = (double)ow / tw, sy = (double)oh / th;
    double f = size == VIPS_SIZE_DOWN ? fmax(sx, sy) : fmin(sx, sy);
    return f >= 8 ? 8 : f >= 4 ? 4 : f >= 2 ? 2 : 1;
}

/* Decode s into 8-bit interleaved sRGB via the thumbnailer. The caller
 * g_free()s *pix. */
typedef struct thumb_req {
    int width, height;
    VipsSize size;
    VipsInteresting crop;
    uint64_t max_pixels;
} thumb_req;

static int decode(const src_desc *s, const thumb_req *rq, unsigned char **pix, int *w, int *h,
                  dp_image_info *info)
{
    VipsSource *src = NULL;
    VipsImage *thumb = NULL, *rgb = NULL;
    header hd;
    int rc;

    *pix = NULL;
    if ((rc = dp_image_init())) return rc;
    if ((rc = check_input(s))) return rc;
    vips_enter();
    if (!(src = open_source(s))) {
        rc = vips_fail(s, "cannot open");
        goto fail;
    }
    if ((rc = read_header(src, s, rq->max_pixels, &hd))) goto fail;
    fill_info(&hd, info);

    int ow = hd.swap ? hd.height : hd.width, oh = hd.swap ? hd.width : hd.height;
    int tw = rq->width, th = rq->height;
    if (tw <= 0 || th <= 0) { /* full size */
        tw = ow;
        th = oh;
    }
    /* Crop mode scales the image to cover the target, then crops; the
     * intermediate is target area x aspect mismatch, so a 1 x 100000 strip
     * would become 224 x 22.4M pixels before the crop. Past a cap, crop the
     * centre at full resolution first (the strip is under max_pixels) and
     * scale only that. */
    int precrop = 0;
    if (rq->crop != VIPS_INTERESTING_NONE) {
        double m = ((double)ow / oh) / ((double)tw / th);
        if (m < 1.0) m = 1.0 / m;
        precrop = (double)tw * th * m > DP_CROP_MAX_INTERMEDIATE;
    }
    /* An embedded ICC profile (Adobe RGB, Display P3, a CMYK press profile)
     * is only honoured when an output profile is named; without one the
     * thumbnailer converts in device space, which is what we want for
     * untagged images. libvips 8.14's thumbnailer does not hand its fail_on
     * to the loader; the option string does, and without it a truncated JPEG
     * decodes "successfully" with grey at the bottom. */
    int k = precrop || strcmp(hd.format, "jpeg") ? 1 : jpeg_shrink(ow, oh, tw, th, rq->size);
    if (k > 1) {
        /* libvips' thumbnailer leaves a factor of two between the JPEG
         * block shrink and the target, so a 12 MP photo is decoded at 1/4;
         * the DCT downscale is already a proper low-pass, so we take the
         * largest factor that stays above the target (1/8 here) and let the
         * thumbnailer do the rest: about a third less time per photo. */
        VipsImage *pre = NULL;
        int bad =
            vips_jpegload_source(src, &pre, "shrink", k, "access", VIPS_ACCESS_SEQUENTIAL,
                                 "fail_on", VIPS_FAIL_ON_ERROR, NULL) ||
            vips_thumbnail_image(pre, &thumb, tw, "height", th, "size", rq->size, "crop", rq->crop,
                                 "export_profile", hd.has_icc ? "srgb" : NULL, NULL);
        if (pre) g_object_unref(pre);
        if (bad) {
            rc = vips_fail(s, "cannot decode");
            goto fail;
        }
    } else if (vips_thumbnail_source(src, &thumb, precrop ? ow : tw, "height", precrop ? oh : th,
                                     "size", precrop ? VIPS_SIZE_DOWN : rq->size, "crop",
                                     precrop ? VIPS_INTERESTING_NONE : rq->crop, "option_string",
                                     "fail_on=error", "fail_on", VIPS_FAIL_ON_ERROR,
                                     "export_profile", hd.has_icc ? "srgb" : NULL, NULL)) {
        rc = vips_fail(s, "cannot decode");
        goto fail;
    }
    if (to_srgb8(thumb, &rgb)) {
        rc = vips_fail(s, "cannot convert to sRGB");
        goto fail;
    }
    if (precrop) {
        int iw = vips_image_get_width(rgb), ih = vips_image_get_height(rgb);
        int rw = iw, rh = ih;
        if ((double)iw / ih > (double)tw / th)
            rw = (int)fmax(1.0, round((double)ih * tw / th));
        else
            rh = (int)fmax(1.0, round((double)iw * th / tw));
        VipsImage *c = NULL, *r = NULL;
        if (vips_crop(rgb, &c, (iw - rw) / 2, (ih - rh) / 2, rw, rh, NULL) ||
            vips_thumbnail_image(c, &r, tw, "height", th, "size", VIPS_SIZE_FORCE, NULL)) {
            if (c) g_object_unref(c);
            rc = vips_fail(s, "cannot crop");
            goto fail;
        }
        g_object_unref(c);
        g_object_unref(rgb);
        rgb = r;
    }
    size_t n = 0;
    /* The pixels are computed here; truncation and corrupt data surface now. */
    *pix = vips_image_write_to_memory(rgb, &n);
    if (!*pix) {
        rc = vips_fail(s, "cannot decode");
        goto fail;
    }
    *w = vips_image_get_width(rgb);
    *h = vips_image_get_height(rgb);
    if (n != (size_t)*w * (size_t)*h * 3) {
        rc = dp_set_error(DP_ERR_BACKEND, "%s: libvips returned %zu bytes for %dx%d RGB", s->name,
                          n, *w, *h);
        goto fail;
    }
    rc = 0;
fail:
    if (rc) {
        g_free(*pix);
        *pix = NULL;
    }
    if (rgb) g_object_unref(rgb);
    if (thumb) g_object_unref(thumb);
    if (src) g_object_unref(src);
    vips_leave(rc == 0);
    return rc;
}

static int probe(const src_desc *s, dp_image_info *info)
{
    if (!info) return dp_set_error(DP_ERR_INVALID, "%s: NULL info", s->name);
    int rc = dp_image_init();
    if (rc || (rc = check_input(s))) return rc;
    vips_enter();
    header hd;
    VipsSource *src = open_source(s);
    if (!src)
        rc = vips_fail(s, "cannot open");
    else
        rc = read_header(src, s, UINT64_MAX, &hd);
    if (src) g_object_unref(src);
    vips_leave(rc == 0);
    if (rc) return rc;
    fill_info(&hd, info);
    return 0;
}

int dp_image_probe(const char *path, dp_image_info *info)
{
    if (!path) return dp_set_error(DP_ERR_INVALID, "dp_image_probe: NULL path");
    src_desc s = {.path = path, .name = path};
    return probe(&s, info);
}

int dp_image_probe_memory(const void *data, size_t size, const char *name, dp_image_info *info)
{
    src_desc s = {.data = data, .size = size, .name = name ? name : "<memory>"};
    return probe(&s, info);
}

static int check_preprocess(const dp_preprocess *p)
{
    if (!p) return dp_set_error(DP_ERR_INVALID, "dp_image_load_tensor: NULL preprocess");
    if (p->width <= 0 || p->height <= 0 || p->width > DP_MAX_TENSOR_SIDE ||
        p->height > DP_MAX_TENSOR_SIDE)
        return dp_set_error(DP_ERR_INVALID, "dp_image_load_tensor: input size %dx%d out of range",
                            p->width, p->height);
    if (p->resize != DP_RESIZE_SQUASH && p->resize != DP_RESIZE_CROP)
        return dp_set_error(DP_ERR_INVALID, "dp_image_load_tensor: unknown resize mode %d",
                            p->resize);
    if (!isfinite(p->scale))
        return dp_set_error(DP_ERR_INVALID, "dp_image_load_tensor: scale is not finite");
    for (int c = 0; c < 3; c++)
        if (!isfinite(p->mean[c]) || !isfinite(p->std[c]) || p->std[c] == 0.0f)
            return dp_set_error(DP_ERR_INVALID,
                                "dp_image_load_tensor: mean/std[%d] = %g/%g is not usable", c,
                                (double)p->mean[c], (double)p->std[c]);
    return 0;
}

/* Small plain images (icons, emoji, product thumbnails: anything no bigger
 * than the model's input, so resampling only ever enlarges) skip the thumbnailer: one libvips
 * decode of the whole image, then flatten, squash-resize and normalise in a single pass here. The
 * thumbnailer's fixed cost (a second open, five chained operations, a thread pool per image) is
 * several ms, more than the decode itself and a large share of a small CNN's inference time, which
 * is what decode must hide behind when indexing. Resampling is bilinear with half-pixel centres,
 * the resampling the default models were trained with; flattening before resampling equals libvips'
 * premultiplied resample + flatten, since both are linear. Anything unusual (ICC profile, EXIF
 * rotation, 16-bit, CMYK, Lab, crop mode, big images) takes the full path.
 * Returns 1 when the image is not eligible (nothing written), 0 or an error
 * otherwise. */
/* Downscaling stays with libvips: plain bilinear would alias, and two copies
 * of one picture at different sizes must go through the same filter. */
#define LEAN_MAX_SCALE 1

static int load_tensor_lean(const src_desc *s, const dp_preprocess *p, float *out,
                            dp_image_info *info)
{
    if (p->resize != DP_RESIZE_SQUASH) return 1;
    int rc = dp_image_init();
    if (rc || (rc = check_input(s))) return rc;
    vips_enter();
    VipsSource *src = open_source(s);
    VipsImage *im = NULL;
    unsigned char *pix = NULL;
    rc = 1;
    if (!src) goto done; /* the full path reports it */
    im = vips_image_new_from_source(src, "", "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                                    VIPS_FAIL_ON_ERROR, NULL);
    if (!im) goto done;
    int iw = vips_image_get_width(im), ih = vips_image_get_height(im);
    int bands = vips_image_get_bands(im);
    VipsInterpretation in = vips_image_get_interpretation(im);
    if (iw <= 0 || ih <= 0 || vips_image_get_page_height(im) != ih ||
        iw > LEAN_MAX_SCALE * p->width || ih > LEAN_MAX_SCALE * p->height ||
        vips_image_get_format(im) != VIPS_FORMAT_UCHAR || bands < 1 || bands > 4 ||
        (in != VIPS_INTERPRETATION_sRGB && in != VIPS_INTERPRETATION_B_W) ||
        vips_image_get_typeof(im, VIPS_META_ICC_NAME) || vips_image_get_orientation(im) != 1)
        goto done;
    if (info) {
        header hd = {.width = iw, .height = ih, .bands = bands};
        const char *loader = NULL;
        if (vips_image_get_typeof(im, VIPS_META_LOADER) &&
            vips_image_get_string(im, VIPS_META_LOADER, &loader) == 0 && loader) {
            const char *end = strstr(loader, "load");
            size_t len = end ? (size_t)(end - loader) : strlen(loader);
            if (len >= sizeof hd.format) len = sizeof hd.format - 1;
            memcpy(hd.format, loader, len);
        }
        fill_info(&hd, info);
    }
    size_t n = 0;
    pix = vips_image_write_to_memory(im, &n);
    if (!pix) {
        rc = vips_fail(s, "cannot decode");
        goto done;
    }
    if (n != (size_t)iw * (size_t)ih * (size_t)bands) {
        rc = dp_set_error(DP_ERR_BACKEND, "%s: libvips returned %zu bytes for %dx%d", s->name, n,
                          iw, ih);
        goto done;
    }
    /* Flatten onto white into 3-band floats, in place of a second buffer. */
    float *rgbf = malloc((size_t)iw * (size_t)ih * 3 * sizeof *rgbf);
    if (!rgbf) {
        rc = dp_set_error(DP_ERR_NOMEM, "%s: out of memory", s->name);
        goto done;
    }
    int colour = bands >= 3, alpha = bands == 2 || bands == 4;
    for (size_t i = 0; i < (size_t)iw * (size_t)ih; i++) {
        const unsigned char *q = pix + i * (size_t)bands;
        float a = alpha ? q[bands - 1] / 255.0f : 1.0f;
        for (int c = 0; c < 3; c++) {
            float v = q[colour ? c : 0];
            rgbf[3 * i + (size_t)c] = v * a + 255.0f * (1.0f - a);
        }
    }
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++)
            lut[c][v] = ((float)v * p->scale - p->mean[c]) / p->std[c];
    const int ow = p->width, oh = p->height;
    const size_t plane = (size_t)ow * (size_t)oh;
    const float fx = (float)iw / (float)ow, fy = (float)ih / (float)oh;
    for (int y = 0; y < oh; y++) {
        float sy = ((float)y + 0.5f) * fy - 0.5f;
        if (sy < 0) sy = 0;
        int y0 = (int)sy, y1 = y0 + 1 < ih ? y0 + 1 : ih - 1;
        float wy = sy - (float)y0;
        for (int x = 0; x < ow; x++) {
            float sx = ((float)x + 0.5f) * fx - 0.5f;
            if (sx < 0) sx = 0;
            int x0 = (int)sx, x1 = x0 + 1 < iw ? x0 + 1 : iw - 1;
            float wx = sx - (float)x0;
            const float *a = rgbf + ((size_t)y0 * (size_t)iw + (size_t)x0) * 3;
            const float *b = rgbf + ((size_t)y0 * (size_t)iw + (size_t)x1) * 3;
            const float *c2 = rgbf + ((size_t)y1 * (size_t)iw + (size_t)x0) * 3;
            const float *d = rgbf + ((size_t)y1 * (size_t)iw + (size_t)x1) * 3;
            for (int c = 0; c < 3; c++) {
                float top = a[c] + (b[c] - a[c]) * wx, bot = c2[c] + (d[c] - c2[c]) * wx;
                int v = (int)(top + (bot - top) * wy + 0.5f);
                v = v < 0 ? 0 : v > 255 ? 255 : v;
                int oc = p->bgr ? 2 - c : c;
                out[(size_t)oc * plane + (size_t)y * (size_t)ow + (size_t)x] = lut[oc][v];
            }
        }
    }
    free(rgbf);
    rc = 0;
done:
    g_free(pix);
    if (im) g_object_unref(im);
    if (src) g_object_unref(src);
    vips_leave(rc == 0);
    return rc;
}

static int load_tensor(const src_desc *s, const dp_preprocess *p, float *out, dp_image_info *info)
{
    int rc = check_preprocess(p);
    if (rc) return rc;
    if (!out) return dp_set_error(DP_ERR_INVALID, "%s: NULL output tensor", s->name);
    if ((rc = load_tensor_lean(s, p, out, info)) <= 0) return rc;

    thumb_req rq = {.width = p->width,
                    .height = p->height,
                    .size = p->resize == DP_RESIZE_SQUASH ? VIPS_SIZE_FORCE : VIPS_SIZE_BOTH,
                    .crop = p->resize == DP_RESIZE_CROP ? VIPS_INTERESTING_CENTRE
                                                        : VIPS_INTERESTING_NONE,
                    .max_pixels = p->max_pixels};
    unsigned char *pix = NULL;
    int w = 0, h = 0;
    if ((rc = decode(s, &rq, &pix, &w, &h, info))) return rc;
    if (w != p->width || h != p->height) {
        g_free(pix);
        return dp_set_error(DP_ERR_BACKEND, "%s: resized to %dx%d instead of %dx%d", s->name, w, h,
                            p->width, p->height);
    }

    /* A table per channel applies the formula exactly as documented, with
     * no per-pixel division. */
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++)
            lut[c][v] = ((float)v * p->scale - p->mean[c]) / p->std[c];
    size_t plane = (size_t)w * (size_t)h;
    for (int c = 0; c < 3; c++) {
        int sc = p->bgr ? 2 - c : c;
        float *dst = out + (size_t)c * plane;
        const unsigned char *px = pix + sc;
        for (size_t i = 0; i < plane; i++)
            dst[i] = lut[c][px[3 * i]];
    }
    g_free(pix);
    return 0;
}

int dp_image_load_tensor(const char *path, const dp_preprocess *p, float *out, dp_image_info *info)
{
    if (!path) return dp_set_error(DP_ERR_INVALID, "dp_image_load_tensor: NULL path");
    src_desc s = {.path = path, .name = path};
    return load_tensor(&s, p, out, info);
}

int dp_image_load_tensor_memory(const void *data, size_t size, const char *name,
                                const dp_preprocess *p, float *out, dp_image_info *info)
{
    src_desc s = {.data = data, .size = size, .name = name ? name : "<memory>"};
    return load_tensor(&s, p, out, info);
}

static int load_rgb(const src_desc *s, int max_side, uint64_t max_pixels, unsigned char **rgb,
                    int *width, int *height, dp_image_info *info)
{
    if (!rgb || !width || !height)
        return dp_set_error(DP_ERR_INVALID, "%s: NULL output argument", s->name);
    *rgb = NULL;
    *width = *height = 0;
    thumb_req rq = {.width = max_side > 0 ? max_side : 0,
                    .height = max_side > 0 ? max_side : 0,
                    .size = VIPS_SIZE_DOWN,
                    .crop = VIPS_INTERESTING_NONE,
                    .max_pixels = max_pixels};
    unsigned char *pix = NULL;
    int w = 0, h = 0;
    int rc = decode(s, &rq, &pix, &w, &h, info);
    if (rc) return rc;
    /* Hand back plain malloc memory: callers should not need to know glib. */
    size_t n = (size_t)w * (size_t)h * 3;
    unsigned char *copy = malloc(n ? n : 1);
    if (!copy) {
        g_free(pix);
        return dp_set_error(DP_ERR_NOMEM, "%s: cannot allocate %zu bytes", s->name, n);
    }
    memcpy(copy, pix, n);
    g_free(pix);
    *rgb = copy;
    *width = w;
    *height = h;
    return 0;
}

int dp_image_load_rgb(const char *path, int max_side, uint64_t max_pixels, unsigned char **rgb,
                      int *width, int *height, dp_image_info *info)
{
    if (!path) return dp_set_error(DP_ERR_INVALID, "dp_image_load_rgb: NULL path");
    src_desc s = {.path = path, .name = path};
    return load_rgb(&s, max_side, max_pixels, rgb, width, height, info);
}

int dp_image_load_rgb_memory(const void *data, size_t size, const char *name, int max_side,
                             uint64_t max_pixels, unsigned char **rgb, int *width, int *height,
                             dp_image_info *info)
{
    src_desc s = {.data = data, .size = size, .name = name ? name : "<memory>"};
    return load_rgb(&s, max_side, max_pixels, rgb, width, height, info);
}

int dp_image_thumbnail_jpeg(const char *path, int max_side, int quality, uint64_t max_pixels,
                            void **jpeg, size_t *size)
{
    if (!path || !jpeg || !size)
        return dp_set_error(DP_ERR_INVALID, "dp_image_thumbnail_jpeg: NULL argument");
    *jpeg = NULL;
    *size = 0;
    if (quality < 0 || quality > 100)
        return dp_set_error(DP_ERR_INVALID, "dp_image_thumbnail_jpeg: quality %d not in 0..100",
                            quality);
    unsigned char *rgb = NULL;
    int w = 0, h = 0;
    int rc = dp_image_load_rgb(path, max_side, max_pixels, &rgb, &w, &h, NULL);
    if (rc) return rc;
    src_desc s = {.path = path, .name = path};
    vips_enter();
    VipsImage *im = vips_image_new_from_memory(rgb, (size_t)w * h * 3, w, h, 3, VIPS_FORMAT_UCHAR);
    void *buf = NULL;
    size_t n = 0;
    if (!im) {
        rc = vips_fail(&s, "cannot wrap pixels");
        goto fail;
    }
    if (vips_jpegsave_buffer(im, &buf, &n, "Q", quality ? quality : 80, "strip", TRUE, NULL)) {
        rc = vips_fail(&s, "cannot encode thumbnail");
        goto fail;
    }
    *jpeg = malloc(n);
    if (!*jpeg) {
        rc = dp_set_error(DP_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n);
        goto fail;
    }
    memcpy(*jpeg, buf, n);
    *size = n;
    rc = 0;
fail:
    g_free(buf);
    if (im) g_object_unref(im);
    free(rgb);
    vips_leave(rc == 0);
    return rc;
}
