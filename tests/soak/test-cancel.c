/* test-cancel.c — every long job on the shipped model stops within one step or token of a
 * cancel: tokens, segmentation (by points and by a phrase), chat, generation and editing,
 * through the cancel flag the app's engine thread and the CLI's Ctrl-C set.
 *
 * Jobs with a progress callback (chat's text pieces, diffusion's steps) are cancelled from
 * inside it at several points; none may report another piece or step afterwards. The others
 * (tokens, segmentation) are cancelled from a second thread at several fractions of an
 * uncancelled run's time, on a fresh image each time (the model caches image features).
 * Every cancelled job must return SETOK_ERR_CANCELLED, and the model must serve the next
 * job. The latency from the flag to the return is printed with the worst of all; it is
 * measured, not asserted (timings are setok bench's business).
 *
 * Usage: test-cancel MODEL_DIR IMAGE.png */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "setok/chat.h"
#include "setok/clock.h"
#include "setok/diffusion.h"
#include "setok/model.h"
#include "setok/segment.h"
#include "setok/tokens.h"

#define TRIALS 5
#define DIFFUSION_STEPS 12

static double worst_ms;
static const char *worst_job = "";

/* What one cancelled run saw. */
typedef struct watch {
    atomic_bool cancel;
    int cancel_at;       /* the callback number that sets the flag; 0: a thread sets it */
    int events;          /* callbacks so far */
    int after;           /* callbacks after the flag was set */
    double t_set;        /* when the flag was set (ms), 0 while it is not */
    double delay_ms;     /* the thread's delay */
} watch;

static void watch_reset(watch *w, int cancel_at, double delay_ms)
{
    atomic_store(&w->cancel, false);
    w->cancel_at = cancel_at;
    w->events = w->after = 0;
    w->t_set = 0;
    w->delay_ms = delay_ms;
}

static void watch_event(watch *w)
{
    w->events++;
    if (atomic_load(&w->cancel))
        w->after++;
    else if (w->cancel_at > 0 && w->events == w->cancel_at) {
        w->t_set = setok_clock_ms();
        atomic_store(&w->cancel, true);
    }
}

static void *cancel_later(void *data)
{
    watch *w = data;
    struct timespec ts = {(time_t)(w->delay_ms / 1000),
                          (long)(fmod(w->delay_ms, 1000.0) * 1e6)};
    nanosleep(&ts, NULL);
    w->t_set = setok_clock_ms();
    atomic_store(&w->cancel, true);
    return NULL;
}

/* Records one trial: the job's status and the latency from the flag to its return. */
static void record(const char *job, watch *w, setok_status st, double t_end,
                   const setok_error *err, int *cancelled)
{
    if (w->t_set == 0)
        return; /* the flag never came */
    if (st == SETOK_OK) {
        /* only a thread's flag may come after the job's last check */
        CHECK(w->cancel_at == 0, "%s: finished although cancelled at callback %d", job,
              w->cancel_at);
        return;
    }
    double ms = t_end - w->t_set;
    CHECK(st == SETOK_ERR_CANCELLED, "%s: status %s (%s), expected cancelled", job,
          setok_status_name(st), err->message);
    CHECK(w->after == 0, "%s: %d more callbacks after the cancel", job, w->after);
    printf("%-22s cancelled after %.2f ms (%s)\n", job, ms, err->message);
    (*cancelled)++;
    if (ms > worst_ms) {
        worst_ms = ms;
        worst_job = job;
    }
}

/* A copy of img with one pixel changed by k, so the model encodes it anew. */
static setok_image variant(const setok_image *img, int k)
{
    setok_image v = {0};
    setok_error err;
    if (setok_image_alloc(&v, img->width, img->height, img->channels, &err) == SETOK_OK) {
        memcpy(v.pixels, img->pixels, (size_t)img->width * img->height * img->channels);
        v.pixels[0] = (uint8_t)(v.pixels[0] + 1 + k);
    }
    return v;
}

/* Runs job(data) uncancelled, then cancelled by a thread at fractions of its time. */
typedef setok_status (*job_fn)(void *data, const setok_image *img, const atomic_bool *cancel,
                               setok_error *err);

static void threaded_trials(const char *name, job_fn job, void *data, const setok_image *img)
{
    setok_error err = {0};
    setok_status st = SETOK_OK;
    double full_ms = 0;
    for (int warm = 0; warm < 2 && st == SETOK_OK; warm++) {
        /* the first run loads the components */
        setok_image first = variant(img, 100 + warm);
        double t0 = setok_clock_ms();
        st = job(data, &first, NULL, &err);
        full_ms = setok_clock_ms() - t0;
        setok_image_free(&first);
    }
    CHECK(st == SETOK_OK, "%s: uncancelled run: %s", name, err.message);
    if (st != SETOK_OK)
        return;
    printf("%-22s runs %.1f ms uncancelled\n", name, full_ms);

    watch w;
    watch_reset(&w, 0, 0);
    atomic_store(&w.cancel, true);
    w.t_set = setok_clock_ms();
    st = job(data, img, &w.cancel, &err);
    CHECK(st == SETOK_ERR_CANCELLED, "%s: a flag set beforehand: %s", name,
          setok_status_name(st));

    int cancelled = 0;
    for (int k = 0; k < TRIALS; k++) {
        setok_image v = variant(img, k);
        watch_reset(&w, 0, full_ms * (k + 0.5) / TRIALS);
        pthread_t thread;
        pthread_create(&thread, NULL, cancel_later, &w);
        st = job(data, &v, &w.cancel, &err);
        double t_end = setok_clock_ms();
        pthread_join(thread, NULL);
        record(name, &w, st, t_end, &err, &cancelled);
        setok_image_free(&v);
    }
    printf("%-22s %d of %d trials cancelled mid-run\n", name, cancelled, TRIALS);
    st = job(data, img, NULL, &err);
    CHECK(st == SETOK_OK, "%s: a run after the cancelled ones: %s", name, err.message);
}

// ----------------------------------------------------------------------------
// the jobs

static setok_tokens_options tokens_options(const setok_tokenizer *t, const atomic_bool *cancel)
{
    setok_tokens_options o;
    setok_tokens_options_default(&o, t);
    o.refine_masks = true;
    o.cancel = cancel;
    return o;
}

static setok_status run_tokens(void *data, const setok_image *img, const atomic_bool *cancel,
                               setok_error *err)
{
    setok_tokenizer *t = data;
    setok_tokens_options o = tokens_options(t, cancel);
    setok_tokens_result r = {0};
    setok_status st = setok_tokens_run(t, img, &o, &r, err);
    setok_tokens_result_free(&r);
    return st;
}

static setok_status run_points(void *data, const setok_image *img, const atomic_bool *cancel,
                               setok_error *err)
{
    setok_tokenizer *t = data;
    setok_tokens_options o = tokens_options(t, cancel);
    setok_segment_point p = {img->width / 2, img->height / 2, true};
    setok_segment_result r = {0};
    setok_status st = setok_segment_points(t, img, &p, 1, &o, &r, err);
    setok_segment_result_free(&r);
    return st;
}

static setok_status run_phrase(void *data, const setok_image *img, const atomic_bool *cancel,
                               setok_error *err)
{
    setok_segment_result r = {0};
    setok_status st = setok_segmenter_run(data, img, "the largest shape", NULL, 0, cancel, &r,
                                          err);
    setok_segment_result_free(&r);
    return st;
}

static bool on_text(const char *text, void *user)
{
    if (text[0])
        watch_event(user);
    return true;
}

static void chat_trials(setok_model *model, const setok_image *img)
{
    setok_chat *chat = NULL;
    setok_error err = {0};
    CHECK(setok_chat_new(&chat, model, 0, &err) == SETOK_OK, "chat: %s", err.message);
    if (!chat)
        return;
    watch w;
    setok_chat_options o;
    setok_chat_options_default(&o);
    o.sampling.max_new_tokens = 64;
    o.cancel = &w.cancel;
    o.on_text = on_text;
    o.user = &w;
    setok_chat_result r = {0};
    watch_reset(&w, 0, 0);
    setok_status st = setok_chat_start(chat, img, &o, &err);
    CHECK(st == SETOK_OK, "chat: start: %s", err.message);
    st = setok_chat_ask(chat, "Describe the scene.", &o, &r, &err);
    int pieces = w.events;
    CHECK(st == SETOK_OK, "chat: uncancelled answer: %s", err.message);
    printf("%-22s answers in %d pieces uncancelled\n", "chat", pieces);

    watch_reset(&w, 0, 0);
    atomic_store(&w.cancel, true);
    st = setok_chat_ask(chat, "And then?", &o, &r, &err);
    CHECK(st == SETOK_ERR_CANCELLED && w.events == 0, "chat: a flag set beforehand: %s, %d "
          "pieces", setok_status_name(st), w.events);

    /* cancelled from the text callback at the first piece, the middle one, the last */
    int at[3] = {1, (pieces + 1) / 2, pieces}, cancelled = 0;
    for (int k = 0; k < 3; k++) {
        if (at[k] < 1 || (k > 0 && at[k] == at[k - 1]))
            continue;
        setok_chat_restart(chat, &o);
        watch_reset(&w, at[k], 0);
        st = setok_chat_ask(chat, "Describe the scene.", &o, &r, &err);
        double t_end = setok_clock_ms();
        char name[32];
        snprintf(name, sizeof name, "chat at piece %d", at[k]);
        if (w.t_set == 0) {
            printf("%-22s the answer ended after %d pieces\n", name, w.events);
            continue;
        }
        record(name, &w, st, t_end, &err, &cancelled);
    }
    printf("%-22s %d answers cancelled mid-stream\n", "chat", cancelled);
    /* the conversation is still usable */
    watch_reset(&w, 0, 0);
    st = setok_chat_ask(chat, "What colour is the largest shape?", &o, &r, &err);
    CHECK(st == SETOK_OK, "chat: a question after the cancelled ones: %s", err.message);
    setok_chat_result_free(&r);
    setok_chat_free(chat);
}

static void on_step(int step, int total, void *user)
{
    (void)step, (void)total;
    watch_event(user);
}

static void diffusion_trials(setok_model *model, const setok_image *img)
{
    setok_diffusion *d = NULL;
    setok_error err = {0};
    if (!setok_model_can(model, SETOK_CAP_GENERATE)) {
        printf("skip generate and edit: %s\n", setok_model_why_not(model, SETOK_CAP_GENERATE));
        return;
    }
    CHECK(setok_diffusion_new(&d, model, &err) == SETOK_OK, "diffusion: %s", err.message);
    if (!d)
        return;
    setok_image mask = {0};
    CHECK(setok_image_alloc(&mask, img->width, img->height, 1, &err) == SETOK_OK, "mask");
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++)
            mask.pixels[y * img->width + x] = x < img->width / 2 && y < img->height / 2 ? 255 : 0;
    watch w;
    for (int edit = 0; edit < 2; edit++) {
        const char *job = edit ? "edit" : "generate";
        /* an edit runs the last steps only (its strength); the uncancelled run counts them */
        int at[3] = {0}, cancelled = 0;
        for (int k = -1; k < 3; k++) {
            setok_diffusion_options o;
            setok_diffusion_options_default(&o);
            o.prompt = edit ? "make it blue" : "a red circle on a green background";
            o.steps = DIFFUSION_STEPS;
            o.seed = (uint64_t)k + 7;
            o.on_step = on_step;
            o.user = &w;
            o.cancel = &w.cancel;
            watch_reset(&w, k < 0 ? 0 : at[k], 0);
            setok_image out = {0};
            double t0 = setok_clock_ms();
            setok_status st = edit ? setok_diffusion_edit(d, img, &mask, &o, &out, &err)
                                   : setok_diffusion_generate(d, &o, &out, &err);
            double t_end = setok_clock_ms();
            setok_image_free(&out);
            if (k < 0) {
                CHECK(st == SETOK_OK && w.events >= 3, "%s: uncancelled: %s, %d steps", job,
                      st == SETOK_OK ? "" : err.message, w.events);
                printf("%-22s %d steps in %.1f ms uncancelled\n", job, w.events, t_end - t0);
                at[0] = 1, at[1] = (w.events + 1) / 2, at[2] = w.events - 1;
                continue;
            }
            char name[32];
            snprintf(name, sizeof name, "%s at step %d", job, at[k]);
            record(name, &w, st, t_end, &err, &cancelled);
        }
        CHECK(cancelled == 3, "%s: %d of 3 runs cancelled", job, cancelled);
    }
    setok_image_free(&mask);
    setok_diffusion_free(d);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test-cancel MODEL_DIR IMAGE.png\n");
        return 2;
    }
    setok_error err = {0};
    setok_image img = {0};
    setok_model *model = NULL;
    setok_model_options mo;
    setok_model_options_default(&mo);
    mo.device = "cpu";
    if (setok_image_load(&img, argv[2], 0, &err) != SETOK_OK ||
        setok_model_open(&model, argv[1], &mo, &err) != SETOK_OK) {
        printf("FAIL %s\n", err.message);
        return 1;
    }
    printf("model %s on %s\n", argv[1], setok_model_device(model));
    setok_tokenizer *t = NULL;
    CHECK(setok_tokenizer_new(&t, model, &err) == SETOK_OK, "tokenizer: %s", err.message);
    if (t) {
        threaded_trials("tokens", run_tokens, t, &img);
        threaded_trials("segment by points", run_points, t, &img);
    }
    setok_segmenter *sg = NULL;
    if (setok_model_can(model, SETOK_CAP_SEGMENT_PHRASE) &&
        setok_segmenter_new(&sg, model, &err) == SETOK_OK)
        threaded_trials("segment by a phrase", run_phrase, sg, &img);
    else
        printf("skip segment by a phrase: %s\n", err.message[0] ? err.message : "no decoder");
    if (setok_model_can(model, SETOK_CAP_CHAT))
        chat_trials(model, &img);
    diffusion_trials(model, &img);

    printf("worst cancel latency: %.1f ms (%s)\n", worst_ms, worst_job);
    setok_segmenter_free(sg);
    setok_tokenizer_free(t);
    setok_model_free(model);
    setok_image_free(&img);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
