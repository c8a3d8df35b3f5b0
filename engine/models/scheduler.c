/* scheduler.c — diffusion schedulers, mirroring diffusers' DDIMScheduler
 * (scheduling_ddim.py), EulerDiscreteScheduler (scheduling_euler_discrete.py),
 * EulerAncestralDiscreteScheduler (scheduling_euler_ancestral_discrete.py) and
 * DPMSolverMultistepScheduler (scheduling_dpmsolver_multistep.py, dpmsolver++),
 * plus the classifier-free guidance formulas of the diffusers pipelines.
 *
 * Rules: host float arrays in and out, double arithmetic inside. The tables
 * diffusers keeps in float32 (betas, alphas_cumprod, sigmas) are rounded to
 * float here at the same places, so the schedules agree to the last bit or
 * two. Nothing but the DPM history is allocated after set_timesteps. */
#include "setok/models/scheduler.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "setok/config.h"

struct setok_scheduler {
    setok_scheduler_config cfg;
    float *alphas_cumprod;       /* [num_train_timesteps], float32 as diffusers keeps it */
    int num_steps;               /* 0 before set_timesteps */
    float *timesteps;            /* [num_steps] */
    float *sigmas;               /* [num_steps + 1]; sigma kinds only */
    /* DPM-Solver++: the previous step's x0 prediction */
    float *history;
    size_t history_cap, history_n;
    int history_step;            /* the step index that wrote history; -1 none */
};

/* ---------------------------------------------------------------------------
 * names and config */

static const char *const kind_names[SETOK_SCHEDULER_KIND_COUNT] = {
    [SETOK_SCHEDULER_DDIM] = "DDIMScheduler",
    [SETOK_SCHEDULER_EULER] = "EulerDiscreteScheduler",
    [SETOK_SCHEDULER_EULER_ANCESTRAL] = "EulerAncestralDiscreteScheduler",
    [SETOK_SCHEDULER_DPMPP_2M] = "DPMSolverMultistepScheduler",
};

const char *setok_scheduler_kind_name(setok_scheduler_kind kind)
{
    return kind >= 0 && kind < SETOK_SCHEDULER_KIND_COUNT ? kind_names[kind] : NULL;
}

setok_scheduler_kind setok_scheduler_kind_from_name(const char *name)
{
    static const struct {
        const char *name;
        setok_scheduler_kind kind;
    } aliases[] = {
        {"PNDMScheduler", SETOK_SCHEDULER_DDIM},
        {"ddim", SETOK_SCHEDULER_DDIM},
        {"euler", SETOK_SCHEDULER_EULER},
        {"euler_a", SETOK_SCHEDULER_EULER_ANCESTRAL},
        {"euler_ancestral", SETOK_SCHEDULER_EULER_ANCESTRAL},
        {"dpm++2m", SETOK_SCHEDULER_DPMPP_2M},
        {"dpmsolver++", SETOK_SCHEDULER_DPMPP_2M},
    };
    if (!name)
        return SETOK_SCHEDULER_KIND_COUNT;
    for (int k = 0; k < SETOK_SCHEDULER_KIND_COUNT; k++)
        if (!strcmp(name, kind_names[k]))
            return (setok_scheduler_kind)k;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (!strcmp(name, aliases[i].name))
            return aliases[i].kind;
    return SETOK_SCHEDULER_KIND_COUNT;
}

/* A diffusers class name this file runs (not one of the short aliases). */
static bool is_class_name(const char *name)
{
    for (int k = 0; k < SETOK_SCHEDULER_KIND_COUNT; k++)
        if (!strcmp(name, kind_names[k]))
            return true;
    return !strcmp(name, "PNDMScheduler");
}

void setok_scheduler_config_defaults(setok_scheduler_config *cfg, setok_scheduler_kind kind)
{
    bool ddim = kind == SETOK_SCHEDULER_DDIM;
    *cfg = (setok_scheduler_config){
        .kind = kind,
        .num_train_timesteps = 1000,
        .beta_start = 0.0001,
        .beta_end = 0.02,
        .beta_schedule = SETOK_BETAS_LINEAR,
        .prediction_type = SETOK_PREDICT_EPSILON,
        /* DDIM defaults to leading, the sigma schedulers to linspace */
        .timestep_spacing = ddim ? SETOK_SPACING_LEADING : SETOK_SPACING_LINSPACE,
        .steps_offset = 0,
        .set_alpha_to_one = true,
        .clip_sample = true,
        .clip_sample_range = 1.0,
        .eta = 0.0,
        .final_sigma_zero = true,
        .solver_order = 2,
        .solver_heun = false,
        .lower_order_final = true,
        .euler_at_final = false,
        .lambda_min_clipped = -INFINITY,
        .from_pndm = false,
    };
}

/* A string key that must be one of names[0..count) (or absent: *out keeps its value). */
static setok_status read_choice(const setok_config *json, const char *key,
                                const char *const *names, int count, int *out, setok_error *err)
{
    const char *v = NULL;
    setok_status st = setok_config_string_or(json, key, NULL, &v, err);
    if (st != SETOK_OK || !v)
        return st;
    char list[256] = "";
    for (int i = 0; i < count; i++) {
        if (!strcmp(v, names[i])) {
            *out = i;
            return SETOK_OK;
        }
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
    }
    return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: %s '%s' is not supported (supported: %s)",
                      setok_config_path(json), key, v, list);
}

/* A boolean switch this engine only runs with the value `allowed`. */
static setok_status refuse_bool(const setok_config *json, const char *key, bool allowed,
                                setok_error *err)
{
    bool v = allowed;
    setok_status st = setok_config_bool_or(json, key, allowed, &v, err);
    if (st == SETOK_OK && v != allowed)
        st = setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: %s %s is not supported",
                        setok_config_path(json), key, v ? "true" : "false");
    return st;
}

/* A key that must be absent or null. */
static setok_status refuse_value(const setok_config *json, const char *key, setok_error *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(setok_config_root(json), key);
    if (item && !cJSON_IsNull(item))
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: %s is not supported (must be null)",
                          setok_config_path(json), key);
    return SETOK_OK;
}

static setok_status check_config(const setok_scheduler_config *c, const char *where,
                                 setok_error *err)
{
    if (c->kind < 0 || c->kind >= SETOK_SCHEDULER_KIND_COUNT)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: unknown scheduler kind %d", where, c->kind);
    if (c->num_train_timesteps < 2 || c->num_train_timesteps > 100000)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: num_train_timesteps %d must be in "
                          "[2, 100000]", where, c->num_train_timesteps);
    if (!(c->beta_start > 0.0 && c->beta_end > 0.0 && c->beta_start < 1.0 && c->beta_end < 1.0))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: beta_start %g and beta_end %g must be in "
                          "(0, 1)", where, c->beta_start, c->beta_end);
    if (c->steps_offset < 0 || c->steps_offset >= c->num_train_timesteps)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: steps_offset %d must be in [0, %d)", where,
                          c->steps_offset, c->num_train_timesteps);
    if (!(c->clip_sample_range > 0.0))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: clip_sample_range must be positive", where);
    if (!(c->eta >= 0.0) || !isfinite(c->eta))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: eta must be a finite value >= 0", where);
    if (c->solver_order < 1 || c->solver_order > 2)
        return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: solver_order %d is not supported "
                          "(1 or 2)", where, c->solver_order);
    if (isnan(c->lambda_min_clipped))
        return setok_fail(err, SETOK_ERR_INPUT, "%s: lambda_min_clipped is NaN", where);
    return SETOK_OK;
}

static setok_status config_parse(setok_scheduler_config *cfg, const setok_config *json,
                                 setok_scheduler_kind kind, setok_error *err)
{
    const char *path = setok_config_path(json), *cls = NULL;
    setok_status st = setok_config_string_or(json, "_class_name", NULL, &cls, err);
    if (st != SETOK_OK)
        return st;
    setok_scheduler_kind from_file = setok_scheduler_kind_from_name(cls);
    if (kind == SETOK_SCHEDULER_FROM_CONFIG) {
        if (!cls)
            return setok_fail(err, SETOK_ERR_INPUT, "%s: no _class_name; name the scheduler "
                              "kind", path);
        if (from_file == SETOK_SCHEDULER_KIND_COUNT || !is_class_name(cls))
            return setok_fail(err, SETOK_ERR_UNSUPPORTED, "%s: _class_name '%s' is not one of "
                              "DDIMScheduler, PNDMScheduler (run as DDIM), EulerDiscreteScheduler, "
                              "EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler",
                              path, cls);
        kind = from_file;
    }
    setok_scheduler_config_defaults(cfg, kind);
    cfg->from_pndm = cls && !strcmp(cls, "PNDMScheduler") && kind == SETOK_SCHEDULER_DDIM;
    bool ddim = kind == SETOK_SCHEDULER_DDIM, dpm = kind == SETOK_SCHEDULER_DPMPP_2M;
    bool euler = kind == SETOK_SCHEDULER_EULER;

    st = setok_config_int_in(json, "num_train_timesteps", false, 2, 100000,
                             &cfg->num_train_timesteps, err);
    if (st == SETOK_OK)
        st = setok_config_double_or(json, "beta_start", cfg->beta_start, &cfg->beta_start, err);
    if (st == SETOK_OK)
        st = setok_config_double_or(json, "beta_end", cfg->beta_end, &cfg->beta_end, err);
    static const char *const schedules[] = {"linear", "scaled_linear"};
    static const char *const predictions[] = {"epsilon", "v_prediction"};
    static const char *const spacings[] = {"leading", "trailing", "linspace"};
    int v = (int)cfg->beta_schedule;
    if (st == SETOK_OK)
        st = read_choice(json, "beta_schedule", schedules, 2, &v, err);
    cfg->beta_schedule = (setok_beta_schedule)v;
    v = (int)cfg->prediction_type;
    if (st == SETOK_OK)
        st = read_choice(json, "prediction_type", predictions, 2, &v, err);
    cfg->prediction_type = (setok_prediction_type)v;
    v = (int)cfg->timestep_spacing;
    if (st == SETOK_OK)
        st = read_choice(json, "timestep_spacing", spacings, 3, &v, err);
    cfg->timestep_spacing = (setok_timestep_spacing)v;
    if (st == SETOK_OK)
        st = setok_config_int_in(json, "steps_offset", false, 0, 100000, &cfg->steps_offset, err);
    if (st == SETOK_OK)
        st = refuse_value(json, "trained_betas", err);
    if (st == SETOK_OK)
        st = refuse_bool(json, "rescale_betas_zero_snr", false, err);

    if (st == SETOK_OK && ddim)
        st = setok_config_bool_or(json, "set_alpha_to_one", cfg->set_alpha_to_one,
                                  &cfg->set_alpha_to_one, err);
    if (st == SETOK_OK && ddim)
        st = setok_config_bool_or(json, "clip_sample", cfg->clip_sample, &cfg->clip_sample, err);
    if (st == SETOK_OK && ddim)
        st = setok_config_double_or(json, "clip_sample_range", cfg->clip_sample_range,
                                    &cfg->clip_sample_range, err);
    if (st == SETOK_OK && (ddim || dpm))
        st = refuse_bool(json, "thresholding", false, err);

    static const char *const finals[] = {"zero", "sigma_min"};
    v = cfg->final_sigma_zero ? 0 : 1;
    if (st == SETOK_OK && (euler || dpm))
        st = read_choice(json, "final_sigmas_type", finals, 2, &v, err);
    cfg->final_sigma_zero = v == 0;
    static const char *const sigma_switches[] = {"use_karras_sigmas", "use_exponential_sigmas",
                                                 "use_beta_sigmas", "use_lu_lambdas",
                                                 "use_flow_sigmas", "use_dynamic_shifting"};
    for (int i = 0; i < 6 && st == SETOK_OK && (euler || dpm); i++)
        if (i < 3 || dpm)
            st = refuse_bool(json, sigma_switches[i], false, err);
    if (st == SETOK_OK && euler) {
        static const char *const interp[] = {"linear"}, *const ttype[] = {"discrete"};
        int unused = 0;
        st = read_choice(json, "interpolation_type", interp, 1, &unused, err);
        if (st == SETOK_OK)
            st = read_choice(json, "timestep_type", ttype, 1, &unused, err);
    }
    if (st == SETOK_OK && dpm) {
        static const char *const algos[] = {"dpmsolver++"}, *const solvers[] = {"midpoint", "heun"};
        int unused = 0, heun = 0;
        st = read_choice(json, "algorithm_type", algos, 1, &unused, err);
        if (st == SETOK_OK)
            st = read_choice(json, "solver_type", solvers, 2, &heun, err);
        cfg->solver_heun = heun == 1;
        if (st == SETOK_OK)
            st = setok_config_int_in(json, "solver_order", false, 1, 2, &cfg->solver_order, err);
        if (st == SETOK_OK)
            st = setok_config_bool_or(json, "lower_order_final", cfg->lower_order_final,
                                      &cfg->lower_order_final, err);
        if (st == SETOK_OK)
            st = setok_config_bool_or(json, "euler_at_final", cfg->euler_at_final,
                                      &cfg->euler_at_final, err);
        if (st == SETOK_OK)
            st = setok_config_double_or(json, "lambda_min_clipped", cfg->lambda_min_clipped,
                                        &cfg->lambda_min_clipped, err);
        if (st == SETOK_OK)
            st = refuse_value(json, "variance_type", err);
    }
    if (st == SETOK_OK)
        st = check_config(cfg, path, err);
    return st;
}

/* The text of a scheduler_config.json. diffusers writes it with Python's
 * json, which spells an infinite value (DPM's default lambda_min_clipped)
 * -Infinity or Infinity; outside strings those become numbers that strtod
 * overflows to the same infinities, so strict JSON parsers accept the file. */
static setok_status read_json_text(char **out, const char *path, setok_error *err)
{
    enum { MAX_BYTES = 1 << 20 };
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    char *text = malloc(MAX_BYTES + 1);
    size_t size = text ? fread(text, 1, MAX_BYTES + 1, f) : 0;
    bool failed = text && ferror(f);
    fclose(f);
    if (!text)
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", path);
    if (failed || size > MAX_BYTES) {
        free(text);
        return setok_fail(err, SETOK_ERR_INPUT, "%s: %s", path,
                          failed ? "read failed" : "larger than 1 MiB");
    }
    text[size] = '\0';
    bool in_string = false;
    for (size_t i = 0; i < size; i++) {
        if (in_string) {
            if (text[i] == '\\' && i + 1 < size)
                i++;
            else if (text[i] == '"')
                in_string = false;
        } else if (text[i] == '"') {
            in_string = true;
        } else if (!strncmp(text + i, "Infinity", 8)) {
            memcpy(text + i, "1e999   ", 8);
            i += 7;
        }
    }
    *out = text;
    return SETOK_OK;
}

setok_status setok_scheduler_config_load(setok_scheduler_config *cfg, const char *dir,
                                         setok_scheduler_kind kind, setok_error *err)
{
    char path[4096];
    int len = snprintf(path, sizeof path, "%s/scheduler_config.json", dir);
    if (len < 0 || (size_t)len >= sizeof path)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: path too long", dir);
    if (kind < SETOK_SCHEDULER_FROM_CONFIG || kind >= SETOK_SCHEDULER_KIND_COUNT)
        return setok_fail(err, SETOK_ERR_INPUT, "%s: unknown scheduler kind %d", path, kind);
    setok_config *json = NULL;
    char *text = NULL;
    setok_status st = read_json_text(&text, path, err);
    if (st == SETOK_OK)
        st = setok_config_parse(&json, text, path, err);
    free(text);
    if (st == SETOK_OK)
        st = config_parse(cfg, json, kind, err);
    setok_config_free(json);
    return st;
}

/* ---------------------------------------------------------------------------
 * the training schedule */

void setok_scheduler_free(setok_scheduler *s)
{
    if (!s)
        return;
    free(s->alphas_cumprod);
    free(s->timesteps);
    free(s->sigmas);
    free(s->history);
    free(s);
}

/* alphas_cumprod[T] as diffusers builds it: betas by torch.linspace in
 * float32 (from both ends towards the middle), squared for scaled_linear,
 * alphas = 1 - betas in float32, a cumulative product accumulated in double. */
static void training_schedule(float *alphas_cumprod, const setok_scheduler_config *c)
{
    int T = c->num_train_timesteps;
    bool scaled = c->beta_schedule == SETOK_BETAS_SCALED_LINEAR;
    float start = (float)(scaled ? sqrt(c->beta_start) : c->beta_start);
    float end = (float)(scaled ? sqrt(c->beta_end) : c->beta_end);
    float step = (end - start) / (float)(T - 1);
    double prod = 1.0;
    for (int i = 0; i < T; i++) {
        float b = i < T / 2 ? start + step * (float)i : end - step * (float)(T - 1 - i);
        if (scaled)
            b = b * b;
        prod *= (double)(1.0f - b);
        alphas_cumprod[i] = (float)prod;
    }
}

setok_status setok_scheduler_create(setok_scheduler **out, const setok_scheduler_config *cfg,
                                    setok_error *err)
{
    *out = NULL;
    setok_status st = check_config(cfg, "scheduler", err);
    if (st != SETOK_OK)
        return st;
    setok_scheduler *s = calloc(1, sizeof *s);
    if (s)
        s->alphas_cumprod = malloc((size_t)cfg->num_train_timesteps * sizeof(float));
    if (!s || !s->alphas_cumprod) {
        setok_scheduler_free(s);
        return setok_fail(err, SETOK_ERR_NOMEM, "scheduler: out of memory");
    }
    s->cfg = *cfg;
    s->history_step = -1;
    training_schedule(s->alphas_cumprod, cfg);
    /* every sigma sqrt((1 - a) / a) must be finite and positive */
    float first = s->alphas_cumprod[0], last = s->alphas_cumprod[cfg->num_train_timesteps - 1];
    if (!(first < 1.0f) || !(last > 0.0f)) {
        setok_scheduler_free(s);
        return setok_fail(err, SETOK_ERR_INPUT, "scheduler: beta_start %g, beta_end %g over %d "
                          "steps give a noise level of %s in float32", cfg->beta_start,
                          cfg->beta_end, cfg->num_train_timesteps,
                          first < 1.0f ? "zero at the last step" : "zero at the first step");
    }
    *out = s;
    return SETOK_OK;
}

setok_status setok_scheduler_load(setok_scheduler **out, const char *dir,
                                  setok_scheduler_kind kind, setok_error *err)
{
    setok_scheduler_config cfg;
    *out = NULL;
    setok_status st = setok_scheduler_config_load(&cfg, dir, kind, err);
    if (st == SETOK_OK)
        st = setok_scheduler_create(out, &cfg, err);
    return st;
}

const setok_scheduler_config *setok_scheduler_get_config(const setok_scheduler *s)
{
    return &s->cfg;
}

setok_status setok_scheduler_set_eta(setok_scheduler *s, double eta, setok_error *err)
{
    if (!(eta >= 0.0) || !isfinite(eta))
        return setok_fail(err, SETOK_ERR_INPUT, "scheduler: eta must be a finite value >= 0, "
                          "got %g", eta);
    s->cfg.eta = eta;
    return SETOK_OK;
}

/* ---------------------------------------------------------------------------
 * the inference schedule */

static bool uses_sigmas(const setok_scheduler *s)
{
    return s->cfg.kind != SETOK_SCHEDULER_DDIM;
}

/* sqrt((1 - a) / a) in float32, as diffusers computes its training sigmas. */
static float train_sigma(const setok_scheduler *s, int t)
{
    float a = s->alphas_cumprod[t];
    return sqrtf((1.0f - a) / a);
}

/* numpy.interp(t, arange(T), train sigmas): linear between integer
 * timesteps, clamped at both ends. */
static double sigma_at(const setok_scheduler *s, double t)
{
    int T = s->cfg.num_train_timesteps;
    if (!(t > 0.0))
        return train_sigma(s, 0);
    if (t >= T - 1)
        return train_sigma(s, T - 1);
    int lo = (int)floor(t);
    double w = t - lo, a = train_sigma(s, lo), b = train_sigma(s, lo + 1);
    return a + w * (b - a);
}

/* numpy.arange(start, 0, -step) rounded half to even, minus one: the
 * trailing spacing (count as numpy computes it, ceil(start / step)). */
static int trailing(double *t, int max, double start, double step)
{
    int count = (int)ceil(start / step);
    double delta = (start - step) - start; /* numpy's second element minus the first */
    if (count > max)
        count = max;
    for (int i = 0; i < count; i++)
        t[i] = nearbyint(start + i * delta) - 1.0;
    return count;
}

/* numpy.linspace(0, stop, num)[i]: i * (stop / (num - 1)), the last exactly stop. */
static double linspace_at(double stop, int num, int i)
{
    if (num == 1)
        return 0.0;
    if (i == num - 1)
        return stop;
    return i * (stop / (num - 1));
}

/* DPM: lambda_min_clipped cuts the high-noise end of the schedule; the
 * number of training steps left (diffusers' last_timestep). */
static int dpm_last_timestep(const setok_scheduler *s)
{
    int T = s->cfg.num_train_timesteps, clipped = 0;
    if (isinf(s->cfg.lambda_min_clipped) && s->cfg.lambda_min_clipped < 0)
        return T;
    /* searchsorted(flip(lambda_t), lambda_min_clipped): lambdas below it, counted from t = T-1 */
    for (int t = T - 1; t >= 0; t--) {
        float a = s->alphas_cumprod[t];
        float lambda = logf(sqrtf(a)) - logf(sqrtf(1.0f - a));
        if (!(lambda < s->cfg.lambda_min_clipped))
            break;
        clipped++;
    }
    return T - clipped;
}

/* The integer or fractional timesteps of n steps into t[], descending; returns their count. */
static int build_timesteps(const setok_scheduler *s, double *t, int n, setok_error *err)
{
    const setok_scheduler_config *c = &s->cfg;
    int T = c->num_train_timesteps, count = n;
    /* the Euler kinds keep linspace timesteps fractional (in float32) */
    bool dpm = c->kind == SETOK_SCHEDULER_DPMPP_2M;
    bool fractional = c->kind == SETOK_SCHEDULER_EULER ||
                      c->kind == SETOK_SCHEDULER_EULER_ANCESTRAL;
    int last = dpm ? dpm_last_timestep(s) : T;
    if (dpm && last < 1) {
        setok_fail(err, SETOK_ERR_INPUT, "scheduler: lambda_min_clipped %g leaves no timestep",
                   c->lambda_min_clipped);
        return -1;
    }
    switch (c->timestep_spacing) {
    case SETOK_SPACING_LINSPACE:
        if (dpm) /* linspace(0, last - 1, n + 1), rounded, descending, without the 0 */
            for (int i = 0; i < n; i++)
                t[i] = nearbyint(linspace_at(last - 1, n + 1, n - i));
        else
            for (int i = 0; i < n; i++) {
                double v = linspace_at(T - 1, n, n - 1 - i);
                t[i] = fractional ? (double)(float)v : nearbyint(v);
            }
        break;
    case SETOK_SPACING_LEADING: {
        /* arange(n [+ 1]) * (T // n [+ 1]), descending, plus steps_offset (DPM drops the 0) */
        int ratio = dpm ? last / (n + 1) : T / n;
        if (ratio < 1) {
            setok_fail(err, SETOK_ERR_INPUT, "scheduler: %d steps are too many for leading "
                       "spacing over %d timesteps", n, last);
            return -1;
        }
        for (int i = 0; i < n; i++)
            t[i] = (double)(dpm ? n - i : n - 1 - i) * ratio + c->steps_offset;
        break;
    }
    case SETOK_SPACING_TRAILING:
        count = trailing(t, n, dpm ? last : T, (double)T / n);
        break;
    }
    for (int i = 0; i < count; i++)
        if (t[i] < 0 || t[i] > T - 1) {
            setok_fail(err, SETOK_ERR_INPUT, "scheduler: timestep %g of %d steps falls outside "
                       "[0, %d] (steps_offset %d)", t[i], n, T - 1, c->steps_offset);
            return -1;
        }
    /* repeated timesteps would make DPM's log-SNR step h zero */
    for (int i = 1; i < count && dpm; i++)
        if (t[i] >= t[i - 1]) {
            setok_fail(err, SETOK_ERR_INPUT, "scheduler: %d steps repeat timestep %g over the "
                       "%d the schedule leaves", n, t[i], last);
            return -1;
        }
    return count;
}

setok_status setok_scheduler_set_timesteps(setok_scheduler *s, int num_inference_steps,
                                           setok_error *err)
{
    const setok_scheduler_config *c = &s->cfg;
    int n = num_inference_steps;
    if (n < 1 || n > c->num_train_timesteps)
        return setok_fail(err, SETOK_ERR_INPUT, "scheduler: num_inference_steps %d must be in "
                          "[1, %d]", n, c->num_train_timesteps);
    double *t = malloc((size_t)n * sizeof *t);
    float *ts = malloc((size_t)n * sizeof *ts);
    float *sig = malloc(((size_t)n + 1) * sizeof *sig);
    if (!t || !ts || !sig) {
        free(t);
        free(ts);
        free(sig);
        return setok_fail(err, SETOK_ERR_NOMEM, "scheduler: out of memory");
    }
    int count = build_timesteps(s, t, n, err);
    if (count < 0) {
        free(t);
        free(ts);
        free(sig);
        return err ? err->status : SETOK_ERR_INPUT;
    }
    for (int i = 0; i < count; i++) {
        ts[i] = (float)t[i];
        sig[i] = (float)sigma_at(s, ts[i]);
    }
    sig[count] = c->final_sigma_zero || c->kind == SETOK_SCHEDULER_EULER_ANCESTRAL
                     ? 0.0f : train_sigma(s, 0);
    free(t);
    free(s->timesteps);
    free(s->sigmas);
    s->timesteps = ts;
    s->sigmas = sig;
    s->num_steps = count;
    s->history_step = -1;
    return SETOK_OK;
}

const float *setok_scheduler_timesteps(const setok_scheduler *s, int *n)
{
    if (n)
        *n = s->num_steps;
    return s->num_steps ? s->timesteps : NULL;
}

const float *setok_scheduler_sigmas(const setok_scheduler *s, int *n)
{
    bool has = s->num_steps && uses_sigmas(s);
    if (n)
        *n = has ? s->num_steps + 1 : 0;
    return has ? s->sigmas : NULL;
}

float setok_scheduler_init_noise_sigma(const setok_scheduler *s)
{
    setok_scheduler_kind k = s->cfg.kind;
    if (k == SETOK_SCHEDULER_DDIM || k == SETOK_SCHEDULER_DPMPP_2M || !s->num_steps)
        return 1.0f;
    float max = 0.0f;
    for (int i = 0; i <= s->num_steps; i++)
        max = s->sigmas[i] > max ? s->sigmas[i] : max;
    if (s->cfg.timestep_spacing == SETOK_SPACING_LEADING)
        return sqrtf(max * max + 1.0f);
    return max;
}

int setok_scheduler_start_index(const setok_scheduler *s, double strength)
{
    int n = s->num_steps;
    double want = n * (strength > 0.0 ? strength : 0.0);
    int init = want < n ? (int)want : n;
    return n - init > 0 ? n - init : 0;
}

/* ---------------------------------------------------------------------------
 * steps */

static setok_status check_step(const setok_scheduler *s, int step_index, size_t n,
                               const void *const *arrays, int count, const char *what,
                               setok_error *err)
{
    if (!s->num_steps)
        return setok_fail(err, SETOK_ERR_INPUT, "scheduler %s: set_timesteps has not been "
                          "called", what);
    if (step_index < 0 || step_index >= s->num_steps)
        return setok_fail(err, SETOK_ERR_INPUT, "scheduler %s: step index %d is outside "
                          "[0, %d)", what, step_index, s->num_steps);
    for (int i = 0; i < count; i++)
        if (n && !arrays[i])
            return setok_fail(err, SETOK_ERR_INPUT, "scheduler %s: missing array", what);
    return SETOK_OK;
}

setok_status setok_scheduler_scale_model_input(const setok_scheduler *s, int step_index,
                                               float *out, const float *x, size_t n,
                                               setok_error *err)
{
    const void *arrays[2] = {out, x};
    setok_status st = check_step(s, step_index, n, arrays, 2, "scale_model_input", err);
    if (st != SETOK_OK)
        return st;
    double scale = 1.0;
    if (s->cfg.kind == SETOK_SCHEDULER_EULER || s->cfg.kind == SETOK_SCHEDULER_EULER_ANCESTRAL) {
        double sigma = s->sigmas[step_index];
        scale = 1.0 / sqrt(sigma * sigma + 1.0);
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (float)(x[i] * scale);
    return SETOK_OK;
}

// model_output, sample: [n] at timesteps[i] -> out: [n] at the next timestep,
// x0: [n]? (pred_original_sample). DDIM always steps back T // n training steps.
static void ddim_step(const setok_scheduler *s, int i, float *out, float *x0,
                      const float *model_output, const float *sample, const float *noise,
                      size_t n)
{
    const setok_scheduler_config *c = &s->cfg;
    int t = (int)s->timesteps[i];
    int prev = t - c->num_train_timesteps / s->num_steps;
    double a_t = s->alphas_cumprod[t];
    double a_prev = prev >= 0 ? s->alphas_cumprod[prev]
                              : (c->set_alpha_to_one ? 1.0 : s->alphas_cumprod[0]);
    double b_t = 1.0 - a_t, sa = sqrt(a_t), sb = sqrt(b_t);
    double variance = c->eta > 0.0 ? (1.0 - a_prev) / b_t * (1.0 - a_t / a_prev) : 0.0;
    double std_dev = c->eta * sqrt(variance);
    double dir = sqrt(fmax(1.0 - a_prev - std_dev * std_dev, 0.0)), sap = sqrt(a_prev);
    bool v = c->prediction_type == SETOK_PREDICT_V;
    for (size_t j = 0; j < n; j++) {
        double m = model_output[j], x = sample[j];
        double pred_x0 = v ? sa * x - sb * m : (x - sb * m) / sa;
        double pred_eps = v ? sa * m + sb * x : m;
        if (c->clip_sample)
            pred_x0 = fmin(fmax(pred_x0, -c->clip_sample_range), c->clip_sample_range);
        double r = sap * pred_x0 + dir * pred_eps;
        if (c->eta > 0.0)
            r += std_dev * noise[j];
        if (x0)
            x0[j] = (float)pred_x0;
        out[j] = (float)r;
    }
}

// model_output, sample: [n] at sigmas[i] -> out: [n] at sigmas[i + 1], x0: [n]?;
// ancestral: the step goes down to sigma_down and adds sigma_up * noise.
static void euler_step(const setok_scheduler *s, int i, float *out, float *x0,
                       const float *model_output, const float *sample, const float *noise,
                       size_t n)
{
    bool ancestral = s->cfg.kind == SETOK_SCHEDULER_EULER_ANCESTRAL;
    bool v = s->cfg.prediction_type == SETOK_PREDICT_V;
    double sigma = s->sigmas[i], next = s->sigmas[i + 1];
    double up = 0.0, down = next;
    if (ancestral) {
        up = sqrt(next * next * (sigma * sigma - next * next) / (sigma * sigma));
        down = sqrt(fmax(next * next - up * up, 0.0));
    }
    double dt = down - sigma, s2 = sigma * sigma + 1.0;
    for (size_t j = 0; j < n; j++) {
        double m = model_output[j], x = sample[j];
        double pred_x0 = v ? m * (-sigma / sqrt(s2)) + x / s2 : x - sigma * m;
        double r = x + (x - pred_x0) / sigma * dt;
        if (ancestral)
            r += noise[j] * up;
        if (x0)
            x0[j] = (float)pred_x0;
        out[j] = (float)r;
    }
}

/* alpha_t, sigma_t and lambda_t = log(alpha_t / sigma_t) of a sigma (VP parameterisation). */
static void dpm_point(double sigma, double *alpha, double *sig, double *lambda)
{
    *alpha = 1.0 / sqrt(sigma * sigma + 1.0);
    *sig = sigma * *alpha;
    *lambda = log(*alpha) - log(*sig);
}

// model_output, sample: [n] at sigmas[i] -> out: [n] at sigmas[i + 1], x0: [n]?;
// first order (DPM-Solver++ 1 = DDIM in x0 form), or second order with the
// previous x0 (2M, midpoint or heun).
static setok_status dpm_step(setok_scheduler *s, int i, float *out, float *x0,
                             const float *model_output, const float *sample, size_t n,
                             setok_error *err)
{
    const setok_scheduler_config *c = &s->cfg;
    bool have_prev = s->history_step == i - 1 && s->history_n == n && i > 0;
    if (n > s->history_cap) {
        float *h = realloc(s->history, n * sizeof *h);
        if (!h)
            return setok_fail(err, SETOK_ERR_NOMEM, "scheduler: out of memory");
        s->history = h;
        s->history_cap = n;
        have_prev = false;
    }
    bool last = i == s->num_steps - 1;
    bool lower_final = last && (c->euler_at_final || (c->lower_order_final && s->num_steps < 15) ||
                                c->final_sigma_zero);
    bool second = c->solver_order == 2 && have_prev && !lower_final;
    double a_s0, s_s0, l_s0, a_t = 1.0, s_t = 0.0, l_t = INFINITY, a_s1, s_s1, l_s1;
    double sigma_next = s->sigmas[i + 1];
    dpm_point(s->sigmas[i], &a_s0, &s_s0, &l_s0);
    if (sigma_next > 0.0)
        dpm_point(sigma_next, &a_t, &s_t, &l_t);
    double h = l_t - l_s0, em1 = expm1(-h); /* exp(-h) - 1; -1 when sigma_next is 0 */
    double r0 = 1.0, k1 = 0.0;
    if (second) {
        dpm_point(s->sigmas[i - 1], &a_s1, &s_s1, &l_s1);
        r0 = (l_s0 - l_s1) / h;
        /* midpoint: -0.5 alpha_t (e^-h - 1) D1; heun: alpha_t ((e^-h - 1) / h + 1) D1 */
        k1 = c->solver_heun ? a_t * (em1 / h + 1.0) : -0.5 * a_t * em1;
    }
    bool v = c->prediction_type == SETOK_PREDICT_V;
    double ratio = s_t / s_s0, k0 = -a_t * em1;
    for (size_t j = 0; j < n; j++) {
        double m = model_output[j], x = sample[j];
        double pred = v ? a_s0 * x - s_s0 * m : (x - s_s0 * m) / a_s0;
        double pred_f = (float)pred; /* diffusers keeps model outputs in float32 */
        double r = ratio * x + k0 * pred_f;
        if (second)
            r += k1 * (pred_f - s->history[j]) / r0;
        s->history[j] = (float)pred_f;
        if (x0)
            x0[j] = (float)pred_f;
        out[j] = (float)r;
    }
    s->history_step = i;
    s->history_n = n;
    return SETOK_OK;
}

setok_status setok_scheduler_step(setok_scheduler *s, int step_index, float *out,
                                  float *pred_original, const float *model_output,
                                  const float *sample, const float *noise, size_t n,
                                  setok_error *err)
{
    const void *arrays[3] = {out, model_output, sample};
    setok_status st = check_step(s, step_index, n, arrays, 3, "step", err);
    if (st != SETOK_OK)
        return st;
    setok_scheduler_kind k = s->cfg.kind;
    bool needs_noise = k == SETOK_SCHEDULER_EULER_ANCESTRAL ||
                       (k == SETOK_SCHEDULER_DDIM && s->cfg.eta > 0.0);
    if (needs_noise && n && !noise)
        return setok_fail(err, SETOK_ERR_INPUT, "scheduler step: %s needs noise",
                          k == SETOK_SCHEDULER_DDIM ? "DDIM with eta > 0" : "Euler ancestral");
    switch (k) {
    case SETOK_SCHEDULER_DDIM:
        ddim_step(s, step_index, out, pred_original, model_output, sample, noise, n);
        return SETOK_OK;
    case SETOK_SCHEDULER_EULER:
    case SETOK_SCHEDULER_EULER_ANCESTRAL:
        euler_step(s, step_index, out, pred_original, model_output, sample, noise, n);
        return SETOK_OK;
    case SETOK_SCHEDULER_DPMPP_2M:
        return dpm_step(s, step_index, out, pred_original, model_output, sample, n, err);
    default:
        return setok_fail(err, SETOK_ERR_INPUT, "scheduler step: unknown kind %d", k);
    }
}

setok_status setok_scheduler_add_noise(const setok_scheduler *s, int step_index, float *out,
                                       const float *original, const float *noise, size_t n,
                                       setok_error *err)
{
    const void *arrays[3] = {out, original, noise};
    setok_status st = check_step(s, step_index, n, arrays, 3, "add_noise", err);
    if (st != SETOK_OK)
        return st;
    double a = 1.0, b;
    switch (s->cfg.kind) {
    case SETOK_SCHEDULER_DDIM: {
        double acp = s->alphas_cumprod[(int)s->timesteps[step_index]];
        a = sqrt(acp);
        b = sqrt(1.0 - acp);
        break;
    }
    case SETOK_SCHEDULER_DPMPP_2M: {
        double lambda;
        dpm_point(s->sigmas[step_index], &a, &b, &lambda);
        break;
    }
    default:
        b = s->sigmas[step_index];
        break;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (float)(a * original[i] + b * noise[i]);
    return SETOK_OK;
}

/* ---------------------------------------------------------------------------
 * guidance */

void setok_guidance_cfg(float *out, const float *uncond, const float *cond, float scale,
                        size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = uncond[i] + scale * (cond[i] - uncond[i]);
}

void setok_guidance_ip2p(float *out, const float *uncond, const float *img_cond,
                         const float *full_cond, float text_scale, float image_scale, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = uncond[i] + text_scale * (full_cond[i] - img_cond[i]) +
                 image_scale * (img_cond[i] - uncond[i]);
}
