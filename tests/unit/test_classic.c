/* Classic featurisers on images made at test time: the pHash survives
 * resize + JPEG recompression and separates different scenes, its DCT
 * agrees with a naive full 2-D DCT, and the HSV histogram puts pure colours
 * in the right bins and keeps a recompressed copy close. */
#include "testutil.h" /* first: it defines _GNU_SOURCE */

#include "embed/classic.h"

#include "doppel/image.h"

#include <vips/vips.h>

static void die_vips(const char *what)
{
    fprintf(stderr, "test setup: %s: %s\n", what, vips_error_buffer());
    exit(2);
}

/* A photo-like scene: a diagonal gradient sky, a few discs and boxes, and
 * pixel noise, all from a seed. */
typedef struct scene {
    int w, h;
    unsigned seed;
} scene;

static unsigned rnd(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static VipsImage *render(const scene *sc)
{
    unsigned s = sc->seed;
    int w = sc->w, h = sc->h;
    unsigned char *px = malloc((size_t)w * h * 3);
    int top[3], bot[3];
    for (int c = 0; c < 3; c++)
        top[c] = (int)(rnd(&s) % 256), bot[c] = (int)(rnd(&s) % 256);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double t = (double)(x + y) / (w + h);
            for (int c = 0; c < 3; c++)
                px[((size_t)y * w + x) * 3 + c] = (unsigned char)(top[c] * (1 - t) + bot[c] * t);
        }
    for (int k = 0; k < 6; k++) {
        int cx = (int)(rnd(&s) % (unsigned)w), cy = (int)(rnd(&s) % (unsigned)h);
        int r = w / 12 + (int)(rnd(&s) % (unsigned)(w / 5));
        int col[3] = {(int)(rnd(&s) % 256), (int)(rnd(&s) % 256), (int)(rnd(&s) % 256)};
        int box = k & 1;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int dx = x - cx, dy = y - cy;
                int in = box ? (abs(dx) < r && abs(dy) < r / 2) : (dx * dx + dy * dy < r * r);
                if (in)
                    for (int c = 0; c < 3; c++)
                        px[((size_t)y * w + x) * 3 + c] = (unsigned char)col[c];
            }
    }
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        int v = px[i] + (int)(rnd(&s) % 17) - 8;
        px[i] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    VipsImage *im =
        vips_image_new_from_memory_copy(px, (size_t)w * h * 3, w, h, 3, VIPS_FORMAT_UCHAR);
    free(px);
    if (!im) die_vips("new_from_memory");
    return im;
}

static void save_scene(const scene *sc, const char *name)
{
    VipsImage *im = render(sc);
    if (vips_pngsave(im, tpath(name), NULL)) die_vips("pngsave");
    g_object_unref(im);
}

/* name -> resized to `scale` and saved as JPEG at quality q. */
static void degrade(const char *from, const char *to, double scale, int q)
{
    VipsImage *in = vips_image_new_from_file(tpath(from), NULL), *out;
    if (!in || vips_resize(in, &out, scale, NULL)) die_vips("resize");
    if (vips_jpegsave(out, tpath(to), "Q", q, NULL)) die_vips("jpegsave");
    g_object_unref(in);
    g_object_unref(out);
}

static void solid(const char *name, int r, int g, int b)
{
    unsigned char px[3 * 16 * 16];
    for (int i = 0; i < 256; i++)
        px[3 * i] = (unsigned char)r, px[3 * i + 1] = (unsigned char)g,
               px[3 * i + 2] = (unsigned char)b;
    VipsImage *im = vips_image_new_from_memory(px, sizeof px, 16, 16, 3, VIPS_FORMAT_UCHAR);
    if (!im || vips_pngsave(im, tpath(name), NULL)) die_vips("solid");
    g_object_unref(im);
}

static uint64_t phash_of(const char *name)
{
    uint64_t h = 0;
    int rc = dp_classic_phash(tpath(name), 0, &h);
    CHECK(rc == 0, "%s: %s", name, dp_last_error());
    return h;
}

static void test_phash_robustness(void)
{
    scene a = {480, 360, 1}, b = {480, 360, 2}, c = {480, 360, 3};
    save_scene(&a, "a.png");
    save_scene(&b, "b.png");
    save_scene(&c, "c.png");
    degrade("a.png", "a_small.jpg", 0.5, 75);
    degrade("a.png", "a_tiny.jpg", 0.3, 60);
    degrade("b.png", "b_small.jpg", 0.6, 80);

    uint64_t ha = phash_of("a.png"), hb = phash_of("b.png"), hc = phash_of("c.png");
    uint64_t ha2 = phash_of("a_small.jpg"), ha3 = phash_of("a_tiny.jpg");
    uint64_t hb2 = phash_of("b_small.jpg");
    int d_small = dp_classic_hamming(ha, ha2), d_tiny = dp_classic_hamming(ha, ha3);
    int d_b = dp_classic_hamming(hb, hb2);
    int d_ab = dp_classic_hamming(ha, hb), d_ac = dp_classic_hamming(ha, hc),
        d_bc = dp_classic_hamming(hb, hc);
    fprintf(stderr,
            "  phash: a vs a_small %d, a vs a_tiny %d, b vs b_small %d; "
            "a-b %d, a-c %d, b-c %d bits\n",
            d_small, d_tiny, d_b, d_ab, d_ac, d_bc);
    CHECK(d_small <= 6, "resize 0.5 + JPEG q75 moved %d bits", d_small);
    CHECK(d_tiny <= 6, "resize 0.3 + JPEG q60 moved %d bits", d_tiny);
    CHECK(d_b <= 6, "resize 0.6 + JPEG q80 moved %d bits", d_b);
    CHECK(d_ab >= 16 && d_ac >= 16 && d_bc >= 16, "different scenes only %d/%d/%d bits apart", d_ab,
          d_ac, d_bc);
    /* Balanced: the median threshold sets about half of the bits. */
    int ones = __builtin_popcountll(ha);
    CHECK(ones >= 28 && ones <= 36, "%d bits set", ones);

    /* Memory and file agree. */
    FILE *f = fopen(tpath("a_small.jpg"), "rb");
    static unsigned char buf[1 << 20];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    uint64_t hm = 0;
    CHECK(dp_classic_phash_memory(buf, n, "upload.jpg", 0, &hm) == 0 && hm == ha2, "memory %s",
          dp_last_error());

    float v1[64], v2[64];
    dp_classic_phash_to_vec(ha, v1);
    dp_classic_phash_to_vec(hb, v2);
    double l2 = 0, norm = 0;
    for (int i = 0; i < 64; i++)
        l2 += (v1[i] - v2[i]) * (v1[i] - v2[i]), norm += v1[i] * v1[i];
    CHECK(fabs(l2 - d_ab / 16.0) < 1e-6 && fabs(norm - 1.0) < 1e-6, "vec l2 %g norm %g", l2, norm);
}

/* Oracle: the textbook full 32 x 32 DCT-II, then rows/cols 1..8. */
static uint64_t phash_naive(const float *g)
{
    static double d[32][32];
    for (int v = 0; v < 32; v++)
        for (int u = 0; u < 32; u++) {
            double s = 0;
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++)
                    s += g[y * 32 + x] * cos(M_PI * (2 * x + 1) * u / 64.0) *
                         cos(M_PI * (2 * y + 1) * v / 64.0);
            d[v][u] = s;
        }
    double c[64], sorted[64];
    for (int v = 0; v < 8; v++)
        for (int u = 0; u < 8; u++)
            c[v * 8 + u] = d[v + 1][u + 1];
    memcpy(sorted, c, sizeof c);
    for (int i = 1; i < 64; i++)
        for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            double t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    double med = 0.5 * (sorted[31] + sorted[32]);
    uint64_t h = 0;
    for (int i = 0; i < 64; i++)
        if (c[i] > med) h |= (uint64_t)1 << i;
    return h;
}

static void test_phash_dct(void)
{
    unsigned s = 7;
    float g[1024];
    for (int trial = 0; trial < 5; trial++) {
        for (int i = 0; i < 1024; i++)
            g[i] = (float)(rnd(&s) % 256);
        uint64_t a = dp_classic_phash_grey32(g), b = phash_naive(g);
        /* Float vs double rounding may flip a coefficient sitting on the
         * median; anything more is a bug. */
        CHECK(dp_classic_hamming(a, b) <= 1, "trial %d: %016llx vs naive %016llx", trial,
              (unsigned long long)a, (unsigned long long)b);
    }
    /* Bit layout: a horizontal cosine of frequency 3 makes coefficient
     * (v=0, u=3) big, which is excluded, so use a 2-D one: (v=2, u=3) is
     * bit (2-1)*8 + (3-1) = 10, the largest coefficient, so it is set. */
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++)
            g[y * 32 + x] = (float)(100 * cos(M_PI * (2 * x + 1) * 3 / 64.0) *
                                    cos(M_PI * (2 * y + 1) * 2 / 64.0));
    CHECK((dp_classic_phash_grey32(g) >> 10) & 1, "bit 10 not set");
}

static double dot(const float *a, const float *b)
{
    double s = 0;
    for (int i = 0; i < DP_HIST_DIM; i++)
        s += (double)a[i] * b[i];
    return s;
}

static void test_hist(void)
{
    static float red[DP_HIST_DIM], blue[DP_HIST_DIM], green[DP_HIST_DIM], grey[DP_HIST_DIM],
        darkred[DP_HIST_DIM], ha[DP_HIST_DIM], ha2[DP_HIST_DIM], hb[DP_HIST_DIM];
    solid("red.png", 255, 0, 0);
    solid("red_wrap.png", 255, 0, 20); /* hue just below 360 degrees */
    solid("blue.png", 0, 0, 255);
    solid("green.png", 0, 255, 0);
    solid("grey.png", 128, 128, 128);
    OK(dp_classic_hist(tpath("red.png"), 0, red));
    OK(dp_classic_hist(tpath("red_wrap.png"), 0, darkred));
    OK(dp_classic_hist(tpath("blue.png"), 0, blue));
    OK(dp_classic_hist(tpath("green.png"), 0, green));
    OK(dp_classic_hist(tpath("grey.png"), 0, grey));
    /* index = (hue * 8 + sat) * 8 + value; bins of 45 degrees centred on
     * 0, 45, 90, ...: red -> 0, green (120) -> 3, blue (240) -> 5. */
    CHECK(fabsf(red[(0 * 8 + 7) * 8 + 7] - 1.0f) < 1e-6f, "red bin %g", red[63]);
    CHECK(fabsf(darkred[(0 * 8 + 7) * 8 + 7] - 1.0f) < 1e-6f, "hue 355 not with red");
    CHECK(fabsf(green[(3 * 8 + 7) * 8 + 7] - 1.0f) < 1e-6f, "green bin");
    CHECK(fabsf(blue[(5 * 8 + 7) * 8 + 7] - 1.0f) < 1e-6f, "blue bin");
    CHECK(fabsf(grey[(0 * 8 + 0) * 8 + 4] - 1.0f) < 1e-6f, "grey bin");
    CHECK(dot(red, blue) < 0.01 && dot(red, green) < 0.01, "red/blue %g", dot(red, blue));

    /* Scenes: a recompressed copy stays close, another scene is further. */
    OK(dp_classic_hist(tpath("a.png"), 0, ha));
    OK(dp_classic_hist(tpath("a_small.jpg"), 0, ha2));
    OK(dp_classic_hist(tpath("b.png"), 0, hb));
    fprintf(stderr, "  hist: a.a_small %.3f, a.b %.3f, red.blue %.3f\n", dot(ha, ha2), dot(ha, hb),
            dot(red, blue));
    CHECK(fabs(dot(ha, ha) - 1.0) < 1e-5, "not unit: %g", dot(ha, ha));
    CHECK(dot(ha, ha2) > 0.9, "recompressed copy %g", dot(ha, ha2));
    CHECK(dot(ha, hb) < dot(ha, ha2) - 0.1, "other scene %g vs copy %g", dot(ha, hb), dot(ha, ha2));

    /* Bad input propagates with the file name. */
    FILE *f = fopen(tpath("junk.png"), "wb");
    fputs("not a png", f);
    fclose(f);
    CHECK(dp_classic_hist(tpath("junk.png"), 0, ha) < 0 && strstr(dp_last_error(), "junk.png"),
          "%s", dp_last_error());
    uint64_t h;
    CHECK(dp_classic_phash(tpath("junk.png"), 0, &h) < 0 && strstr(dp_last_error(), "junk.png"),
          "%s", dp_last_error());
}

int main(void)
{
    tu_begin("test_classic");
    if (dp_image_init() != 0) {
        fprintf(stderr, "setup failed: %s\n", dp_last_error());
        return 2;
    }
    test_phash_dct();
    test_phash_robustness();
    test_hist();
    return tu_end("test_classic");
}
