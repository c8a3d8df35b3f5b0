/* file.c — replacing a file through a temporary file and a rename (file.h). */
#include "setok/file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The process's umask without changing it (umask() would race with other threads). */
static mode_t current_umask(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[128];
    unsigned mask = 022;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Umask: %o", &mask) == 1)
            break;
    if (f)
        fclose(f);
    return (mode_t)mask;
}

/* The file to replace: path, or what it links to. NULL (errno set) when out of memory. */
static char *resolve(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode)) {
        char *real = realpath(path, NULL);
        if (real)
            return real;
        /* a dangling link: its target is created */
        char target[PATH_MAX];
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n > 0) {
            target[n] = '\0';
            if (target[0] == '/')
                return strdup(target);
            char *copy = strdup(path);
            char *dir = copy ? dirname(copy) : NULL;
            char *joined = dir ? malloc(strlen(dir) + strlen(target) + 2) : NULL;
            if (joined)
                sprintf(joined, "%s/%s", dir, target);
            free(copy);
            return joined;
        }
    }
    return strdup(path);
}

setok_status setok_file_replace(const char *path, setok_file_writer write, void *user,
                                setok_error *err)
{
    if (!path || !path[0] || !write)
        return setok_fail(err, SETOK_ERR_INPUT, "setok_file_replace: no path or writer");
    char *target = resolve(path);
    char *copy = target ? strdup(target) : NULL;
    char *tmp = NULL;
    if (copy) {
        const char *dir = dirname(copy);
        const char *base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
        tmp = malloc(strlen(dir) + strlen(base) + 16);
        if (tmp)
            sprintf(tmp, "%s/.%s.XXXXXX", dir, base);
    }
    if (!tmp) {
        free(target);
        free(copy);
        return setok_fail(err, SETOK_ERR_NOMEM, "%s: out of memory", path);
    }

    setok_status status = SETOK_OK;
    int saved = 0;
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        saved = errno;
        status = setok_fail(err, SETOK_ERR_RUNTIME, "%s: cannot create a file in its folder: %s "
                            "(the file is unchanged)", path, strerror(saved));
        free(target);
        free(copy);
        free(tmp);
        return status;
    }
    /* mkostemp makes it 0600; the target's permissions (or fopen's) are wanted */
    struct stat sb;
    mode_t mode = stat(target, &sb) == 0 ? sb.st_mode & 07777 : 0666 & ~current_umask();
    FILE *f = fchmod(fd, mode) == 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        saved = errno;
        close(fd);
    } else {
        errno = 0;
        status = write(f, user, err);
        /* a failed fwrite left its errno (ENOSPC, EFBIG) and the stream's error flag */
        if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0)
            saved = errno ? errno : EIO;
        if (fclose(f) != 0 && !saved)
            saved = errno;
    }
    if (status == SETOK_OK && !saved && rename(tmp, target) != 0)
        saved = errno;
    if (status == SETOK_OK && saved) {
        status = setok_fail(err, SETOK_ERR_RUNTIME, "%s: cannot write: %s (the file is "
                            "unchanged)", path, strerror(saved));
    } else if (status != SETOK_OK && err) {
        size_t n = strlen(err->message);
        snprintf(err->message + n, sizeof err->message - n, " (the file is unchanged)");
    }
    if (status != SETOK_OK)
        unlink(tmp);
    free(target);
    free(copy);
    free(tmp);
    return status;
}
