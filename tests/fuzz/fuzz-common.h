/* fuzz-common.h — what the libFuzzer harnesses share. The loaders read paths, so each
 * harness writes its input into a private folder (on /dev/shm when there is one), made
 * once per process and removed at exit; and a one-thread CPU backend for the loaders
 * that want one. Every harness exits quietly on bad input: only crashes, hangs, leaks
 * and sanitizer reports count. */
#ifndef SETOK_FUZZ_COMMON_H
#define SETOK_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "setok/backend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The folder, "/dev/shm/setok-fuzz-XXXXXX". */
const char *fuzz_dir(void);
/* fuzz_dir()/name in a static buffer (valid until the next call). */
const char *fuzz_path(const char *name);
/* Writes data to fuzz_dir()/name (replacing it); returns the path. */
const char *fuzz_write(const char *name, const uint8_t *data, size_t size);
/* Makes fuzz_dir()/name a folder (once). */
void fuzz_mkdir(const char *name);
/* Removes fuzz_dir()/name when it exists. */
void fuzz_remove(const char *name);
setok_backend *fuzz_cpu(void);

#endif
