/* A test-only LD_PRELOAD library: while the file named by
 * TALON_TEST_FDATASYNC_FLAG exists, each fdatasync() first sleeps
 * TALON_TEST_FDATASYNC_DELAY_MS milliseconds, as a slow disk would. The
 * e2e tests use it to hold sync audit records for a known time. */
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int fdatasync(int fd)
{
    static int (*real_fdatasync)(int);
    const char *flag = getenv("TALON_TEST_FDATASYNC_FLAG");
    const char *delay = getenv("TALON_TEST_FDATASYNC_DELAY_MS");

    if (real_fdatasync == NULL)
        real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    if (flag != NULL && delay != NULL && access(flag, F_OK) == 0) {
        long ms = atol(delay);
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

        nanosleep(&ts, NULL);
    }
    return real_fdatasync(fd);
}
