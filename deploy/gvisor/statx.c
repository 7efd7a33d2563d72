/* Preloaded into runsc sandboxes (deploy/setup.sh builds it as .gvisor/statx.so; hands mount it and an
 * /etc/ld.so.preload naming it): runsc 0.0~20221219 refuses statx(2) with AT_NO_AUTOMOUNT (EINVAL),
 * which coreutils 9.1 passes for every file `ls DIR`, `ls -l` and `stat` look at. The flag only
 * keeps an automount point from being mounted, and a sandbox has none, so dropping it changes nothing
 * else. No headers and no libc at link time (`cc -shared -fPIC -nostdlib`): `syscall` is the
 * sandbox's own glibc's, found when the library loads.
 */
#define AT_NO_AUTOMOUNT 0x800
#if defined(__x86_64__)
#define SYS_statx 332
#elif defined(__aarch64__)
#define SYS_statx 291
#else
#error "the statx system call's number on this architecture is not known here"
#endif

struct statx;
long syscall(long number, ...);

int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *buf) {
  return (int)syscall(SYS_statx, dirfd, path, flags & ~AT_NO_AUTOMOUNT, mask, buf);
}
