/* dp_image on real files made at test time with libvips' encoders: EXIF
 * orientation, alpha, grey, CMYK, 16-bit, ICC-tagged, squash vs crop,
 * normalisation, and the bad-input cases (truncated, empty, not an image,
 * decompression bombs declared in a PNG or JPEG header). */
#include "check.h"
#include "doppel/image.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <vips/vips.h>

static char tmpdir[256];
static int have_avif;

static const char *tpath(const char *name)
{
    static _Thread_local char buf[8][512];
    static _Thread_local int k;
    char *p = buf[k++ & 7];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static void die_vips(const char *what)
{
    fprintf(stderr, "test setup: %s: %s\n", what, vips_error_buffer());
    exit(2);
}

/* An 8-bit image of w x h x bands from a pixel function. */
typedef void (*pixel_fn)(int x, int y, unsigned char *px);
static VipsImage *make(int w, int h, int bands, pixel_fn f, VipsInterpretation interp)
{
    unsigned char *buf = malloc((size_t)w * h * bands);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            f(x, y, buf + ((size_t)y * w + x) * bands);
    VipsImage *im =
        vips_image_new_from_memory_copy(buf, (size_t)w * h * bands, w, h, bands, VIPS_FORMAT_UCHAR);
    free(buf);
    if (!im) die_vips("new_from_memory");
    VipsImage *out;
    if (vips_copy(im, &out, "interpretation", interp, NULL)) die_vips("copy");
    g_object_unref(im);
    return out;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "test setup: cannot write %s\n", path);
        exit(2);
    }
}

static void *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *b = malloc((size_t)len);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

/* Left half red, right half blue: any rotation or mirror moves them. */
static void px_red_blue(int x, int y, unsigned char *p)
{
    (void)y;
    int left = x < 32;
    p[0] = left ? 255 : 0;
    p[1] = 0;
    p[2] = left ? 0 : 255;
}
static void px_red_blue_big(int x, int y, unsigned char *p)
{
    px_red_blue(x / 32, y, p);
}
/* Left half transparent black, right half opaque green. */
static void px_alpha(int x, int y, unsigned char *p)
{
    (void)y;
    int left = x < 32;
    p[0] = 0;
    p[1] = left ? 0 : 200;
    p[2] = 0;
    p[3] = left ? 0 : 255;
}
/* 1 x 60000: red, a green band in the middle, blue. */
static void px_strip(int x, int y, unsigned char *p)
{
    (void)x;
    int mid = y > 29000 && y < 31000;
    p[0] = !mid && y < 30000 ? 255 : 0;
    p[1] = mid ? 255 : 0;
    p[2] = !mid && y >= 30000 ? 255 : 0;
}
/* Grey + alpha: left transparent, right opaque mid grey. */
static void px_grey_alpha(int x, int y, unsigned char *p)
{
    (void)y;
    p[0] = x < 32 ? 0 : 100;
    p[1] = x < 32 ? 0 : 255;
}
static void px_grey(int x, int y, unsigned char *p)
{
    (void)y;
    p[0] = (unsigned char)(x * 4);
}
static void px_cyan_cmyk(int x, int y, unsigned char *p)
{
    (void)x;
    (void)y;
    p[0] = 255;
    p[1] = p[2] = p[3] = 0;
}
/* 200 x 100: red quarter, green half, blue quarter. */
static void px_bands(int x, int y, unsigned char *p)
{
    (void)y;
    p[0] = x < 50 ? 255 : 0;
    p[1] = x >= 50 && x < 150 ? 255 : 0;
    p[2] = x >= 150 ? 255 : 0;
}
static void px_solid(int x, int y, unsigned char *p)
{
    (void)x;
    (void)y;
    p[0] = 10;
    p[1] = 100;
    p[2] = 200;
}
static void px_noise(int x, int y, unsigned char *p)
{
    unsigned v = (unsigned)(x * 2654435761u) ^ (unsigned)(y * 40503u);
    v ^= v >> 13;
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(x + y);
}
static void px_p3ish(int x, int y, unsigned char *p)
{
    (void)x;
    (void)y;
    p[0] = 200;
    p[1] = 100;
    p[2] = 50;
}

static int free_blob(void *a, void *b)
{
    (void)b;
    g_free(a);
    return 0;
}

static uint32_t crc32_png(const unsigned char *d, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= d[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}
static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static unsigned char *put_chunk(unsigned char *p, const char *type, const void *data, uint32_t n)
{
    put32(p, n);
    memcpy(p + 4, type, 4);
    if (n) memcpy(p + 8, data, n);
    put32(p + 8 + n, crc32_png(p + 4, 4 + n));
    return p + 12 + n;
}

/* A PNG of a few dozen bytes whose IHDR declares w x h: a bomb that costs
 * nothing to make (the decoder would stop at the short IDAT, but the header
 * check must refuse it before decoding starts). */
static void write_png_header_only(const char *path, uint32_t w, uint32_t h)
{
    unsigned char f[128], ihdr[13] = {0}, *p = f;
    static const unsigned char idat[] = {0x78, 0x9c, 0x63, 0x60, 0x00, 0x00};
    memcpy(p, "\x89PNG\r\n\x1a\n", 8);
    p += 8;
    put32(ihdr, w);
    put32(ihdr + 4, h);
    ihdr[8] = 8; /* depth */
    ihdr[9] = 2; /* RGB */
    p = put_chunk(p, "IHDR", ihdr, 13);
    p = put_chunk(p, "IDAT", idat, sizeof idat);
    p = put_chunk(p, "IEND", NULL, 0);
    write_bytes(path, f, (size_t)(p - f));
}

static void rgb_at(const unsigned char *rgb, int w, int x, int y, int out[3])
{
    for (int c = 0; c < 3; c++)
        out[c] = rgb[((size_t)y * w + x) * 3 + c];
}
static int near(int a, int b, int tol)
{
    return abs(a - b) <= tol;
}

static void make_files(void)
{
    VipsImage *im;

    /* Stored landscape with orientation 6 (display = rotate 90 CW). */
    im = make(64, 32, 3, px_red_blue, VIPS_INTERPRETATION_sRGB);
    vips_image_set_int(im, VIPS_META_ORIENTATION, 6);
    if (vips_jpegsave(im, tpath("orient6.jpg"), "Q", 95, NULL)) die_vips("jpegsave orient6");
    g_object_unref(im);

    /* Big enough for JPEG shrink-on-load (the 1/8 path) to kick in. */
    im = make(2048, 1024, 3, px_red_blue_big, VIPS_INTERPRETATION_sRGB);
    vips_image_set_int(im, VIPS_META_ORIENTATION, 6);
    if (vips_jpegsave(im, tpath("orient6_big.jpg"), "Q", 90, NULL)) die_vips("jpegsave big");
    g_object_unref(im);

    im = make(64, 32, 4, px_alpha, VIPS_INTERPRETATION_sRGB);
    if (vips_pngsave(im, tpath("alpha.png"), NULL)) die_vips("pngsave alpha");
    g_object_unref(im);

    im = make(64, 16, 2, px_grey_alpha, VIPS_INTERPRETATION_B_W);
    if (vips_pngsave(im, tpath("grey_alpha.png"), NULL)) die_vips("pngsave grey_alpha");
    g_object_unref(im);

    im = make(1, 60000, 3, px_strip, VIPS_INTERPRETATION_sRGB);
    if (vips_pngsave(im, tpath("strip.png"), NULL)) die_vips("pngsave strip");
    g_object_unref(im);

    im = make(64, 16, 1, px_grey, VIPS_INTERPRETATION_B_W);
    if (vips_pngsave(im, tpath("grey.png"), NULL)) die_vips("pngsave grey");
    if (vips_jpegsave(im, tpath("grey.jpg"), "Q", 95, NULL)) die_vips("jpegsave grey");
    g_object_unref(im);

    im = make(32, 32, 4, px_cyan_cmyk, VIPS_INTERPRETATION_CMYK);
    if (vips_jpegsave(im, tpath("cmyk.jpg"), "Q", 95, NULL)) die_vips("jpegsave cmyk");
    g_object_unref(im);

    /* 16-bit RGB: (65535, 32896, 0) is (255, 128, 0) in 8 bits. */
    {
        VipsImage *b8 = make(16, 16, 3, px_solid, VIPS_INTERPRETATION_sRGB), *l, *u, *t;
        double a[3] = {0, 0, 0}, k[3] = {65535, 32896, 0};
        if (vips_linear(b8, &l, a, k, 3, NULL) || vips_cast(l, &u, VIPS_FORMAT_USHORT, NULL) ||
            vips_copy(u, &t, "interpretation", VIPS_INTERPRETATION_RGB16, NULL) ||
            vips_pngsave(t, tpath("rgb16.png"), "bitdepth", 16, NULL))
            die_vips("rgb16");
        g_object_unref(b8);
        g_object_unref(l);
        g_object_unref(u);
        g_object_unref(t);
    }

    im = make(200, 100, 3, px_bands, VIPS_INTERPRETATION_sRGB);
    if (vips_pngsave(im, tpath("bands.png"), NULL)) die_vips("pngsave bands");
    g_object_unref(im);

    im = make(200, 100, 3, px_bands, VIPS_INTERPRETATION_sRGB);
    if (vips_webpsave(im, tpath("bands.webp"), "lossless", TRUE, NULL) ||
        vips_gifsave(im, tpath("bands.gif"), NULL) || vips_tiffsave(im, tpath("bands.tif"), NULL))
        die_vips("other formats");
    /* libheif's AV1 encoder is a plugin; its absence is not our bug. */
    have_avif = vips_heifsave(im, tpath("bands.avif"), "compression",
                              VIPS_FOREIGN_HEIF_COMPRESSION_AV1, NULL) == 0;
    if (!have_avif) {
        fprintf(stderr, "  no AVIF encoder, AVIF decode not tested: %s", vips_error_buffer());
        vips_error_clear();
    }
    g_object_unref(im);

    im = make(40, 30, 3, px_solid, VIPS_INTERPRETATION_sRGB);
    if (vips_pngsave(im, tpath("solid.png"), NULL)) die_vips("pngsave solid");
    g_object_unref(im);

    /* Same numbers, once untagged and once tagged Display P3. */
    im = make(16, 16, 3, px_p3ish, VIPS_INTERPRETATION_sRGB);
    if (vips_pngsave(im, tpath("plain.png"), NULL)) die_vips("pngsave plain");
    {
        VipsImage *tagged;
        if (vips_icc_transform(im, &tagged, "p3", "input_profile", "srgb", NULL))
            die_vips("icc p3");
        /* Put the original numbers back under the P3 tag. */
        VipsImage *re;
        if (vips_copy(im, &re, NULL)) die_vips("copy");
        const void *prof;
        size_t plen;
        if (vips_image_get_blob(tagged, VIPS_META_ICC_NAME, &prof, &plen)) die_vips("icc blob");
        void *pc = g_memdup2(prof, plen);
        vips_image_set_blob(re, VIPS_META_ICC_NAME, free_blob, pc, plen);
        if (vips_pngsave(re, tpath("p3.png"), NULL)) die_vips("pngsave p3");
        g_object_unref(re);
        g_object_unref(tagged);
    }
    g_object_unref(im);

    /* A noisy photo-like JPEG, then the same file cut in half. */
    im = make(2400, 1800, 3, px_noise, VIPS_INTERPRETATION_sRGB);
    void *jpg;
    size_t n;
    if (vips_jpegsave_buffer(im, &jpg, &n, "Q", 90, NULL)) die_vips("jpegsave big noise");
    write_bytes(tpath("truncated_big.jpg"), jpg, n / 2);
    g_free(jpg);
    g_object_unref(im);

    im = make(512, 384, 3, px_noise, VIPS_INTERPRETATION_sRGB);
    if (vips_jpegsave_buffer(im, &jpg, &n, "Q", 90, NULL)) die_vips("jpegsave noise");
    write_bytes(tpath("noise.jpg"), jpg, n);
    write_bytes(tpath("truncated.jpg"), jpg, n / 2);
    /* The same JPEG with its SOF declaring 20000 x 20000. */
    unsigned char *j = jpg;
    for (size_t i = 2; i + 8 < n; i++)
        if (j[i] == 0xff && (j[i + 1] == 0xc0 || j[i + 1] == 0xc2)) {
            j[i + 5] = 20000 >> 8;
            j[i + 6] = 20000 & 255;
            j[i + 7] = 20000 >> 8;
            j[i + 8] = 20000 & 255;
            break;
        }
    write_bytes(tpath("bomb.jpg"), jpg, n);
    g_free(jpg);
    g_object_unref(im);

    write_bytes(tpath("empty.jpg"), "", 0);
    const char *text = "this is not an image, just some text in a file named .jpg\n";
    write_bytes(tpath("text.jpg"), text, strlen(text));
    write_png_header_only(tpath("bomb.png"), 20000, 20000);
}

static void test_orientation(void)
{
    unsigned char *rgb = NULL;
    int w = 0, h = 0;
    dp_image_info info;
    int rc = dp_image_load_rgb(tpath("orient6.jpg"), 0, 0, &rgb, &w, &h, &info);
    CHECK(rc == 0, "%s", dp_last_error());
    if (rc) return;
    /* Rotating 90 degrees clockwise puts the stored left (red) on top. */
    CHECK(w == 32 && h == 64, "got %dx%d", w, h);
    CHECK(info.width == 32 && info.height == 64, "info %dx%d", info.width, info.height);
    CHECK(strcmp(info.format, "jpeg") == 0, "format '%s'", info.format);
    int top[3], bottom[3];
    rgb_at(rgb, w, w / 2, 8, top);
    rgb_at(rgb, w, w / 2, h - 8, bottom);
    CHECK(top[0] > 200 && top[2] < 60, "top %d,%d,%d should be red", top[0], top[1], top[2]);
    CHECK(bottom[2] > 200 && bottom[0] < 60, "bottom %d,%d,%d should be blue", bottom[0], bottom[1],
          bottom[2]);
    free(rgb);
}

/* The same checks through the JPEG shrink-on-load path. */
static void test_orientation_big(void)
{
    dp_preprocess p = dp_preprocess_default();
    p.scale = 1.0f;
    static float t[3 * 224 * 224];
    dp_image_info info;
    int rc = dp_image_load_tensor(tpath("orient6_big.jpg"), &p, t, &info);
    CHECK(rc == 0, "%s", dp_last_error());
    CHECK(info.width == 1024 && info.height == 2048, "info %dx%d", info.width, info.height);
    int P = 224 * 224;
    CHECK(t[20 * 224 + 112] > 200 && t[2 * P + 20 * 224 + 112] < 60, "top not red");
    CHECK(t[2 * P + 200 * 224 + 112] > 200 && t[200 * 224 + 112] < 60, "bottom not blue");
    unsigned char *rgb;
    int w, h, top[3];
    rc = dp_image_load_rgb(tpath("orient6_big.jpg"), 64, 0, &rgb, &w, &h, NULL);
    CHECK(rc == 0 && w == 32 && h == 64, "%dx%d %s", w, h, dp_last_error());
    if (rc == 0) {
        rgb_at(rgb, w, 16, 4, top);
        CHECK(top[0] > 200 && top[2] < 60, "rgb top %d,%d,%d", top[0], top[1], top[2]);
        free(rgb);
    }
}

static void test_probe(void)
{
    dp_image_info info;
    CHECK(dp_image_probe(tpath("orient6.jpg"), &info) == 0, "%s", dp_last_error());
    CHECK(info.width == 32 && info.height == 64 && info.bands == 3 &&
              strcmp(info.format, "jpeg") == 0,
          "probe %dx%d %d %s", info.width, info.height, info.bands, info.format);
    /* No pixels are decoded, so a declared 20000 x 20000 is only reported. */
    CHECK(dp_image_probe(tpath("bomb.png"), &info) == 0 && info.width == 20000 &&
              strcmp(info.format, "png") == 0,
          "%s", dp_last_error());
    CHECK(dp_image_probe(tpath("text.jpg"), &info) == DP_ERR_FORMAT &&
              strstr(dp_last_error(), "text.jpg"),
          "%s", dp_last_error());
}

static void test_formats(void)
{
    const char *files[] = {"bands.webp", "bands.gif", "bands.tif", "bands.avif"};
    const char *formats[] = {"webp", "gif", "tiff", "heif"};
    for (int i = 0; i < 4 - !have_avif; i++) {
        unsigned char *rgb = NULL;
        int w, h, l[3], m[3], r[3];
        dp_image_info info;
        int rc = dp_image_load_rgb(tpath(files[i]), 0, 0, &rgb, &w, &h, &info);
        CHECK(rc == 0, "%s", dp_last_error());
        if (rc) continue;
        CHECK(w == 200 && h == 100 && strcmp(info.format, formats[i]) == 0, "%s: %dx%d '%s'",
              files[i], w, h, info.format);
        rgb_at(rgb, w, 20, 50, l);
        rgb_at(rgb, w, 100, 50, m);
        rgb_at(rgb, w, 180, 50, r);
        CHECK(l[0] > 230 && m[1] > 230 && r[2] > 230 && l[2] < 25 && r[0] < 25, "%s: colours",
              files[i]);
        free(rgb);
    }
}

static void test_alpha(void)
{
    unsigned char *rgb = NULL;
    int w, h, l[3], r[3];
    dp_image_info info;
    int rc = dp_image_load_rgb(tpath("alpha.png"), 0, 0, &rgb, &w, &h, &info);
    CHECK(rc == 0, "%s", dp_last_error());
    if (rc) return;
    CHECK(info.bands == 4, "bands %d", info.bands);
    rgb_at(rgb, w, 4, 4, l);
    rgb_at(rgb, w, w - 4, 4, r);
    CHECK(l[0] == 255 && l[1] == 255 && l[2] == 255, "transparent -> %d,%d,%d, want white", l[0],
          l[1], l[2]);
    CHECK(r[0] == 0 && r[1] == 200 && r[2] == 0, "opaque -> %d,%d,%d", r[0], r[1], r[2]);
    free(rgb);

    rc = dp_image_load_rgb(tpath("grey_alpha.png"), 0, 0, &rgb, &w, &h, &info);
    CHECK(rc == 0, "%s", dp_last_error());
    if (rc) return;
    CHECK(info.bands == 2, "bands %d", info.bands);
    rgb_at(rgb, w, 4, 4, l);
    rgb_at(rgb, w, w - 4, 4, r);
    CHECK(l[0] == 255 && l[1] == 255 && l[2] == 255, "grey transparent -> %d,%d,%d", l[0], l[1],
          l[2]);
    CHECK(r[0] == 100 && r[1] == 100 && r[2] == 100, "grey opaque -> %d,%d,%d", r[0], r[1], r[2]);
    free(rgb);
}

static void test_grey_cmyk_16bit(void)
{
    unsigned char *rgb = NULL;
    int w, h, p[3];
    dp_image_info info;
    const char *greys[] = {"grey.png", "grey.jpg"};
    for (int i = 0; i < 2; i++) {
        int rc = dp_image_load_rgb(tpath(greys[i]), 0, 0, &rgb, &w, &h, &info);
        CHECK(rc == 0, "%s", dp_last_error());
        if (rc) continue;
        CHECK(info.bands == 1, "%s bands %d", greys[i], info.bands);
        rgb_at(rgb, w, 40, 8, p); /* x*4 = 160 */
        CHECK(p[0] == p[1] && p[1] == p[2] && near(p[0], 160, 3), "%s grey -> %d,%d,%d", greys[i],
              p[0], p[1], p[2]);
        free(rgb);
    }

    int rc = dp_image_load_rgb(tpath("cmyk.jpg"), 0, 0, &rgb, &w, &h, &info);
    CHECK(rc == 0, "%s", dp_last_error());
    if (!rc) {
        CHECK(info.bands == 4, "cmyk bands %d", info.bands);
        rgb_at(rgb, w, 16, 16, p);
        CHECK(p[0] < 90 && p[1] > 120 && p[2] > 180, "cyan ink -> %d,%d,%d", p[0], p[1], p[2]);
        free(rgb);
    }

    rc = dp_image_load_rgb(tpath("rgb16.png"), 0, 0, &rgb, &w, &h, &info);
    CHECK(rc == 0, "%s", dp_last_error());
    if (!rc) {
        rgb_at(rgb, w, 8, 8, p);
        CHECK(p[0] == 255 && p[1] == 128 && p[2] == 0, "16-bit -> %d,%d,%d", p[0], p[1], p[2]);
        free(rgb);
    }
}

static void test_icc(void)
{
    unsigned char *a = NULL, *b = NULL;
    int w, h, pa[3], pb[3];
    int rc1 = dp_image_load_rgb(tpath("plain.png"), 0, 0, &a, &w, &h, NULL);
    int rc2 = dp_image_load_rgb(tpath("p3.png"), 0, 0, &b, &w, &h, NULL);
    CHECK(rc1 == 0 && rc2 == 0, "%s", dp_last_error());
    if (rc1 == 0 && rc2 == 0) {
        rgb_at(a, w, 8, 8, pa);
        rgb_at(b, w, 8, 8, pb);
        CHECK(pa[0] == 200 && pa[1] == 100 && pa[2] == 50, "untagged changed: %d,%d,%d", pa[0],
              pa[1], pa[2]);
        /* P3's primaries are wider: the same numbers are a more saturated
         * colour, so in sRGB red goes up and blue goes down. */
        CHECK(pb[0] > 205 && pb[2] < 45, "P3-tagged -> %d,%d,%d, profile not applied?", pb[0],
              pb[1], pb[2]);
    }
    free(a);
    free(b);
}

static void test_geometry(void)
{
    dp_preprocess p = dp_preprocess_default();
    p.width = 32;
    p.height = 32;
    p.scale = 1.0f;
    float t[3 * 32 * 32];
    dp_image_info info;

    p.resize = DP_RESIZE_SQUASH;
    int rc = dp_image_load_tensor(tpath("bands.png"), &p, t, &info);
    CHECK(rc == 0, "%s", dp_last_error());
    CHECK(info.width == 200 && info.height == 100, "info %dx%d", info.width, info.height);
    /* Squash keeps all three bands: red at the left, blue at the right. */
    float *R = t, *G = t + 1024, *B = t + 2048;
    CHECK(R[16 * 32 + 1] > 200 && G[16 * 32 + 1] < 50, "squash left %g,%g", R[16 * 32 + 1],
          G[16 * 32 + 1]);
    CHECK(G[16 * 32 + 16] > 200, "squash centre %g", G[16 * 32 + 16]);
    CHECK(B[16 * 32 + 30] > 200 && G[16 * 32 + 30] < 50, "squash right %g", B[16 * 32 + 30]);

    /* Crop keeps the centre 100 x 100, which is all green. */
    p.resize = DP_RESIZE_CROP;
    rc = dp_image_load_tensor(tpath("bands.png"), &p, t, NULL);
    CHECK(rc == 0, "%s", dp_last_error());
    for (int x = 0; x < 32; x += 31)
        CHECK(G[16 * 32 + x] > 220 && R[16 * 32 + x] < 30 && B[16 * 32 + x] < 30,
              "crop col %d = %g,%g,%g, want green", x, R[16 * 32 + x], G[16 * 32 + x],
              B[16 * 32 + x]);

    /* Non-square model input. */
    float t2[3 * 24 * 40];
    p.width = 40;
    p.height = 24;
    p.resize = DP_RESIZE_CROP;
    CHECK(dp_image_load_tensor(tpath("orient6.jpg"), &p, t2, NULL) == 0, "%s", dp_last_error());
    p.resize = DP_RESIZE_SQUASH;
    CHECK(dp_image_load_tensor(tpath("orient6.jpg"), &p, t2, NULL) == 0, "%s", dp_last_error());
    /* Squashed orient6: top (red) rows then bottom (blue) rows. */
    CHECK(t2[2 * 40 + 20] > 200 && t2[2 * 960 + 21 * 40 + 20] > 200, "squash of rotated image");

    /* Crop of a 1 x 60000 strip: the centre, without scaling the whole
     * strip to 224 px wide first (that would be 3 GB of pixels). */
    {
        static float ts[3 * 224 * 224];
        dp_preprocess q = dp_preprocess_default();
        q.resize = DP_RESIZE_CROP;
        q.scale = 1.0f;
        struct rusage before, after;
        getrusage(RUSAGE_SELF, &before);
        rc = dp_image_load_tensor(tpath("strip.png"), &q, ts, NULL);
        getrusage(RUSAGE_SELF, &after);
        CHECK(rc == 0, "%s", dp_last_error());
        CHECK(after.ru_maxrss - before.ru_maxrss < 200 * 1024, "strip crop grew RSS by %ld KiB",
              after.ru_maxrss - before.ru_maxrss);
        int plane = 224 * 224;
        CHECK(ts[plane + 112 * 224 + 112] > 240 && ts[112 * 224 + 112] < 15 &&
                  ts[2 * plane + 112 * 224 + 112] < 15,
              "strip centre %g,%g,%g, want green", ts[112 * 224 + 112], ts[plane + 112 * 224 + 112],
              ts[2 * plane + 112 * 224 + 112]);
        q.resize = DP_RESIZE_SQUASH; /* squash sees all three colours */
        CHECK(dp_image_load_tensor(tpath("strip.png"), &q, ts, NULL) == 0, "%s", dp_last_error());
        CHECK(ts[5 * 224 + 112] > 240 && ts[2 * plane + 218 * 224 + 112] > 240, "strip squash");
    }

    /* load_rgb keeps aspect and never upscales. */
    unsigned char *rgb;
    int w, h;
    CHECK(dp_image_load_rgb(tpath("bands.png"), 50, 0, &rgb, &w, &h, NULL) == 0, "%s",
          dp_last_error());
    CHECK(w == 50 && h == 25, "fit 200x100 in 50: %dx%d", w, h);
    free(rgb);
    CHECK(dp_image_load_rgb(tpath("bands.png"), 1000, 0, &rgb, &w, &h, NULL) == 0, "%s",
          dp_last_error());
    CHECK(w == 200 && h == 100, "no upscale: %dx%d", w, h);
    free(rgb);
}

static void test_normalisation(void)
{
    dp_preprocess p = dp_preprocess_default();
    p.width = 8;
    p.height = 8;
    p.scale = 1.0f / 255.0f;
    const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
    memcpy(p.mean, mean, sizeof mean);
    memcpy(p.std, sd, sizeof sd);
    const int rgbv[3] = {10, 100, 200};
    float t[3 * 64];
    for (int bgr = 0; bgr < 2; bgr++) {
        p.bgr = bgr;
        int rc = dp_image_load_tensor(tpath("solid.png"), &p, t, NULL);
        CHECK(rc == 0, "%s", dp_last_error());
        for (int c = 0; c < 3; c++) {
            int v = rgbv[bgr ? 2 - c : c];
            float want = ((float)v / 255.0f - mean[c]) / sd[c];
            for (int i = 0; i < 64; i++)
                if (fabsf(t[c * 64 + i] - want) > 1e-5f) {
                    CHECK(0, "bgr=%d c=%d i=%d: %g, want %g", bgr, c, i, t[c * 64 + i], want);
                    break;
                }
        }
    }
    /* Caffe style: BGR, 0..255, mean subtraction only. */
    p.bgr = 1;
    p.scale = 1.0f;
    p.mean[0] = 103.939f, p.mean[1] = 116.779f, p.mean[2] = 123.68f;
    p.std[0] = p.std[1] = p.std[2] = 1.0f;
    CHECK(dp_image_load_tensor(tpath("solid.png"), &p, t, NULL) == 0, "%s", dp_last_error());
    CHECK(fabsf(t[0] - (200 - 103.939f)) < 1e-4f && fabsf(t[128] - (10 - 123.68f)) < 1e-4f,
          "caffe %g %g", t[0], t[128]);

    /* Memory and file give the same tensor. */
    p = dp_preprocess_default();
    float *a = malloc(sizeof(float) * 3 * 224 * 224), *b = malloc(sizeof(float) * 3 * 224 * 224);
    size_t n = 0;
    void *bytes = read_bytes(tpath("noise.jpg"), &n);
    CHECK(dp_image_load_tensor(tpath("noise.jpg"), &p, a, NULL) == 0, "%s", dp_last_error());
    CHECK(dp_image_load_tensor_memory(bytes, n, "upload", &p, b, NULL) == 0, "%s", dp_last_error());
    CHECK(memcmp(a, b, sizeof(float) * 3 * 224 * 224) == 0, "file and memory tensors differ");
    free(bytes);
    free(a);
    free(b);

    /* Bad parameters are refused, not used. */
    p.std[1] = 0;
    CHECK(dp_image_load_tensor(tpath("solid.png"), &p, t, NULL) == DP_ERR_INVALID, "std 0");
    p = dp_preprocess_default();
    p.width = 0;
    CHECK(dp_image_load_tensor(tpath("solid.png"), &p, t, NULL) == DP_ERR_INVALID, "width 0");
}

static void expect_error(const char *name, int want_status, const char *want_text)
{
    dp_preprocess p = dp_preprocess_default();
    static float t[3 * 224 * 224];
    const char *path = tpath(name);
    int rc = dp_image_load_tensor(path, &p, t, NULL);
    const char *msg = dp_last_error();
    CHECK(rc < 0, "%s loaded", name);
    if (want_status)
        CHECK(rc == want_status, "%s: status %d, want %d (%s)", name, rc, want_status, msg);
    CHECK(strstr(msg, path) != NULL, "%s: message does not name the file: %s", name, msg);
    /* Only this file's name: no leftovers from other files' libvips text. */
    for (const char *q = strstr(msg, tmpdir); q; q = strstr(q + 1, tmpdir))
        CHECK(strncmp(q + strlen(tmpdir) + 1, name, strlen(name)) == 0, "%s: other file in: %s",
              name, msg);
    if (want_text)
        CHECK(strstr(msg, want_text) != NULL, "%s: '%s' not in: %s", name, want_text, msg);
    fprintf(stderr, "  %-14s -> %s\n", name, msg);

    /* And through the RGB path, which the classic featurisers use. */
    unsigned char *rgb = (unsigned char *)1;
    int w, h;
    rc = dp_image_load_rgb(path, 64, 0, &rgb, &w, &h, NULL);
    CHECK(rc < 0 && rgb == NULL, "%s: rgb path loaded", name);
    CHECK(strstr(dp_last_error(), path) != NULL, "%s: rgb message: %s", name, dp_last_error());
}

static void test_bad_input(void)
{
    expect_error("truncated.jpg", DP_ERR_FORMAT, NULL);
    expect_error("truncated_big.jpg", DP_ERR_FORMAT, NULL);
    expect_error("empty.jpg", DP_ERR_FORMAT, "empty");
    expect_error("text.jpg", DP_ERR_FORMAT, NULL);
    expect_error("bomb.png", DP_ERR_NOMEM,
                 "image is 20000x20000 (400 MP), above the limit of 100 MP");
    expect_error("bomb.jpg", DP_ERR_NOMEM, "(400 MP), above the limit of 100 MP");
    expect_error("does-not-exist.png", DP_ERR_IO, "No such file");
    expect_error("", DP_ERR_IO, "not a regular file"); /* the temp dir itself */

    /* A caller's lower limit applies to ordinary images too. */
    dp_preprocess p = dp_preprocess_default();
    p.max_pixels = 10000;
    static float t[3 * 224 * 224];
    int rc = dp_image_load_tensor(tpath("noise.jpg"), &p, t, NULL);
    CHECK(rc == DP_ERR_NOMEM && strstr(dp_last_error(), "512x384 (0.2 MP)"), "%d %s", rc,
          dp_last_error());

    /* Garbage in memory. */
    unsigned char junk[300];
    for (int i = 0; i < 300; i++)
        junk[i] = (unsigned char)(i * 7 + 3);
    dp_preprocess d = dp_preprocess_default();
    rc = dp_image_load_tensor_memory(junk, sizeof junk, "junk.bin", &d, t, NULL);
    CHECK(rc < 0 && strstr(dp_last_error(), "junk.bin"), "%d %s", rc, dp_last_error());
    rc = dp_image_load_tensor_memory(NULL, 0, NULL, &d, t, NULL);
    CHECK(rc < 0 && strstr(dp_last_error(), "<memory>"), "%d %s", rc, dp_last_error());
}

/* Several threads decoding good and bad files at once get the same answers
 * as one thread, and their errors name their own files. */
static float ref_noise[3 * 224 * 224];
static void *worker(void *arg)
{
    (void)arg;
    static _Thread_local float t[3 * 224 * 224];
    dp_preprocess p = dp_preprocess_default();
    long bad = 0;
    for (int i = 0; i < 20; i++) {
        if (dp_image_load_tensor(tpath("noise.jpg"), &p, t, NULL) != 0 ||
            memcmp(t, ref_noise, sizeof t) != 0)
            bad++;
        if (dp_image_load_tensor(tpath("truncated.jpg"), &p, t, NULL) == 0 ||
            !strstr(dp_last_error(), "truncated.jpg"))
            bad++;
    }
    return (void *)bad;
}

static void test_threads(void)
{
    dp_preprocess p = dp_preprocess_default();
    CHECK(dp_image_load_tensor(tpath("noise.jpg"), &p, ref_noise, NULL) == 0, "%s",
          dp_last_error());
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        CHECK(r == NULL, "thread %d: %ld bad results", i, (long)r);
    }
}

static void test_thumbnail_jpeg(void)
{
    void *jpg = NULL;
    size_t n = 0;
    int rc = dp_image_thumbnail_jpeg(tpath("alpha.png"), 16, 0, 0, &jpg, &n);
    CHECK(rc == 0 && n > 100, "%s", dp_last_error());
    if (rc) return;
    VipsImage *im = vips_image_new_from_buffer(jpg, n, "", NULL);
    CHECK(im && vips_image_get_width(im) == 16 && vips_image_get_height(im) == 8 &&
              vips_image_get_bands(im) == 3,
          "thumbnail is not a 16x8 RGB JPEG");
    if (im) g_object_unref(im);
    free(jpg);
}

static void rm_tmp(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') unlink(tpath(e->d_name));
    if (d) closedir(d);
    rmdir(tmpdir);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/dp_test_image_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    if (dp_image_init() != 0) {
        fprintf(stderr, "%s\n", dp_last_error());
        return 2;
    }
    make_files();
    test_orientation();
    test_probe();
    test_orientation_big();
    test_formats();
    test_alpha();
    test_grey_cmyk_16bit();
    test_icc();
    test_geometry();
    test_normalisation();
    test_bad_input();
    test_threads();
    test_thumbnail_jpeg();
    rm_tmp();
    if (failures) {
        fprintf(stderr, "test_image: %d checks failed\n", failures);
        return 1;
    }
    printf("test_image: all checks passed\n");
    return 0;
}
