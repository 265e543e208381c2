/* LD_PRELOAD shim for the chaos suites: fsync() and fdatasync() first sleep for the
 * milliseconds written in the file that CHAOS_FSYNC_DELAY_FILE names, read on every call
 * (missing, empty or 0: no delay), so a fault can slow a running process's fsyncs and
 * restore them. Built by chaos/slowfsync.py with the C compiler. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void delay(void) {
    const char *path = getenv("CHAOS_FSYNC_DELAY_FILE");
    if (path == NULL) return;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char text[32] = {0};
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    long ms = n > 0 ? strtol(text, NULL, 10) : 0;
    if (ms <= 0) return;
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
}

int fsync(int fd) {
    static int (*real)(int);
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    delay();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    delay();
    return real(fd);
}
