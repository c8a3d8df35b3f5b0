/* model-quantize.c — a model folder copied with its large weight matrices stored
 * block-quantized (setok_model_quantize, `setok quantize`).
 *
 * The copy has the same layout as the original: every file is copied, except
 * that each folder whose weights hold matrices the engine quantizes (the linear
 * layers of model.h's setok_model_options.weights) gets one model.safetensors
 * (its original single file's name when it had one) in which those matrices are
 * U8 tensors [rows, row bytes] of quant.h blocks under their own names, and the
 * other tensors are as they were. Its config.json gains "setok_quantization"
 * ({"format", "block", "note"}) and the file's metadata "setok_quantized". The
 * engine takes such a folder with or without --weights (decoding the blocks
 * when asked for another dtype); other software does not read it. */
#include "model-impl.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "io/loader.h"
#include "setok/config.h"
#include "setok/quant.h"
#include "setok/safetensors.h"
#include "setok/weights.h"

typedef struct recorded {
    char *name;
    int64_t rows, k;
    void *data; /* a copy: some components quantize into temporaries (stacked q, k, v) */
} recorded;

typedef struct recording {
    recorded *items;
    size_t count, cap;
    bool failed;
} recording;

static void record(void *user, const char *name, const setok_tensor *t)
{
    recording *r = user;
    if (r->count == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 64;
        recorded *p = realloc(r->items, cap * sizeof *p);
        if (!p) {
            r->failed = true;
            return;
        }
        r->items = p;
        r->cap = cap;
    }
    size_t bytes = setok_tensor_nbytes(t);
    char *copy = strdup(name);
    void *data = malloc(bytes ? bytes : 1);
    if (!copy || !data) {
        free(copy);
        free(data);
        r->failed = true;
        return;
    }
    memcpy(data, t->data, bytes);
    r->items[r->count++] = (recorded){copy, t->shape[0], t->shape[t->ndim - 1], data};
}

static const recorded *find(const recording *r, const char *name)
{
    for (size_t i = 0; i < r->count; i++)
        if (!strcmp(r->items[i].name, name))
            return &r->items[i];
    return NULL;
}

/* ---------------------------------------------------------------------------
 * copying the folder */

static const char *copy_from, *copy_to;
static char *const *copy_rewritten; /* real paths of the folders whose weights are rewritten */
static setok_error *copy_err;

static setok_status copy_file(const char *from, const char *to, setok_error *err)
{
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    setok_status st = in && out ? SETOK_OK
                                : setok_fail(err, SETOK_ERR_RUNTIME, "%s: %s", in ? to : from,
                                             strerror(errno));
    char buf[1 << 16];
    size_t n;
    while (st == SETOK_OK && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            st = setok_fail(err, SETOK_ERR_RUNTIME, "%s: write failed: %s", to, strerror(errno));
    if (in)
        fclose(in);
    if (out && fclose(out) != 0 && st == SETOK_OK)
        st = setok_fail(err, SETOK_ERR_RUNTIME, "%s: write failed: %s", to, strerror(errno));
    return st;
}

static bool is_weight_file(const char *path)
{
    size_t n = strlen(path);
    return (n > 12 && !strcmp(path + n - 12, ".safetensors")) ||
           (n > 23 && !strcmp(path + n - 23, ".safetensors.index.json"));
}

static bool in_rewritten_folder(const char *path, int base)
{
    for (int i = 0; copy_rewritten[i]; i++) {
        size_t n = strlen(copy_rewritten[i]);
        if ((size_t)base == n + 1 && !strncmp(path, copy_rewritten[i], n))
            return true;
    }
    return false;
}

/* The weight files of a folder with nothing to quantize, as they are. */
static setok_status copy_weight_files(const char *dir, const char *out_dir, setok_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return setok_fail(err, SETOK_ERR_RUNTIME, "%s: %s", dir, strerror(errno));
    setok_status st = SETOK_OK;
    struct dirent *e;
    while (st == SETOK_OK && (e = readdir(d))) {
        if (!is_weight_file(e->d_name))
            continue;
        char *from = setok_path_join_alloc(dir, e->d_name);
        char *to = setok_path_join_alloc(out_dir, e->d_name);
        st = from && to ? copy_file(from, to, err)
                        : setok_fail(err, SETOK_ERR_NOMEM, "quantize: out of memory");
        free(from);
        free(to);
    }
    closedir(d);
    return st;
}

/* Every file but the weights of the folders written afterwards, symbolic links followed. */
static int copy_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    char *to = setok_path_join_alloc(copy_to, path + strlen(copy_from));
    if (!to) {
        setok_fail(copy_err, SETOK_ERR_NOMEM, "quantize: out of memory");
        return 1;
    }
    int rc = 0;
    if (type == FTW_D && mkdir(to, 0755) != 0 && errno != EEXIST)
        rc = setok_fail(copy_err, SETOK_ERR_RUNTIME, "%s: %s", to, strerror(errno)) != SETOK_OK;
    else if (type == FTW_F && S_ISREG(sb->st_mode) &&
             !(is_weight_file(path) && in_rewritten_folder(path, ftw->base)))
        rc = copy_file(path, to, copy_err) != SETOK_OK;
    free(to);
    return rc;
}

/* ---------------------------------------------------------------------------
 * writing one folder's weights */

static setok_status write_config_note(const char *dir, const char *out_dir, setok_dtype format,
                                      setok_error *err)
{
    setok_config *cfg = NULL;
    setok_status st = setok_config_load_in(&cfg, dir, "config.json", true, err);
    if (st != SETOK_OK || !cfg)
        return st;
    cJSON *root = cJSON_Duplicate(setok_config_root(cfg), true);
    setok_config_free(cfg);
    cJSON *note = root ? cJSON_CreateObject() : NULL;
    char *text = NULL, *path = setok_path_join_alloc(out_dir, "config.json");
    if (note) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, "setok_quantization");
        cJSON_AddItemToObject(root, "setok_quantization", note);
        cJSON_AddStringToObject(note, "format", setok_dtype_name(format));
        cJSON_AddNumberToObject(note, "block", SETOK_QBLOCK);
        cJSON_AddStringToObject(note, "note", "linear-layer weights stored as U8 tensors of "
                                "block-quantized rows; only SeTok Studio's engine reads them");
        text = cJSON_Print(root);
    }
    FILE *f = text && path ? fopen(path, "wb") : NULL;
    if (!f || fputs(text, f) < 0 || fputc('\n', f) == EOF)
        st = setok_fail(err, SETOK_ERR_RUNTIME, "%s: cannot write", path ? path : out_dir);
    if (f && fclose(f) != 0 && st == SETOK_OK)
        st = setok_fail(err, SETOK_ERR_RUNTIME, "%s: cannot write", path);
    cJSON_Delete(root);
    free(text);
    free(path);
    return st;
}

static setok_status write_weights(const char *dir, const char *out_dir, const recording *r,
                                  setok_dtype format, setok_error *err)
{
    setok_weights *w = NULL;
    setok_status st = setok_weights_open(&w, dir, err);
    if (st != SETOK_OK)
        return st;
    size_t n = setok_weights_count(w);
    setok_st_entry *e = calloc(n ? n : 1, sizeof *e);
    int64_t (*shapes)[SETOK_ST_MAX_DIMS] = calloc(n ? n : 1, sizeof *shapes);
    if (!e || !shapes)
        st = setok_fail(err, SETOK_ERR_NOMEM, "quantize: out of memory");
    for (size_t i = 0; st == SETOK_OK && i < n; i++) {
        const setok_st_tensor *t = setok_weights_at(w, i);
        const recorded *q = find(r, t->name);
        memcpy(shapes[i], t->shape, sizeof shapes[i]);
        e[i] = (setok_st_entry){t->name, t->dtype, t->ndim, shapes[i], t->data};
        if (q) {
            shapes[i][0] = q->rows;
            shapes[i][1] = (int64_t)setok_dtype_bytes(format, q->k);
            e[i] = (setok_st_entry){t->name, SETOK_ST_U8, 2, shapes[i], q->data};
        }
    }
    /* one file: the original's name when it was a single file */
    const char *name = "model.safetensors";
    if (st == SETOK_OK && setok_weights_file_count(w) == 1) {
        const char *p = setok_safetensors_path(setok_weights_file(w, 0));
        name = strrchr(p, '/') ? strrchr(p, '/') + 1 : p;
    }
    char *path = st == SETOK_OK ? setok_path_join_alloc(out_dir, name) : NULL;
    const char *meta[] = {"format", "pt", "setok_quantized", setok_dtype_name(format), NULL};
    if (st == SETOK_OK)
        st = path ? setok_safetensors_write(path, e, n, meta, err)
                  : setok_fail(err, SETOK_ERR_NOMEM, "quantize: out of memory");
    if (st == SETOK_OK)
        st = write_config_note(dir, out_dir, format, err);
    free(path);
    free(e);
    free(shapes);
    setok_weights_close(w);
    return st;
}

static void free_folders(char **dirs)
{
    for (int i = 0; dirs && dirs[i]; i++)
        free(dirs[i]);
    free(dirs);
}

/* The real path of each distinct component folder, NULL-terminated, in component order. */
static char **component_folders(const setok_model *m, const char *in_real, setok_error *err)
{
    char **dirs = calloc(SETOK_COMPONENT_COUNT + 1, sizeof *dirs);
    int n = 0;
    for (int c = 0; dirs && c < SETOK_COMPONENT_COUNT; c++) {
        if (!m->comp[c].path || c == SETOK_COMPONENT_TEXT_TOKENIZER)
            continue;
        char *real = realpath(m->comp[c].path, NULL);
        size_t k = strlen(in_real);
        if (!real || strncmp(real, in_real, k) || (real[k] && real[k] != '/')) {
            if (real)
                setok_fail(err, SETOK_ERR_INPUT, "%s: this folder lies outside %s; copy it in "
                           "first", m->comp[c].path, in_real);
            else
                setok_fail(err, SETOK_ERR_RUNTIME, "%s: %s", m->comp[c].path, strerror(errno));
            free(real);
            free_folders(dirs);
            return NULL;
        }
        bool seen = false;
        for (int e = 0; e < n; e++)
            seen |= !strcmp(dirs[e], real);
        if (seen)
            free(real);
        else
            dirs[n++] = real;
    }
    if (!dirs)
        setok_fail(err, SETOK_ERR_NOMEM, "quantize: out of memory");
    return dirs;
}

/* Loads the components stored in folder `dir` (a real path), recording the
 * matrices they quantize, and writes the folder's weights under out_real. */
static setok_status quantize_folder(setok_model *m, const char *dir, const char *in_real,
                                    const char *out_real, size_t *quantized, setok_error *err)
{
    recording r = {0};
    setok_status st = SETOK_OK;
    setok_loader_record(record, &r);
    for (int c = 0; st == SETOK_OK && c < SETOK_COMPONENT_COUNT; c++) {
        char *real = m->comp[c].path && c != SETOK_COMPONENT_TEXT_TOKENIZER
                         ? realpath(m->comp[c].path, NULL) : NULL;
        if (real && !strcmp(real, dir))
            st = model_load_component(m, (setok_component)c, err);
        free(real);
    }
    setok_loader_record(NULL, NULL);
    if (st == SETOK_OK && r.failed)
        st = setok_fail(err, SETOK_ERR_NOMEM, "quantize: out of memory");
    char *to = st == SETOK_OK ? setok_path_join_alloc(out_real, dir + strlen(in_real)) : NULL;
    if (st == SETOK_OK && !to)
        st = setok_fail(err, SETOK_ERR_NOMEM, "quantize: out of memory");
    if (st == SETOK_OK)
        st = r.count ? write_weights(dir, to, &r, m->matrix, err) : copy_weight_files(dir, to, err);
    *quantized += r.count;
    free(to);
    for (size_t i = 0; i < r.count; i++) {
        free(r.items[i].name);
        free(r.items[i].data);
    }
    free(r.items);
    return st;
}

setok_status setok_model_quantize(const char *in_dir, const char *out_dir, const char *weights,
                                  int threads, setok_quantize_progress progress, void *user,
                                  setok_error *err)
{
    setok_dtype format;
    if (!weights || !setok_dtype_from_name(weights, &format) || !setok_dtype_is_quantized(format))
        return setok_fail(err, SETOK_ERR_INPUT, "quantize: the format is q8 or q4, not %s",
                          weights ? weights : "(none)");
    setok_model_options o;
    setok_model_options_default(&o);
    o.device = "cpu";
    o.threads = threads;
    o.weights = weights;
    setok_model *m = NULL;
    setok_status st = setok_model_open(&m, in_dir, &o, err);
    if (st != SETOK_OK)
        return st;
    char *in_real = realpath(in_dir, NULL), *out_real = NULL, **dirs = NULL;
    bool made = false;
    if (!in_real)
        st = setok_fail(err, SETOK_ERR_RUNTIME, "%s: %s", in_dir, strerror(errno));
    if (st == SETOK_OK && !(made = mkdir(out_dir, 0755) == 0) && errno != EEXIST)
        st = setok_fail(err, SETOK_ERR_RUNTIME, "%s: %s", out_dir, strerror(errno));
    if (st == SETOK_OK && !(out_real = realpath(out_dir, NULL)))
        st = setok_fail(err, SETOK_ERR_RUNTIME, "%s: %s", out_dir, strerror(errno));
    if (st == SETOK_OK && !strncmp(out_real, in_real, strlen(in_real)) &&
        (out_real[strlen(in_real)] == '\0' || out_real[strlen(in_real)] == '/')) {
        st = setok_fail(err, SETOK_ERR_INPUT, "quantize: %s lies inside %s; the copy must go "
                        "to another folder", out_dir, in_dir);
        if (made)
            rmdir(out_dir);
    }
    if (st == SETOK_OK && !(dirs = component_folders(m, in_real, err)))
        st = err->status;
    copy_from = in_real;
    copy_to = out_real;
    copy_rewritten = dirs;
    copy_err = err;
    if (st == SETOK_OK && nftw(in_real, copy_entry, 16, 0) != 0)
        st = err->status != SETOK_OK ? err->status
                                     : setok_fail(err, SETOK_ERR_RUNTIME, "%s: cannot copy",
                                                  in_dir);
    size_t quantized = 0;
    int total = 0;
    while (st == SETOK_OK && dirs[total])
        total++;
    for (int i = 0; st == SETOK_OK && i < total; i++) {
        if (progress)
            progress(dirs[i][strlen(in_real)] ? dirs[i] + strlen(in_real) + 1 : ".", i, total,
                     user);
        st = quantize_folder(m, dirs[i], in_real, out_real, &quantized, err);
    }
    if (st == SETOK_OK && progress)
        progress(NULL, total, total, user);
    if (st == SETOK_OK && quantized == 0)
        st = setok_fail(err, SETOK_ERR_INPUT, "%s: no weight matrix here can be %s", in_dir,
                        weights);
    copy_rewritten = NULL;
    free_folders(dirs);
    free(in_real);
    free(out_real);
    setok_model_free(m);
    return st;
}
