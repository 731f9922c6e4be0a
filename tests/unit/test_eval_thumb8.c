/* The 8 x 8 thumbnail baseline ("thumb8"): deterministic on a real sample
 * image (file and memory paths, the embedder), unit norm, planar RGB; a
 * solid colour, a transparent image (flattened onto white) and a half
 * black / half white image give the values worked out by hand; a file that
 * is not an image is refused by name. */
#include "doppel/embed.h"
#include "embed/classic.h"
#include "testutil.h"

#include <dirent.h>
#include <vips/vips.h>

static void save_rgba(const char *name, int w, int h, const unsigned char *px, int bands)
{
    VipsImage *im =
        vips_image_new_from_memory_copy(px, (size_t)w * h * bands, w, h, bands, VIPS_FORMAT_UCHAR);
    if (!im || vips_pngsave(im, tpath(name), NULL)) {
        fprintf(stderr, "test setup: %s: %s\n", name, vips_error_buffer());
        exit(2);
    }
    g_object_unref(im);
}

static double norm(const float *v)
{
    double s = 0;
    for (int i = 0; i < DP_THUMB_DIM; i++)
        s += (double)v[i] * v[i];
    return sqrt(s);
}

/* The first PNG under samples/, found at run time (the folder is built by
 * tools/make_samples.sh). */
static int sample_image(char *out, size_t n)
{
    const char *src = getenv("DP_SOURCE_DIR");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/samples/animals-and-nature", src ? src : ".");
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    char best[256] = "";
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".png") && (!*best || strcmp(e->d_name, best) < 0))
            snprintf(best, sizeof best, "%s", e->d_name);
    closedir(d);
    if (!*best) return -1;
    snprintf(out, n, "%s/%s", dir, best);
    return 0;
}

int main(void)
{
    tu_begin("thumb8");
    if (VIPS_INIT("test")) return 2;
    float a[DP_THUMB_DIM], b[DP_THUMB_DIM];

    char img[1024];
    if (sample_image(img, sizeof img)) {
        fprintf(stderr, "no sample images (run tools/make_samples.sh)\n");
        return 1;
    }
    OK(dp_classic_thumb(img, 0, a));
    OK(dp_classic_thumb(img, 0, b));
    CHECK(!memcmp(a, b, sizeof a), "two runs differ on %s", img);
    CHECK(fabs(norm(a) - 1) < 1e-6, "norm %.8f", norm(a));
    float lo = 1, hi = 0;
    for (int i = 0; i < DP_THUMB_DIM; i++) {
        lo = fminf(lo, a[i]);
        hi = fmaxf(hi, a[i]);
    }
    CHECK(lo >= 0 && hi > lo, "values in [%g, %g]", lo, hi);
    FILE *f = fopen(img, "rb");
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)sz);
    if (fread(buf, 1, (size_t)sz, f) != (size_t)sz) return 2;
    fclose(f);
    OK(dp_classic_thumb_memory(buf, (size_t)sz, "mem.png", 0, b));
    CHECK(!memcmp(a, b, sizeof a), "memory path differs");
    free(buf);
    dp_embedder_params ep = dp_embedder_default_params();
    ep.model = "thumb8";
    dp_embedder *e = NULL;
    OK(dp_embedder_open(&ep, &e));
    if (e) {
        dp_embedder_info info;
        dp_embedder_describe(e, &info);
        CHECK(info.dim == DP_THUMB_DIM && !strcmp(info.name, "thumb8"), "dim %d name %s", info.dim,
              info.name);
        OK(dp_embed_file(e, img, b));
        CHECK(!memcmp(a, b, sizeof a), "embedder differs from the featuriser");
        dp_embedder_free(e);
    }

    /* Solid red: R plane constant, G and B zero; 64 values of r -> 1/8. */
    static unsigned char px[64 * 48 * 4];
    for (int i = 0; i < 64 * 48; i++) {
        px[3 * i] = 200;
        px[3 * i + 1] = px[3 * i + 2] = 0;
    }
    save_rgba("red.png", 64, 48, px, 3);
    OK(dp_classic_thumb(tpath("red.png"), 0, a));
    for (int i = 0; i < 64; i++)
        CHECK(fabsf(a[i] - 0.125f) < 1e-4 && a[64 + i] == 0 && a[128 + i] == 0,
              "red pixel %d: %g %g %g", i, a[i], a[64 + i], a[128 + i]);
    /* Fully transparent: flattened onto white, every value 1/sqrt(192). */
    memset(px, 0, sizeof px);
    save_rgba("clear.png", 32, 32, px, 4);
    OK(dp_classic_thumb(tpath("clear.png"), 0, a));
    for (int i = 0; i < DP_THUMB_DIM; i++)
        CHECK(fabsf(a[i] - 1 / sqrtf(192)) < 1e-4, "transparent %d: %g", i, a[i]);
    /* Left half black, right half white, 64 x 64: thumbnail columns 0-2
     * black, 5-7 white (3 and 4 may blend), rows alike. */
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++)
            memset(px + 3 * (y * 64 + x), x < 32 ? 0 : 255, 3);
    save_rgba("half.png", 64, 64, px, 3);
    OK(dp_classic_thumb(tpath("half.png"), 0, a));
    float white = a[7]; /* 1 / sqrt(3 * 8 * 4) if columns 4-7 are all white */
    CHECK(fabsf(white - 1 / sqrtf(96)) < 0.02f, "white column %g", white);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 8; y++) {
            const float *row = a + c * 64 + y * 8;
            CHECK(row[0] < 1e-3f && row[1] < 1e-3f && row[2] < 1e-3f, "black columns %d,%d", c, y);
            CHECK(fabsf(row[5] - white) < 1e-3f && fabsf(row[6] - white) < 1e-3f,
                  "white columns %d,%d", c, y);
        }
    /* Not an image. */
    FILE *t = fopen(tpath("note.png"), "w");
    fputs("not a picture", t);
    fclose(t);
    CHECK(dp_classic_thumb(tpath("note.png"), 0, a) != 0, "text decoded");
    CHECK(strstr(dp_last_error(), "note.png"), "message: %s", dp_last_error());
    return tu_end("test_eval_thumb8");
}
