/* segment.c — point segmentation on SeTok tokens (see segment.h). */
#include "setok/segment.h"

#include <stdlib.h>
#include <string.h>

void setok_segment_result_free(setok_segment_result *r)
{
    if (!r)
        return;
    setok_image_free(&r->mask);
    free(r->tokens);
    setok_tokens_result_free(&r->tokens_result);
    for (int i = 0; r->masks && i < r->n_masks; i++)
        setok_image_free(&r->masks[i]);
    free(r->masks);
    free(r->scores);
    memset(r, 0, sizeof *r);
}

setok_status setok_segment_points(setok_tokenizer *t, const setok_image *image,
                                  const setok_segment_point *points, int n,
                                  const setok_tokens_options *opts, setok_segment_result *r,
                                  setok_error *err)
{
    if (!t || !image || !points || n < 1 || !r)
        return setok_fail(err, SETOK_ERR_INPUT, "segment: no image or no points");
    bool any_fg = false;
    for (int i = 0; i < n; i++) {
        const setok_segment_point *p = &points[i];
        if (p->x < 0 || p->y < 0 || p->x >= image->width || p->y >= image->height)
            return setok_fail(err, SETOK_ERR_INPUT, "segment: point %d,%d is outside the %dx%d "
                              "image", p->x, p->y, image->width, image->height);
        any_fg |= p->foreground;
    }
    if (!any_fg)
        return setok_fail(err, SETOK_ERR_INPUT, "segment: give at least one foreground point");
    setok_tokens_options o;
    if (opts) {
        o = *opts;
    } else {
        setok_tokens_options_default(&o, t);
        o.refine_masks = true;
    }
    setok_status st = setok_tokens_run(t, image, &o, &r->tokens_result, err);
    if (st != SETOK_OK)
        return st;
    const setok_tokens_result *tr = &r->tokens_result;
    int n_tok = tr->clusters.n_tokens;
    /* selected[k]: 1 chosen by a foreground point, -1 removed by a background one */
    signed char *selected = calloc((size_t)(n_tok > 0 ? n_tok : 1), 1);
    free(r->tokens);
    r->tokens = malloc((size_t)(n_tok > 0 ? n_tok : 1) * sizeof *r->tokens);
    if (!selected || !r->tokens) {
        free(selected);
        return setok_fail(err, SETOK_ERR_NOMEM, "segment: out of memory");
    }
    for (int i = 0; i < n && st == SETOK_OK; i++) {
        int32_t label = tr->pixel_labels[(size_t)points[i].y * tr->width + points[i].x];
        if (label < 0 || label >= n_tok)
            st = setok_fail(err, SETOK_ERR_INPUT, "segment: no token covers point %d,%d",
                            points[i].x, points[i].y);
        else if (!points[i].foreground)
            selected[label] = -1;
        else if (selected[label] == 0)
            selected[label] = 1;
    }
    r->n_tokens = 0;
    double score = 0.0;
    for (int k = 0; k < n_tok && st == SETOK_OK; k++)
        if (selected[k] == 1) {
            r->tokens[r->n_tokens++] = k;
            score += tr->clusters.tokens[k].score;
        }
    if (st == SETOK_OK && r->n_tokens == 0)
        st = setok_fail(err, SETOK_ERR_INPUT, "segment: the background points removed every "
                        "token the foreground points chose");
    r->score = r->n_tokens ? (float)(score / r->n_tokens) : 0.0f;
    setok_image_free(&r->mask);
    if (st == SETOK_OK)
        st = setok_image_alloc(&r->mask, image->width, image->height, 1, err);
    r->area = 0;
    for (size_t i = 0; st == SETOK_OK && i < (size_t)image->width * image->height; i++) {
        int32_t label = tr->pixel_labels[i];
        bool on = label >= 0 && label < n_tok && selected[label] == 1;
        r->mask.pixels[i] = on ? 255 : 0;
        r->area += on;
    }
    free(selected);
    return st;
}
