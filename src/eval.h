/* eval.h — what `setok eval` (cmd-eval.c) measures, and its charts (eval-plots.c). */
#ifndef SETOK_CLI_EVAL_H
#define SETOK_CLI_EVAL_H

#include "setok/error.h"

#define EVAL_MAX_TYPES 16
#define EVAL_PASSES 4 /* density peaks, fixed k, soft, density peaks with refined masks */

typedef struct eval_results
{
  int n_scenes;
  int qa_total, qa_correct;
  struct
  {
    char name[32];
    int total, correct;
  } types[EVAL_MAX_TYPES];
  int n_types;
  double *tokens, *objects; /* [n_scenes]: density-peak tokens and objects per image */
  double spearman, mean_tokens, mean_objects;
  double alignment[EVAL_PASSES]; /* mean best IoU per pass (EVAL_PASSES) */
  int fixed_k;
  double tokens_ms, qa_ms;
} eval_results;

/* Spearman's rank correlation of x and y; NaN when undefined. */
double eval_spearman (const double *x, const double *y, int n);

/* tokens-vs-objects.png, qa-by-type.png and ablation.png in dir (created if missing). */
setok_status eval_plots (const eval_results *r, const char *dir, setok_error *err);

#endif
