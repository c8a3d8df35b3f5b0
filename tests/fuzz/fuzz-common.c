/* fuzz-common.c — the private folder and the CPU backend the harnesses share. */
#include "fuzz-common.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];
static char path[512];
static setok_backend *cpu;

static int remove_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void cleanup(void)
{
    if (dir[0])
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    setok_backend_free(cpu);
}

const char *fuzz_dir(void)
{
    if (!dir[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/setok-fuzz-XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(dir)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(cleanup);
    }
    return dir;
}

const char *fuzz_path(const char *name)
{
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    return path;
}

const char *fuzz_write(const char *name, const uint8_t *data, size_t size)
{
    const char *p = fuzz_path(name);
    FILE *f = fopen(p, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(p);
        abort();
    }
    return p;
}

void fuzz_mkdir(const char *name)
{
    if (mkdir(fuzz_path(name), 0755) != 0 && errno != EEXIST) {
        perror(path);
        abort();
    }
}

void fuzz_remove(const char *name)
{
    remove(fuzz_path(name));
}

setok_backend *fuzz_cpu(void)
{
    if (!cpu) {
        setok_error err;
        if (setok_backend_cpu_create(&cpu, 1, &err) != SETOK_OK) {
            fprintf(stderr, "fuzz: %s\n", err.message);
            abort();
        }
        fuzz_dir(); /* its atexit frees the backend */
    }
    return cpu;
}
