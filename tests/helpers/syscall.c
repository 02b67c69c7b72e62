/* A static helper the tests run inside containers: makes raw syscalls and
 * reports what the kernel (or the seccomp filter) answered.
 *
 *   syscall NR[,ARG...] ...   one line per call: "NR ok" or "NR errno N"
 *
 * Numbers are read with strtoul base 0 (0x... accepted; -3 wraps as C would).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        long a[7] = {0};
        int n = 0;
        char *s = argv[i];
        while (n < 7 && s && *s) {
            a[n++] = (long)strtoul(s, &s, 0);
            if (*s == ',') s++;
        }
        errno = 0;
        long r = syscall(a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
        if (r == -1)
            printf("%s errno %d\n", argv[i], errno);
        else
            printf("%s ok\n", argv[i]);
        fflush(stdout); /* a later call may kill the process */
    }
    fflush(stdout);
    return 0;
}
