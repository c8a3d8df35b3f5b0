/* test-bundle.c — the SETOKIM manifest reader (engine/io/bundle.c): a valid
 * manifest and its defaults, then malformed ones, each refused with
 * SETOK_ERR_INPUT and a message naming setokim.json and the key. Bundles are
 * written into a temporary folder. */
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "setok/bundle.h"

static char root[1024]; /* short enough that every path built from it fits */

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX];
    FILE *f = NULL;
    if (snprintf(path, sizeof path, "%s/%s", dir, name) < (int)sizeof path)
        f = fopen(path, "w");
    CHECK(f != NULL, "cannot write %s/%s", dir, name);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* root/NAME with the components vision/ setok/ llm/ projector_in/ and setokim.json = text. */
static const char *make_bundle(const char *name, const char *text)
{
    static char dir[2048];
    bool ok = snprintf(dir, sizeof dir, "%s/%s", root, name) < (int)sizeof dir &&
              mkdir(dir, 0700) == 0;
    static const char *const subs[] = {"vision", "setok", "llm", "projector_in"};
    for (size_t i = 0; ok && i < 4; i++) {
        char sub[PATH_MAX];
        ok = snprintf(sub, sizeof sub, "%s/%s", dir, subs[i]) < (int)sizeof sub &&
             mkdir(sub, 0700) == 0;
    }
    CHECK(ok, "cannot create the bundle %s", dir);
    write_file(dir, "setokim.json", text);
    write_file(dir, "plain", "not a folder");
    return dir;
}

static void check_valid(void)
{
    const char *dir = make_bundle("valid",
        "{\"format\": \"setokim\", \"version\": 1, \"components\": {\"vision\": \"vision\", "
        "\"setok\": \"./setok/\", \"llm\": \"llm\", \"projector_in\": \"projector_in\", "
        "\"future_part\": \"elsewhere\"}, \"image_size\": 128, \"vision_feature_layer\": -2, "
        "\"special_tokens\": {\"image_start\": \"<img>\"}, \"system_prompt\": \"Be brief.\"}");
    setok_bundle b;
    setok_error err = {0};
    setok_status st = setok_bundle_load(&b, dir, &err);
    CHECK(st == SETOK_OK, "valid manifest: %s", err.message);
    CHECK(setok_bundle_is_bundle(dir), "setok_bundle_is_bundle");
    if (st == SETOK_OK) {
        char want[PATH_MAX];
        snprintf(want, sizeof want, "%s/llm", dir);
        CHECK(b.components[SETOK_BUNDLE_LLM] && !strcmp(b.components[SETOK_BUNDLE_LLM], want),
              "llm path %s", b.components[SETOK_BUNDLE_LLM]);
        CHECK(!b.components[SETOK_BUNDLE_PROJECTOR_OUT], "projector_out not listed");
        CHECK(b.version == 1 && b.image_size == 128 && b.vision_feature_layer == -2,
              "version %d, image_size %d, layer %d", b.version, b.image_size,
              b.vision_feature_layer);
        CHECK(!strcmp(b.image_token, "<image>") && !strcmp(b.image_start, "<img>") &&
              !strcmp(b.image_end, "[/Img]"), "special tokens %s %s %s", b.image_token,
              b.image_start, b.image_end);
        CHECK(!strcmp(b.system_prompt, "Be brief."), "system prompt '%s'", b.system_prompt);
        const char *path = NULL;
        st = setok_bundle_require(&b, SETOK_BUNDLE_PROJECTOR_OUT, "generation", &path, &err);
        CHECK(st == SETOK_ERR_INPUT && strstr(err.message, "setokim.json") &&
              strstr(err.message, "projector_out") && strstr(err.message, "generation"),
              "require a missing component: %s", err.message);
        st = setok_bundle_require(&b, SETOK_BUNDLE_VISION, "chat", &path, &err);
        CHECK(st == SETOK_OK && path == b.components[SETOK_BUNDLE_VISION], "require vision");
    }
    setok_bundle_free(&b);

    dir = make_bundle("minimal", "{\"format\": \"setokim\", \"version\": 1, "
                                 "\"components\": {}}");
    st = setok_bundle_load(&b, dir, &err);
    CHECK(st == SETOK_OK && b.image_size == 0 && b.vision_feature_layer == -1 &&
          !strcmp(b.system_prompt, "") && !strcmp(b.image_end, "[/Img]"),
          "defaults: %s", err.message);
    CHECK(!b.domain_kind && !b.card_summary && b.n_metrics == 0 && b.n_questions == 0,
          "no domain and no card unless stated");
    setok_bundle_free(&b);

    dir = make_bundle("card",
        "{\"format\": \"setokim\", \"version\": 1, \"components\": {}, "
        "\"domain\": {\"kind\": \"synthetic-shapes\", \"suggest\": \"a LLaVA folder\"}, "
        "\"card\": {\"summary\": \"Small.\", \"metrics\": [{\"name\": \"qa\", "
        "\"label\": \"Answers\", \"value\": 0.5, \"unit\": \"fraction\"}, {\"name\": \"t\", "
        "\"label\": \"Time\", \"value\": 12}], \"questions\": [{\"kind\": \"count\", "
        "\"example\": \"how many objects are there?\"}]}}");
    st = setok_bundle_load(&b, dir, &err);
    CHECK(st == SETOK_OK, "domain and card: %s", err.message);
    if (st == SETOK_OK) {
        CHECK(!strcmp(b.domain_kind, "synthetic-shapes") && !b.domain_description &&
              !strcmp(b.domain_suggest, "a LLaVA folder"), "domain read");
        CHECK(!strcmp(b.card_summary, "Small.") && b.n_metrics == 2 &&
              !strcmp(b.metrics[0].unit, "fraction") && b.metrics[0].value == 0.5 &&
              !strcmp(b.metrics[1].label, "Time") && !strcmp(b.metrics[1].unit, ""),
              "card metrics read");
        CHECK(b.n_questions == 1 && !strcmp(b.questions[0].kind, "count") &&
              !strcmp(b.questions[0].example, "how many objects are there?"),
              "card questions read");
    }
    setok_bundle_free(&b);
}

static void check_malformed(void)
{
    static const struct {
        const char *name, *text, *needle;
    } cases[] = {
        {"bad_json", "{\"format\": \"setokim\",", "invalid JSON"},
        {"not_object", "[1, 2]", "top level"},
        {"no_format", "{\"version\": 1, \"components\": {}}", "format"},
        {"wrong_format", "{\"format\": \"llava\", \"version\": 1, \"components\": {}}", "format"},
        {"no_version", "{\"format\": \"setokim\", \"components\": {}}", "version"},
        {"version_2", "{\"format\": \"setokim\", \"version\": 2, \"components\": {}}",
         "version 2"},
        {"no_components", "{\"format\": \"setokim\", \"version\": 1}", "components"},
        {"components_array", "{\"format\": \"setokim\", \"version\": 1, \"components\": []}",
         "components"},
        {"path_number", "{\"format\": \"setokim\", \"version\": 1, \"components\": "
                        "{\"vision\": 3}}", "components.vision"},
        {"path_empty", "{\"format\": \"setokim\", \"version\": 1, \"components\": "
                       "{\"llm\": \"\"}}", "components.llm"},
        {"path_absolute", "{\"format\": \"setokim\", \"version\": 1, \"components\": "
                          "{\"llm\": \"/tmp\"}}", "components.llm"},
        {"path_dotdot", "{\"format\": \"setokim\", \"version\": 1, \"components\": "
                        "{\"setok\": \"setok/../../x\"}}", "components.setok"},
        {"path_missing", "{\"format\": \"setokim\", \"version\": 1, \"components\": "
                         "{\"vae\": \"vae\"}}", "components.vae"},
        {"path_file", "{\"format\": \"setokim\", \"version\": 1, \"components\": "
                      "{\"unet\": \"plain\"}}", "components.unet"},
        {"path_link_out", "{\"format\": \"setokim\", \"version\": 1, \"components\": "
                          "{\"mapper\": \"link\"}}", "components.mapper"},
        {"image_size_zero", "{\"format\": \"setokim\", \"version\": 1, \"components\": {}, "
                            "\"image_size\": 0}", "image_size"},
        {"layer_string", "{\"format\": \"setokim\", \"version\": 1, \"components\": {}, "
                         "\"vision_feature_layer\": \"-1\"}", "vision_feature_layer"},
        {"special_array", "{\"format\": \"setokim\", \"version\": 1, \"components\": {}, "
                          "\"special_tokens\": [\"<image>\"]}", "special_tokens"},
        {"special_empty", "{\"format\": \"setokim\", \"version\": 1, \"components\": {}, "
                          "\"special_tokens\": {\"image\": \"\"}}", "special_tokens.image"},
        {"prompt_number", "{\"format\": \"setokim\", \"version\": 1, \"components\": {}, "
                          "\"system_prompt\": 7}", "system_prompt"},
        {"domain_string", "{\"format\": \"setokim\", \"version\": 1, \"components\": {}, "
                          "\"domain\": \"shapes\"}", "domain"},
        {"domain_no_kind", "{\"format\": \"setokim\", \"version\": 1, \"components\": {}, "
                           "\"domain\": {\"suggest\": \"x\"}}", "domain.kind"},
        {"domain_empty", "{\"format\": \"setokim\", \"version\": 1, \"components\": {}, "
                         "\"domain\": {\"kind\": \"\"}}", "domain.kind"},
        {"card_summary", "{\"format\": \"setokim\", \"version\": 1, \"components\": {}, "
                         "\"card\": {\"summary\": 3}}", "card.summary"},
        {"metrics_object", "{\"format\": \"setokim\", \"version\": 1, \"components\": {}, "
                           "\"card\": {\"metrics\": {}}}", "card.metrics"},
        {"metric_value", "{\"format\": \"setokim\", \"version\": 1, \"components\": {}, "
                         "\"card\": {\"metrics\": [{\"name\": \"a\", \"label\": \"A\", "
                         "\"value\": \"50%\"}]}}", "card.metrics[0].value"},
        {"metric_unit", "{\"format\": \"setokim\", \"version\": 1, \"components\": {}, "
                        "\"card\": {\"metrics\": [{\"name\": \"a\", \"label\": \"A\", "
                        "\"value\": 1, \"unit\": \"%\"}]}}", "card.metrics[0].unit"},
        {"question_example", "{\"format\": \"setokim\", \"version\": 1, \"components\": "
                             "{}, \"card\": {\"questions\": [{\"kind\": \"count\"}]}}",
         "card.questions[0].example"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *dir = make_bundle(cases[i].name, cases[i].text);
        if (!strcmp(cases[i].name, "path_link_out")) {
            char link[PATH_MAX];
            CHECK(snprintf(link, sizeof link, "%s/link", dir) < (int)sizeof link &&
                  symlink(root, link) == 0, "symlink %s", link);
        }
        setok_bundle b;
        setok_error err = {0};
        setok_status st = setok_bundle_load(&b, dir, &err);
        CHECK(st == SETOK_ERR_INPUT && strstr(err.message, "setokim.json") &&
              strstr(err.message, cases[i].needle), "%s: status %d, '%s'", cases[i].name, st,
              err.message);
        setok_bundle_free(&b);
    }
    CHECK(!setok_bundle_is_bundle(root), "a folder without setokim.json is no bundle");
}

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/test-bundle-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(root)) {
        printf("FAIL cannot create a temporary folder\n");
        return 1;
    }
    check_valid();
    check_malformed();
    nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
