/* The decode/inference pipeline behind dp_embed_files().
 *
 * Two chunk buffers alternate: workers fill one while the caller's thread
 * runs the model on the other. The only shared state is a job descriptor
 * guarded by one mutex; workers claim items with an atomic counter, so an
 * expensive image never holds up the rest of its chunk on another worker. */
#include "doppel/embed.h"
#include "util/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ERR_LEN 512

typedef struct item {
    int status;
    char error[ERR_LEN];
    dp_image_info info;
} item;

typedef struct chunk {
    size_t first, count; /* range of paths */
    float *slots;        /* count * slot_floats */
    item *items;
} chunk;

typedef struct pipeline {
    const dp_embedder *e;
    const char *const *paths;
    size_t slot_floats;

    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    chunk *job;         /* chunk being decoded, NULL when idle */
    uint64_t job_seq;   /* bumps for each new job so workers notice it */
    atomic_size_t next; /* next item of job to claim */
    size_t done;        /* items of job finished */
    int active;         /* workers inside drain(job): the job's buffers stay
                         * untouched by the caller until this is 0 */
    bool quit;
    int nice; /* added to the decode workers' nice value */
} pipeline;

dp_pipeline_params dp_pipeline_default_params(void)
{
    dp_pipeline_params p = {0};
    return p;
}

static void decode_item(pipeline *pl, chunk *c, size_t i)
{
    item *it = &c->items[i];
    const char *path = pl->paths[c->first + i];
    memset(&it->info, 0, sizeof it->info);
    it->status = dp_embedder_prepare(pl->e, path, c->slots + i * pl->slot_floats, &it->info);
    if (it->status) snprintf(it->error, ERR_LEN, "%s", dp_last_error());
}

/* Claim and decode items of the current job until none are left. */
static void drain(pipeline *pl, chunk *c)
{
    size_t i;
    while ((i = atomic_fetch_add(&pl->next, 1)) < c->count) {
        decode_item(pl, c, i);
        pthread_mutex_lock(&pl->mu);
        if (++pl->done == c->count) pthread_cond_broadcast(&pl->done_cv);
        pthread_mutex_unlock(&pl->mu);
    }
}

static void *worker(void *arg)
{
    pipeline *pl = arg;
    /* Decoding is meant to fill the cores' idle moments around inference, not
     * to take turns with it: a lower priority keeps the model's threads at
     * full speed, and when decoding falls behind, the inference thread helps
     * (wait_job) rather than idling. */
    if (pl->nice) setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), pl->nice);
    uint64_t seen = 0;
    pthread_mutex_lock(&pl->mu);
    for (;;) {
        while (!pl->quit && (pl->job == NULL || pl->job_seq == seen))
            pthread_cond_wait(&pl->work_cv, &pl->mu);
        if (pl->quit) break;
        seen = pl->job_seq;
        chunk *c = pl->job;
        pl->active++;
        pthread_mutex_unlock(&pl->mu);
        drain(pl, c);
        pthread_mutex_lock(&pl->mu);
        if (--pl->active == 0) pthread_cond_broadcast(&pl->done_cv);
    }
    pthread_mutex_unlock(&pl->mu);
    return NULL;
}

static void start_job(pipeline *pl, chunk *c)
{
    pthread_mutex_lock(&pl->mu);
    pl->job = c;
    pl->job_seq++;
    pl->done = 0;
    atomic_store(&pl->next, 0);
    pthread_cond_broadcast(&pl->work_cv);
    pthread_mutex_unlock(&pl->mu);
}

static void wait_job(pipeline *pl, chunk *c)
{
    drain(pl, c); /* the caller helps instead of idling */
    pthread_mutex_lock(&pl->mu);
    while (pl->done < c->count || pl->active > 0)
        pthread_cond_wait(&pl->done_cv, &pl->mu);
    pl->job = NULL;
    pthread_mutex_unlock(&pl->mu);
}

int dp_embed_files(dp_embedder *e, const char *const *paths, size_t n, const dp_pipeline_params *p,
                   dp_embed_sink sink, void *sink_data)
{
    dp_pipeline_params defaults = dp_pipeline_default_params();
    if (!p) p = &defaults;
    if (n == 0) return 0;
    dp_embedder_info ei;
    dp_embedder_describe(e, &ei);
    size_t batch = p->batch > 0 ? (size_t)p->batch : 16;
    int nthreads = p->decode_threads > 0 ? p->decode_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (nthreads < 1) nthreads = 1;
    if (nthreads > 64) nthreads = 64;

    const char *nv = getenv("DOPPEL_DECODE_NICE");
    pipeline pl = {
        .e = e, .paths = paths, .slot_floats = ei.slot_floats, .nice = nv ? atoi(nv) : 5};
    pthread_mutex_init(&pl.mu, NULL);
    pthread_cond_init(&pl.work_cv, NULL);
    pthread_cond_init(&pl.done_cv, NULL);
    chunk ch[2] = {{0}};
    float *vecs = NULL;
    pthread_t *threads = calloc((size_t)nthreads, sizeof *threads);
    int started = 0, rc = 0;
    size_t floats;
    if (!threads || !dp_mul_ok(batch, ei.slot_floats, &floats)) {
        rc = dp_set_error(DP_ERR_NOMEM, "dp_embed_files: out of memory");
        goto done;
    }
    vecs = malloc(batch * (size_t)ei.dim * sizeof *vecs);
    for (int k = 0; k < 2; k++) {
        ch[k].slots = malloc(floats * sizeof(float));
        ch[k].items = calloc(batch, sizeof(item));
        if (!ch[k].slots || !ch[k].items || !vecs) {
            rc = dp_set_error(DP_ERR_NOMEM, "dp_embed_files: out of memory for %zu-image batches",
                              batch);
            goto done;
        }
    }
    /* The calling thread decodes too (wait_job), so start one fewer worker. */
    for (; started < nthreads - 1; started++)
        if (pthread_create(&threads[started], NULL, worker, &pl) != 0) break;

    size_t nchunks = (n + batch - 1) / batch;
    ch[0].first = 0;
    ch[0].count = n < batch ? n : batch;
    start_job(&pl, &ch[0]);
    wait_job(&pl, &ch[0]);
    for (size_t k = 0; k < nchunks && !rc; k++) {
        chunk *cur = &ch[k % 2], *nxt = &ch[(k + 1) % 2];
        if (k + 1 < nchunks) {
            nxt->first = (k + 1) * batch;
            nxt->count = n - nxt->first < batch ? n - nxt->first : batch;
            start_job(&pl, nxt);
        }
        /* Pack the decoded slots so a failed image leaves no hole. */
        size_t ok = 0;
        for (size_t i = 0; i < cur->count; i++) {
            if (cur->items[i].status) continue;
            if (ok != i)
                memmove(cur->slots + ok * ei.slot_floats, cur->slots + i * ei.slot_floats,
                        ei.slot_floats * sizeof(float));
            ok++;
        }
        if (ok) rc = dp_embedder_run(e, cur->slots, ok, vecs);
        for (size_t i = 0, j = 0; i < cur->count && !rc; i++) {
            item *it = &cur->items[i];
            dp_embed_result r = {.index = cur->first + i,
                                 .path = paths[cur->first + i],
                                 .status = it->status,
                                 .error = it->status ? it->error : NULL,
                                 .vec = it->status ? NULL : vecs + (j++) * (size_t)ei.dim,
                                 .info = it->info};
            if (sink && sink(&r, sink_data))
                rc = dp_set_error(DP_ERR_CANCELLED, "dp_embed_files: cancelled");
        }
        if (k + 1 < nchunks) wait_job(&pl, nxt);
        if (!rc && p->progress && p->progress(cur->first + cur->count, n, p->user_data))
            rc = dp_set_error(DP_ERR_CANCELLED, "dp_embed_files: cancelled");
    }

done:
    pthread_mutex_lock(&pl.mu);
    pl.quit = true;
    pthread_cond_broadcast(&pl.work_cv);
    pthread_mutex_unlock(&pl.mu);
    for (int t = 0; t < started; t++)
        pthread_join(threads[t], NULL);
    for (int k = 0; k < 2; k++) {
        free(ch[k].slots);
        free(ch[k].items);
    }
    free(vecs);
    free(threads);
    pthread_mutex_destroy(&pl.mu);
    pthread_cond_destroy(&pl.work_cv);
    pthread_cond_destroy(&pl.done_cv);
    return rc;
}
