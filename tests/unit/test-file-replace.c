/* test-file-replace.c — saves that cannot lose the original (setok/file.h): a replaced file
 * gets the new bytes and keeps its permissions; a write that fails — the writer's own error,
 * the file-size limit hit halfway (what a full disk does to write(2)), PNG and safetensors
 * writers included, a folder that cannot take a new file — leaves the original byte for byte
 * and no temporary file behind; a symbolic link has its target replaced. Files are written
 * into a temporary folder. */
#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "setok/file.h"
#include "setok/image.h"
#include "setok/safetensors.h"

static char root[256];

static const char *path_in(const char *name)
{
    static char path[2][512];
    static int next;
    next ^= 1;
    snprintf(path[next], sizeof path[next], "%s/%s", root, name);
    return path[next];
}

/* The bytes of path (malloc'd, *n their count), or NULL. */
static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    unsigned char *data = malloc(size > 0 ? (size_t)size : 1);
    *n = data ? fread(data, 1, (size_t)size, f) : 0;
    fclose(f);
    return data;
}

static bool same_bytes(const char *path, const unsigned char *want, size_t n)
{
    size_t got_n = 0;
    unsigned char *got = slurp(path, &got_n);
    bool same = got && got_n == n && memcmp(got, want, n) == 0;
    free(got);
    return same;
}

/* Files in root whose name starts with '.': temporary files left behind. */
static int leftovers(void)
{
    DIR *d = opendir(root);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    return n;
}

typedef struct content {
    const unsigned char *data;
    size_t n;
    bool fail; /* the writer reports an error halfway */
} content;

static setok_status write_content(FILE *f, void *user, setok_error *err)
{
    const content *c = user;
    size_t half = c->fail ? c->n / 2 : c->n;
    if (fwrite(c->data, 1, half, f) != half)
        return SETOK_OK; /* the stream's error flag says it */
    if (c->fail)
        return setok_fail(err, SETOK_ERR_RUNTIME, "the encoder gave up");
    return SETOK_OK;
}

static unsigned char original[3000], replacement[200000];

static void write_original(const char *path)
{
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(original, 1, sizeof original, f) == sizeof original && fclose(f) == 0,
          "cannot write %s", path);
}

static void test_replace(void)
{
    const char *path = path_in("doc.bin");
    write_original(path);
    chmod(path, 0640);
    setok_error err = {0};
    content c = {replacement, 5000, false};
    CHECK(setok_file_replace(path, write_content, &c, &err) == SETOK_OK, "replace: %s",
          err.message);
    CHECK(same_bytes(path, replacement, 5000), "replaced file holds the new bytes");
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 07777) == 0640, "replaced file keeps mode 0640, "
          "has %o", (unsigned)(sb.st_mode & 07777));
    CHECK(leftovers() == 0, "no temporary file after a replace");

    mode_t old = umask(022);
    const char *fresh = path_in("new.bin");
    CHECK(setok_file_replace(fresh, write_content, &c, &err) == SETOK_OK, "create: %s",
          err.message);
    CHECK(stat(fresh, &sb) == 0 && (sb.st_mode & 07777) == 0644, "a new file gets 0666 less the "
          "umask, has %o", (unsigned)(sb.st_mode & 07777));
    umask(old);
}

static void test_writer_fails(void)
{
    const char *path = path_in("doc.bin");
    write_original(path);
    setok_error err = {0};
    content c = {replacement, 5000, true};
    setok_status st = setok_file_replace(path, write_content, &c, &err);
    CHECK(st == SETOK_ERR_RUNTIME && strstr(err.message, "the encoder gave up") &&
          strstr(err.message, "unchanged"), "a writer's error is kept: %s", err.message);
    CHECK(same_bytes(path, original, sizeof original), "the original survives a writer's error");
    CHECK(leftovers() == 0, "no temporary file after a writer's error");
}

/* The file-size limit: write(2) fails with EFBIG halfway, as it fails with ENOSPC on a full
 * disk (and unlike a full disk, it works without root or a small file system). */
static void test_disk_full(void)
{
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    struct rlimit small = {65536, old.rlim_max};
    signal(SIGXFSZ, SIG_IGN);
    const char *path = path_in("doc.bin");
    write_original(path);
    CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0, "setrlimit");
    setok_error err = {0};
    content c = {replacement, sizeof replacement, false};
    setok_status st = setok_file_replace(path, write_content, &c, &err);
    CHECK(st == SETOK_ERR_RUNTIME && strstr(err.message, "unchanged"),
          "a write past the limit fails: %s", err.message);
    CHECK(same_bytes(path, original, sizeof original), "the original survives a failed write");

    /* the PNG writer: a 256 x 256 noise image does not fit in 64 KiB */
    setok_image small_img = {0}, big = {0}, back = {0};
    const char *png = path_in("picture.png");
    setrlimit(RLIMIT_FSIZE, &old);
    setok_image_alloc(&small_img, 8, 8, 3, &err);
    setok_image_alloc(&big, 256, 256, 3, &err);
    for (int i = 0; i < 256 * 256 * 3; i++)
        big.pixels[i] = (unsigned char)(rand() >> 7);
    memset(small_img.pixels, 90, 8 * 8 * 3);
    CHECK(setok_image_save_png(&small_img, png, &err) == SETOK_OK, "png: %s", err.message);
    size_t n = 0;
    unsigned char *before = slurp(png, &n);
    setrlimit(RLIMIT_FSIZE, &small);
    st = setok_image_save_png(&big, png, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(st != SETOK_OK && strstr(err.message, "picture.png"), "png past the limit fails: %s",
          err.message);
    CHECK(before && same_bytes(png, before, n) && setok_image_load(&back, png, 0, &err) ==
          SETOK_OK && back.width == 8, "the original PNG survives a failed save");
    free(before);

    /* the safetensors writer */
    const char *st_path = path_in("weights.safetensors");
    int64_t shape[1] = {4};
    float four[4] = {1, 2, 3, 4};
    setok_st_entry e = {"w", SETOK_ST_F32, 1, shape, four};
    CHECK(setok_safetensors_write(st_path, &e, 1, NULL, &err) == SETOK_OK, "st: %s", err.message);
    before = slurp(st_path, &n);
    int64_t big_shape[1] = {sizeof replacement / 4};
    setok_st_entry be = {"w", SETOK_ST_F32, 1, big_shape, replacement};
    setrlimit(RLIMIT_FSIZE, &small);
    st = setok_safetensors_write(st_path, &be, 1, NULL, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(st == SETOK_ERR_RUNTIME, "safetensors past the limit fails: %s", err.message);
    CHECK(before && same_bytes(st_path, before, n), "the original safetensors survives");
    CHECK(leftovers() == 0, "no temporary file after failed writes");
    free(before);
    setok_image_free(&small_img);
    setok_image_free(&big);
    setok_image_free(&back);
    signal(SIGXFSZ, SIG_DFL);
}

static void test_folder_and_links(void)
{
    setok_error err = {0};
    content c = {replacement, 100, false};
    /* a link: the file it points to is replaced, the link stays */
    const char *target = path_in("target.bin"), *link = path_in("link.bin");
    write_original(target);
    CHECK(symlink("target.bin", link) == 0, "symlink");
    CHECK(setok_file_replace(link, write_content, &c, &err) == SETOK_OK, "via link: %s",
          err.message);
    struct stat sb;
    CHECK(lstat(link, &sb) == 0 && S_ISLNK(sb.st_mode), "the link is still a link");
    CHECK(same_bytes(target, replacement, 100), "the link's target holds the new bytes");

    /* a folder where the file is: nothing replaces it */
    const char *dir = path_in("folder.png");
    mkdir(dir, 0755);
    CHECK(setok_file_replace(dir, write_content, &c, &err) == SETOK_ERR_RUNTIME &&
          stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode), "a folder is not replaced: %s",
          err.message);
    CHECK(leftovers() == 0, "no temporary file after refusing a folder");

    /* a folder that takes no new file (root ignores the mode) */
    const char *ro = path_in("read-only"), *inside = path_in("read-only/doc.bin");
    mkdir(ro, 0755);
    write_original(inside);
    chmod(ro, 0555);
    if (access(ro, W_OK) == 0) {
        printf("skip read-only folder: this user writes anyway (root)\n");
    } else {
        setok_status st = setok_file_replace(inside, write_content, &c, &err);
        CHECK(st == SETOK_ERR_RUNTIME && strstr(err.message, "cannot create"),
              "read-only folder: %s", err.message);
        CHECK(same_bytes(inside, original, sizeof original), "the original in a read-only "
              "folder survives");
    }
    chmod(ro, 0755);
    CHECK(setok_file_replace(path_in("no-such-folder/x.bin"), write_content, &c, &err) ==
          SETOK_ERR_RUNTIME && strstr(err.message, "no-such-folder"), "missing folder: %s",
          err.message);
}

static int remove_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/setok-test-file-replace-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    for (size_t i = 0; i < sizeof original; i++)
        original[i] = (unsigned char)(i * 7 + 3);
    for (size_t i = 0; i < sizeof replacement; i++)
        replacement[i] = (unsigned char)(i * 13 + 1);
    test_replace();
    test_writer_fails();
    test_disk_full();
    test_folder_and_links();
    nftw(root, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
