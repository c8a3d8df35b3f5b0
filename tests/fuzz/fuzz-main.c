/* fuzz-main.c — a harness without libFuzzer: runs LLVMFuzzerTestOneInput once on each file
 * named on the command line (a folder: each file in it). The unit suite replays the seeds
 * and every input fuzzing ever broke something with (tests/unit/fuzz-regressions) this way,
 * in every build, sanitizers included. A path after --optional may be missing. Exit 0 when
 * every run returned within the memory run.sh gives libFuzzer (-rss_limit_mb). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "fuzz-common.h"

enum { RSS_LIMIT_MB = 2048 }; /* as tests/fuzz/run.sh's -rss_limit_mb */

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    size_t cap = 4096, n = 0;
    unsigned char *data = malloc(cap);
    size_t got;
    while (data && (got = fread(data + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            unsigned char *bigger = realloc(data, cap *= 2);
            if (!bigger)
                free(data);
            data = bigger;
        }
    }
    fclose(f);
    if (!data) {
        fprintf(stderr, "%s: out of memory\n", path);
        return 1;
    }
    /* a copy of exactly n bytes, so that a read past the input is caught */
    unsigned char *exact = malloc(n ? n : 1);
    if (exact)
        memcpy(exact, data, n);
    free(data);
    if (!exact)
        return 1;
    printf("%s (%zu bytes)\n", path, n);
    fflush(stdout);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0 && ru.ru_maxrss / 1024 > RSS_LIMIT_MB) {
        fprintf(stderr, "%s: the process peaked at %ld MiB, over the %d MiB fuzzing allows\n",
                path, ru.ru_maxrss / 1024, RSS_LIMIT_MB);
        return 1;
    }
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_path(const char *path, int *count)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        perror(path);
        return 1;
    }
    if (!S_ISDIR(sb.st_mode)) {
        (*count)++;
        return run_file(path);
    }
    DIR *d = opendir(path);
    if (!d) {
        perror(path);
        return 1;
    }
    char **names = NULL;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char **more = realloc(names, (n + 1) * sizeof *names);
        if (!more)
            break;
        names = more;
        names[n] = malloc(strlen(path) + strlen(e->d_name) + 2);
        if (names[n])
            sprintf(names[n++], "%s/%s", path, e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, compare_names);
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        failed |= run_path(names[i], count);
        free(names[i]);
    }
    free(names);
    return failed;
}

int main(int argc, char **argv)
{
    int failed = 0, count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (strcmp(argv[i], "--optional") == 0 && i + 1 < argc && stat(argv[++i], &sb) != 0)
            continue;
        failed |= run_path(argv[i], &count);
    }
    printf("%d inputs replayed\n", count);
    return failed;
}
