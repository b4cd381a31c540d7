// SPDX-License-Identifier: GPL-2.0
/* Helpers shared by the khugepaged_rs selftests. */
#include "krs_test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/module.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *krs_module_path(void)
{
	static char path[512];
	const char *env = getenv("KHUGEPAGED_RS_KO");
	struct utsname u;
	/* Where modules_install puts it, compressed as the kernel's config says. */
	static const char * const dirs[] = { "updates", "extra" };
	static const char * const exts[] = { "", ".xz", ".zst", ".gz" };

	if (env && !access(env, R_OK))
		return env;
	if (!access("khugepaged_rs.ko", R_OK))
		return "khugepaged_rs.ko";
	if (!access("/krs/khugepaged_rs.ko", R_OK))
		return "/krs/khugepaged_rs.ko";
	if (uname(&u))
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		for (size_t j = 0; j < ARRAY_SIZE(exts); j++) {
			snprintf(path, sizeof(path), "/lib/modules/%s/%s/khugepaged_rs.ko%s",
				 u.release, dirs[i], exts[j]);
			if (!access(path, R_OK))
				return path;
		}
	}
	return NULL;
}

/* A module file the kernel must decompress (finit_module's flag). */
static bool krs_compressed(const char *path)
{
	const char *dot = strrchr(path, '.');

	return dot && (!strcmp(dot, ".xz") || !strcmp(dot, ".zst") || !strcmp(dot, ".gz"));
}

bool krs_module_loaded(void)
{
	return !access("/sys/module/" KRS_MODNAME, F_OK);
}

int krs_load(const char *params)
{
	const char *path = krs_module_path();
	int fd, ret;

	if (!path)
		return -ENOENT;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, params ? params : "",
		      krs_compressed(path) ? MODULE_INIT_COMPRESSED_FILE : 0);
	ret = ret ? -errno : 0;
	close(fd);
	return ret;
}

/*
 * Every program here needs root and the module: without either it is
 * skipped as a whole before main() runs (KTAP "1..0 # SKIP", exit status
 * KSFT_SKIP), so a kselftest runner reports SKIP, not FAIL.
 */
__attribute__((constructor)) static void krs_require_root_and_module(void)
{
	const char *why = NULL;

	if (geteuid())
		why = "not root (loading the module and debugfs need it)";
	else if (!krs_module_loaded() && !krs_module_path())
		why = "khugepaged_rs.ko is neither loaded nor found (KHUGEPAGED_RS_KO)";
	if (!why)
		return;
	ksft_print_header();
	ksft_exit_skip("%s\n", why);
}

int krs_unload(void)
{
	return syscall(SYS_delete_module, KRS_MODNAME, O_NONBLOCK) ? -errno : 0;
}

int krs_ensure_loaded(void)
{
	return krs_module_loaded() ? 0 : krs_load(NULL);
}

bool krs_mounted_type(const char *dir, char *type, size_t size)
{
	char mnt[256], fstype[64], line[1024];
	bool found = false;
	FILE *f = fopen("/proc/mounts", "re");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*s %255s %63s", mnt, fstype) == 2 && !strcmp(mnt, dir)) {
			snprintf(type, size, "%s", fstype);
			found = true;
		}
	}
	fclose(f);
	return found;
}

int krs_write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -errno;
}

int krs_sysfs_choice(const char *path, char *out, size_t size)
{
	char buf[256], *open_, *close_;
	ssize_t n = krs_read_file(path, buf, sizeof(buf));

	if (n < 0)
		return (int)n;
	open_ = strchr(buf, '[');
	close_ = open_ ? strchr(open_, ']') : NULL;
	if (!close_ || (size_t)(close_ - open_) > size)
		return -EINVAL;
	memcpy(out, open_ + 1, close_ - open_ - 1);
	out[close_ - open_ - 1] = '\0';
	return 0;
}

ssize_t krs_read_file(const char *path, char *buf, size_t size)
{
	size_t off = 0;
	ssize_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while (off + 1 < size && (n = read(fd, buf + off, size - 1 - off)) > 0)
		off += n;
	n = n < 0 ? -errno : (ssize_t)off;
	buf[off] = '\0';
	close(fd);
	return n;
}

ssize_t krs_read_kmsg(char *buf, size_t size)
{
	int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, size - 1);

	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return n;
}

int krs_as_nobody(int (*fn)(void *), void *arg)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) ||
		    setresuid(65534, 65534, 65534))
			_exit(126);
		_exit(fn(arg));
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

int krs_without_caps(uint64_t caps, int (*fn)(void *), void *arg)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (syscall(SYS_capget, &hdr, data))
			_exit(126);
		for (int i = 0; i < 2; i++) {
			data[i].effective &= ~(uint32_t)(caps >> (32 * i));
			data[i].permitted &= ~(uint32_t)(caps >> (32 * i));
		}
		if (syscall(SYS_capset, &hdr, data))
			_exit(126);
		_exit(fn(arg));
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

uint64_t krs_rand(struct krs_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

size_t krs_below(struct krs_rng *r, size_t n)
{
	return n ? krs_rand(r) % n : 0;
}

bool krs_chance(struct krs_rng *r, unsigned int percent)
{
	return krs_below(r, 100) < percent;
}

int krs_pin_page(void *page, int pipefd[2])
{
	struct iovec iov = { .iov_base = page, .iov_len = KRS_PAGE_SIZE };

	if (pipe(pipefd))
		return -errno;
	if (vmsplice(pipefd[1], &iov, 1, 0) != (ssize_t)KRS_PAGE_SIZE) {
		int err = errno ? errno : EIO;

		close(pipefd[0]);
		close(pipefd[1]);
		return -err;
	}
	return 0;
}

/* ---- collapse tests ---------------------------------------------------- */

void *krs_map_aligned(size_t len, int prot, int flags, int fd, off_t off)
{
	size_t span = len + KRS_PMD_SIZE;
	char *res, *aligned;
	void *p;
	int err;

	res = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		return MAP_FAILED;
	aligned = (char *)(((uintptr_t)res + KRS_PMD_SIZE - 1) & ~(KRS_PMD_SIZE - 1));
	p = mmap(aligned, len, prot, flags | MAP_FIXED, fd, off);
	if (p == MAP_FAILED) {
		err = errno;
		munmap(res, span);
		errno = err;
		return MAP_FAILED;
	}
	if (aligned > res)
		munmap(res, aligned - res);
	if (aligned + len < res + span)
		munmap(aligned + len, res + span - (aligned + len));
	return p;
}

unsigned long krs_user_limit(void)
{
	void *p = mmap((void *)(1UL << 48), KRS_PAGE_SIZE, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	if (p == MAP_FAILED)
		return (1UL << 47) - KRS_PAGE_SIZE;
	munmap(p, KRS_PAGE_SIZE);
	return (1UL << 56) - KRS_PAGE_SIZE;
}

int krs_unmapped_range(size_t want, unsigned long *start, size_t *len)
{
	unsigned long limit = krs_user_limit(), prev_end = KRS_PMD_SIZE, best = 0, best_len = 0;
	size_t size = 1 << 20;
	char *buf = malloc(size), *line, *save;
	bool last = false;

	if (!buf || krs_read_file("/proc/self/maps", buf, size) < 0) {
		free(buf);
		return -1;
	}
	line = strtok_r(buf, "\n", &save);
	while (!last) {
		unsigned long s, e, gs, ge;

		if (!line || sscanf(line, "%lx-%lx", &s, &e) != 2) {
			/* the gap up to the end of the address space */
			s = limit;
			e = limit;
			last = true;
		}
		gs = (prev_end + KRS_PMD_SIZE - 1) & ~(KRS_PMD_SIZE - 1);
		ge = (s < limit ? s : limit) & ~(KRS_PMD_SIZE - 1);
		if (ge > gs && ge - gs > best_len) {
			best = gs;
			best_len = ge - gs;
		}
		if (e > prev_end)
			prev_end = e;
		if (line)
			line = strtok_r(NULL, "\n", &save);
	}
	free(buf);
	if (best_len < KRS_PMD_SIZE)
		return -1;
	*start = best;
	*len = best_len < want ? best_len : (want & ~(KRS_PMD_SIZE - 1));
	return 0;
}

int krs_memfd(const char *name, size_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, size)) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

static inline uint64_t krs_pattern(unsigned int seed, size_t idx, size_t word)
{
	uint64_t v = ((uint64_t)seed << 48) ^ ((uint64_t)idx << 24) ^ word;

	return (v * 0x9e3779b97f4a7c15ULL) | 1;
}

void krs_fill_page(void *page, unsigned int seed, size_t idx)
{
	uint64_t *w = page;

	for (size_t i = 0; i < KRS_PAGE_SIZE / sizeof(*w); i++)
		w[i] = krs_pattern(seed, idx, i);
}

size_t krs_check_page(const void *page, unsigned int seed, size_t idx)
{
	const uint64_t *w = page;

	for (size_t i = 0; i < KRS_PAGE_SIZE / sizeof(*w); i++)
		if (krs_read_u64(&w[i]) != krs_pattern(seed, idx, i))
			return i + 1;
	return 0;
}

bool krs_page_is_zero(const void *page)
{
	const uint64_t *w = page;

	for (size_t i = 0; i < KRS_PAGE_SIZE / sizeof(*w); i++)
		if (krs_read_u64(&w[i]))
			return false;
	return true;
}

int krs_pwrite_page(int fd, unsigned int seed, size_t idx)
{
	uint64_t buf[KRS_PAGE_SIZE / sizeof(uint64_t)];

	krs_fill_page(buf, seed, idx);
	errno = 0;
	if (pwrite(fd, buf, sizeof(buf), idx * KRS_PAGE_SIZE) != (ssize_t)sizeof(buf))
		return errno ? -errno : -EIO;
	return 0;
}

static int krs_pread_page(int fd, size_t idx, uint64_t *buf)
{
	errno = 0;
	if (pread(fd, buf, KRS_PAGE_SIZE, idx * KRS_PAGE_SIZE) != (ssize_t)KRS_PAGE_SIZE)
		return errno ? -errno : -EIO;
	return 0;
}

int krs_pread_check(int fd, unsigned int seed, size_t idx)
{
	uint64_t buf[KRS_PAGE_SIZE / sizeof(uint64_t)];
	int ret = krs_pread_page(fd, idx, buf);

	return ret ? ret : krs_check_page(buf, seed, idx) ? 1 : 0;
}

int krs_pread_zero(int fd, size_t idx)
{
	uint64_t buf[KRS_PAGE_SIZE / sizeof(uint64_t)];
	int ret = krs_pread_page(fd, idx, buf);

	return ret ? ret : krs_page_is_zero(buf) ? 0 : 1;
}

int krs_make_file(const char *path, unsigned int seed, size_t pages, enum krs_file_state state)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int ret = 0;

	if (fd < 0)
		return -errno;
	for (size_t i = 0; i < pages && !ret; i++)
		ret = krs_pwrite_page(fd, seed, i);
	if (!ret && state != KRS_FILE_DIRTY && fsync(fd))
		ret = -errno;
	if (!ret && state == KRS_FILE_DROPPED)
		ret = -posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

int krs_reopen_ro(int fd, const char *path)
{
	if (fd < 0)
		return fd;
	close(fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int krs_make_ro_file(const char *path, unsigned int seed, size_t pages,
		     enum krs_file_state state)
{
	return krs_reopen_ro(krs_make_file(path, seed, pages, state), path);
}

long krs_smaps_kb(pid_t pid, unsigned long addr, const char *field)
{
	size_t size = 1 << 20, flen = strlen(field);
	char path[64], *buf, *line, *save;
	bool in_vma = false, found_vma = false;
	long ret = -1;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/smaps");
	buf = malloc(size);
	if (!buf)
		return -1;
	if (krs_read_file(path, buf, size) < 0) {
		free(buf);
		return -1;
	}
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long start, end;
		int n = 0;

		if (sscanf(line, "%lx-%lx %n", &start, &end, &n) == 2 && n > 0) {
			if (found_vma)
				break;
			in_vma = start <= addr && addr < end;
			found_vma = in_vma;
			if (found_vma)
				ret = -2;
			continue;
		}
		if (in_vma && !strncmp(line, field, flen) && line[flen] == ':') {
			ret = strtol(line + flen + 1, NULL, 10);
			break;
		}
	}
	free(buf);
	return ret;
}

int krs_collapse_open(void)
{
	int fd = open(KRS_COLLAPSE, O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

ssize_t krs_collapse_write(int fd, const void *buf, size_t len)
{
	ssize_t n = write(fd, buf, len);

	return n < 0 ? -errno : n;
}

ssize_t krs_collapse_cmd(int fd, const char *cmd)
{
	size_t len = strlen(cmd);
	ssize_t n;

	for (int attempt = 0; ; attempt++) {
		n = krs_collapse_write(fd, cmd, len);
		if (n != -EAGAIN || attempt == 4)
			return n;
		usleep(50 * 1000);
	}
}

ssize_t krs_collapse_report(int fd, char *buf, size_t size)
{
	size_t off = 0;
	ssize_t n = 0;

	/* The report starts at offset 0 whatever write() did to f_pos. */
	lseek(fd, 0, SEEK_SET);
	while (off + 1 < size && (n = read(fd, buf + off, size - 1 - off)) > 0)
		off += n;
	buf[off] = '\0';
	return n < 0 ? -errno : (ssize_t)off;
}

int krs_report_parse(const char *report, struct krs_extent *ext, int max, long *status)
{
	const char *line = report;
	bool have_status = false;
	int count = 0;

	while (*line) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char copy[256];
		struct krs_extent e;
		int n = 0;

		if (len >= sizeof(copy) || have_status)
			return -1;
		memcpy(copy, line, len);
		copy[len] = '\0';
		if (sscanf(copy, "extent=%u start=0x%lx pgoff=%lu result=%47s copied=%u holes=%u%n",
			   &e.index, &e.start, &e.pgoff, e.result, &e.copied, &e.holes, &n) == 6 &&
		    (size_t)n == len) {
			if (count < max)
				ext[count] = e;
			count++;
		} else if (sscanf(copy, "status=%ld%n", status, &n) == 1 && (size_t)n == len) {
			have_status = true;
		} else if (len) {
			return -1;
		}
		line += len + (nl ? 1 : 0);
	}
	return have_status ? count : -1;
}

ssize_t krs_stats_read(char *buf, size_t size)
{
	return krs_read_file(KRS_STATS, buf, size);
}

long long krs_stat(const char *stats, const char *name)
{
	size_t len = strlen(name);
	const char *line = stats;

	while (line && *line) {
		if (!strncmp(line, name, len) && line[len] == ' ')
			return strtoll(line + len + 1, NULL, 10);
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return -1;
}

/*
 * A kernel address prints as ffff8..., ffffffff8... (16 digits); a user
 * address in a report (start=0x7f...) may contain "ffff8" by chance, so look
 * at whole hex numbers: one that starts with ffff8 and is at least 12 digits
 * long, or any 16-digit one starting with ffff, or "ffffffff8" anywhere.
 */
bool krs_has_kernel_pointer(const char *s)
{
	if (strcasestr(s, "ffffffff8"))
		return true;
	while (*s) {
		size_t n = strspn(s, "0123456789abcdefABCDEF");

		if (n && ((n >= 12 && !strncasecmp(s, "ffff8", 5)) ||
			  (n >= 16 && !strncasecmp(s, "ffff", 4))))
			return true;
		s += n ? n : 1;
	}
	return false;
}

/* ---- children ---------------------------------------------------------- */

int krs_child_start(struct krs_child *c, int (*fn)(int in, int out, void *arg), void *arg)
{
	int down[2], up[2];

	if (pipe2(down, O_CLOEXEC))
		return -errno;
	if (pipe2(up, O_CLOEXEC)) {
		int err = errno;

		close(down[0]);
		close(down[1]);
		return -err;
	}
	c->pid = fork();
	if (c->pid < 0) {
		int err = errno;

		close(down[0]);
		close(down[1]);
		close(up[0]);
		close(up[1]);
		return -err;
	}
	if (c->pid == 0) {
		close(down[1]);
		close(up[0]);
		_exit(fn(down[0], up[1], arg));
	}
	close(down[0]);
	close(up[1]);
	c->to_child = down[1];
	c->from_child = up[0];
	return 0;
}

int krs_child_wait(struct krs_child *c)
{
	int status;

	if (c->to_child >= 0)
		close(c->to_child);
	if (c->from_child >= 0)
		close(c->from_child);
	c->to_child = -1;
	c->from_child = -1;
	if (c->pid <= 0)
		return -ECHILD;
	for (int i = 0; ; i++) {
		pid_t r = waitpid(c->pid, &status, WNOHANG);

		if (r < 0)
			return -errno;
		if (r == c->pid)
			break;
		if (i == 1000) {
			kill(c->pid, SIGKILL);
			waitpid(c->pid, &status, 0);
			break;
		}
		usleep(10 * 1000);
	}
	c->pid = 0;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

int krs_send(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= n;
	}
	return 0;
}

int krs_recv(int fd, void *buf, size_t len, int timeout_ms)
{
	char *p = buf;

	while (len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int r = poll(&pfd, 1, timeout_ms);
		ssize_t n;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= n;
	}
	return 0;
}

void krs_send_msg(int fd, const char *fmt, ...)
{
	char msg[KRS_MSG_SIZE] = { 0 };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	krs_send(fd, msg, sizeof(msg));
}

/* ---- userfaultfd ------------------------------------------------------- */

int krs_uffd_open(uint64_t features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api)) {
		int err = errno;

		close(fd);
		return -err;
	}
	if ((api.features & features) != features) {
		close(fd);
		return -EOPNOTSUPP;
	}
	return fd;
}

int krs_uffd_register(int uffd, void *addr, size_t len, uint64_t mode, uint64_t *ioctls)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = mode,
	};

	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		return -errno;
	if (ioctls)
		*ioctls = reg.ioctls;
	return 0;
}

int krs_uffd_setup(uint64_t features, void *addr, size_t len, uint64_t mode, const char **why)
{
	int uffd = krs_uffd_open(features), ret;

	*why = "userfaultfd with these features";
	if (uffd < 0)
		return uffd;
	ret = krs_uffd_register(uffd, addr, len, mode, NULL);
	if (ret) {
		*why = "UFFDIO_REGISTER in this mode on shmem";
		close(uffd);
		return ret;
	}
	return uffd;
}

int krs_uffd_wp(int uffd, void *addr, size_t len, bool protect)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) ? -errno : 0;
}

/* UFFDIO_RWPROTECT (7.3), declared here for older uapi headers. */
struct krs_uffdio_rwprotect {
	struct uffdio_range range;
	__u64 mode;
};

#define KRS_UFFDIO_RWPROTECT _IOWR(UFFDIO, 0x09, struct krs_uffdio_rwprotect)
#define KRS_UFFDIO_RWPROTECT_MODE_RWP 0x1ULL

int krs_uffd_rwp(int uffd, void *addr, size_t len, bool protect)
{
	struct krs_uffdio_rwprotect rwp = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = protect ? KRS_UFFDIO_RWPROTECT_MODE_RWP : 0,
	};

	return ioctl(uffd, KRS_UFFDIO_RWPROTECT, &rwp) ? -errno : 0;
}

/* One resolving ioctl; 0 or -1 with errno. */
static int krs_uffd_resolve_once(struct krs_uffd_handler *h, unsigned long page)
{
	struct uffdio_range range = { .start = page, .len = KRS_PAGE_SIZE };
	int ret = 0;

	switch (h->how) {
	case KRS_UFFD_COPY: {
		struct uffdio_copy copy = {
			.dst = page, .src = (uintptr_t)h->src, .len = KRS_PAGE_SIZE,
		};

		ret = ioctl(h->uffd, UFFDIO_COPY, &copy);
		break;
	}
	case KRS_UFFD_ZEROPAGE: {
		struct uffdio_zeropage zero = { .range = range };

		ret = ioctl(h->uffd, UFFDIO_ZEROPAGE, &zero);
		break;
	}
	case KRS_UFFD_WP_CLEAR: {
		struct uffdio_writeprotect wp = { .range = range, .mode = 0 };

		ret = ioctl(h->uffd, UFFDIO_WRITEPROTECT, &wp);
		break;
	}
	case KRS_UFFD_CONTINUE: {
		struct uffdio_continue cont = { .range = range };

		ret = ioctl(h->uffd, UFFDIO_CONTINUE, &cont);
		break;
	}
	case KRS_UFFD_RWP_CLEAR: {
		struct krs_uffdio_rwprotect rwp = { .range = range, .mode = 0 };

		ret = ioctl(h->uffd, KRS_UFFDIO_RWPROTECT, &rwp);
		break;
	}
	}
	return ret;
}

static int krs_uffd_resolve(struct krs_uffd_handler *h, unsigned long page)
{
	struct uffdio_range range = { .start = page, .len = KRS_PAGE_SIZE };
	int ret = krs_uffd_resolve_once(h, page);

	/*
	 * EAGAIN: the page table changed under the ioctl (e.g. a collapse
	 * retracted it); userspace is expected to retry.
	 */
	for (int i = 0; ret && errno == EAGAIN && i < 1000; i++) {
		usleep(1000);
		ret = krs_uffd_resolve_once(h, page);
	}
	if (ret && errno == EEXIST) {
		/* Raced with another fault on the same page: just wake it. */
		ret = ioctl(h->uffd, UFFDIO_WAKE, &range);
	}
	return ret ? errno : 0;
}

/* Make sure nothing stays blocked on this uffd once the handler gives up. */
static void krs_uffd_release(struct krs_uffd_handler *h)
{
	struct uffdio_range range = { .start = (uintptr_t)h->reg_addr, .len = h->reg_len };

	if (!h->reg_len)
		return;
	ioctl(h->uffd, UFFDIO_UNREGISTER, &range);
	ioctl(h->uffd, UFFDIO_WAKE, &range);
}

static void *krs_uffd_thread(void *arg)
{
	struct krs_uffd_handler *h = arg;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = h->uffd, .events = POLLIN },
			{ .fd = h->stop[0], .events = POLLIN },
		};
		struct uffd_msg msg;
		ssize_t n;
		int r = poll(pfd, 2, 10000);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			__atomic_store_n(&h->timed_out, r == 0, __ATOMIC_SEQ_CST);
			if (r < 0)
				__atomic_store_n(&h->error, errno, __ATOMIC_SEQ_CST);
			krs_uffd_release(h);
			return NULL;
		}
		if (pfd[1].revents)
			return NULL;
		n = read(h->uffd, &msg, sizeof(msg));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n != sizeof(msg)) {
			__atomic_store_n(&h->error, n < 0 ? errno : EIO, __ATOMIC_SEQ_CST);
			krs_uffd_release(h);
			return NULL;
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		__atomic_store_n(&h->last_addr, (unsigned long)msg.arg.pagefault.address,
				 __ATOMIC_SEQ_CST);
		__atomic_store_n(&h->last_flags, (uint64_t)msg.arg.pagefault.flags,
				 __ATOMIC_SEQ_CST);
		if (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)
			__atomic_add_fetch(&h->wp_faults, 1, __ATOMIC_SEQ_CST);
		if (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR)
			__atomic_add_fetch(&h->minor_faults, 1, __ATOMIC_SEQ_CST);
		if (msg.arg.pagefault.flags & KRS_UFFD_PAGEFAULT_FLAG_RWP)
			__atomic_add_fetch(&h->rwp_faults, 1, __ATOMIC_SEQ_CST);
		__atomic_add_fetch(&h->faults, 1, __ATOMIC_SEQ_CST);
		r = krs_uffd_resolve(h, msg.arg.pagefault.address & ~(KRS_PAGE_SIZE - 1));
		if (r) {
			__atomic_store_n(&h->error, r, __ATOMIC_SEQ_CST);
			krs_uffd_release(h);
			return NULL;
		}
	}
}

int krs_uffd_handler_start(struct krs_uffd_handler *h)
{
	int ret;

	h->faults = 0;
	h->wp_faults = 0;
	h->minor_faults = 0;
	h->rwp_faults = 0;
	h->error = 0;
	h->timed_out = false;
	if (pipe2(h->stop, O_CLOEXEC))
		return -errno;
	ret = pthread_create(&h->thread, NULL, krs_uffd_thread, h);
	if (ret) {
		close(h->stop[0]);
		close(h->stop[1]);
		return -ret;
	}
	h->running = true;
	return 0;
}

void krs_uffd_handler_stop(struct krs_uffd_handler *h)
{
	if (!h->running)
		return;
	krs_send(h->stop[1], "x", 1);
	pthread_join(h->thread, NULL);
	close(h->stop[0]);
	close(h->stop[1]);
	h->running = false;
}

/* ---- races: injection points, recording notifier, memory counters ------ */

static int krs_write_cmd(const char *path, const char *fmt, va_list ap)
{
	char cmd[256];
	int fd, len = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	ssize_t n;

	if (len < 0 || (size_t)len >= sizeof(cmd))
		return -EINVAL;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, cmd, len);
	n = n < 0 ? -errno : n == len ? 0 : -EIO;
	close(fd);
	return n;
}

int krs_inject(const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = krs_write_cmd(KRS_INJECT, fmt, ap);
	va_end(ap);
	return ret;
}

int krs_notifier(const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = krs_write_cmd(KRS_NOTIFIER, fmt, ap);
	va_end(ap);
	return ret;
}

ssize_t krs_notifier_read(char *buf, size_t size)
{
	return krs_read_file(KRS_NOTIFIER, buf, size);
}

int krs_inject_state(const char *point, struct krs_inject_state *st)
{
	char buf[4096], *line, *save;
	size_t plen = strlen(point);
	ssize_t n = krs_read_file(KRS_INJECT, buf, sizeof(buf));

	if (n < 0)
		return n;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, point, plen) || line[plen] != ' ')
			continue;
		if (sscanf(line + plen,
			   " armed=%d mode=%7s %7[a-z]=%lu ms=%u remaining=%u hits=%u waiting=%u timeouts=%u",
			   &st->armed, st->mode, st->scope_kind, &st->scope, &st->ms,
			   &st->remaining, &st->hits, &st->waiting, &st->timeouts) != 9)
			return -EINVAL;
		return 0;
	}
	return -ENOENT;
}

int krs_inject_wait_paused(const char *point, unsigned int hits, int timeout_ms,
			   const int *done)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct krs_inject_state st;
		int ret = krs_inject_state(point, &st);

		if (ret)
			return ret;
		if (st.waiting >= 1 && st.hits >= hits)
			return 0;
		if (done && __atomic_load_n(done, __ATOMIC_SEQ_CST))
			return -ECANCELED;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms)
			return -ETIMEDOUT;
		usleep(2000);
	}
}

uint64_t krs_now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000ULL + t.tv_nsec / 1000000;
}

void krs_sleep_ms(unsigned int ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&t, NULL);
}

void krs_vm_stat_refresh(void)
{
	int fd = open("/proc/sys/vm/stat_refresh", O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return;
	/* Even EINVAL (some counter was negative) has folded them. */
	n = write(fd, "1", 1);
	(void)n;
	close(fd);
}

long krs_meminfo_kb(const char *field)
{
	char buf[8192], *line, *save;
	size_t flen = strlen(field);

	if (krs_read_file("/proc/meminfo", buf, sizeof(buf)) < 0)
		return -1;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, field, flen) && line[flen] == ':')
			return strtol(line + flen + 1, NULL, 10);
	}
	return -1;
}

long krs_vmstat_sum(const char *const *names, size_t n)
{
	const size_t size = 1 << 16;
	char *buf = malloc(size);
	long sum = -1;

	if (!buf)
		return -1;
	/* One read of the file for all the names. */
	if (krs_read_file("/proc/vmstat", buf, size) > 0) {
		for (char *line = buf; line && *line;) {
			for (size_t i = 0; i < n; i++) {
				size_t len = strlen(names[i]);

				if (strncmp(line, names[i], len) || line[len] != ' ')
					continue;
				sum = (sum < 0 ? 0 : sum) + strtol(line + len + 1, NULL, 10);
			}
			line = strchr(line, '\n');
			if (line)
				line++;
		}
	}
	free(buf);
	return sum;
}

long krs_vmstat(const char *name)
{
	return krs_vmstat_sum(&name, 1);
}

static void *krs_bg_collapse_fn(void *arg)
{
	struct krs_bg_collapse *c = arg;
	int fd = krs_collapse_open();

	__atomic_store_n(&c->tid, gettid(), __ATOMIC_SEQ_CST);
	if (fd < 0) {
		c->ret = fd;
	} else {
		c->ret = krs_collapse_write(fd, c->cmd, strlen(c->cmd));
		if (krs_collapse_report(fd, c->report, sizeof(c->report)) < 0)
			c->report[0] = '\0';
		close(fd);
	}
	__atomic_store_n(&c->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

int krs_bg_collapse_start(struct krs_bg_collapse *c, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	vsnprintf(c->cmd, sizeof(c->cmd), fmt, ap);
	va_end(ap);
	c->ret = -EINPROGRESS;
	c->report[0] = '\0';
	c->done = 0;
	c->tid = 0;
	ret = pthread_create(&c->thread, NULL, krs_bg_collapse_fn, c);
	if (ret)
		return -ret;
	c->running = true;
	return 0;
}

int krs_bg_collapse_join(struct krs_bg_collapse *c, int timeout_ms)
{
	if (!c->running)
		return 0;
	for (int waited = 0; !__atomic_load_n(&c->done, __ATOMIC_SEQ_CST); waited += 2) {
		if (waited >= timeout_ms)
			return -ETIMEDOUT;
		usleep(2000);
	}
	pthread_join(c->thread, NULL);
	c->running = false;
	return 0;
}

/* The names of 7.2's enum scan_result, in order (each a line of stats). */
const char *krs_scan_names[KRS_NR_SCAN_RESULTS] = {
	"SCAN_FAIL", "SCAN_SUCCEED", "SCAN_NO_PTE_TABLE", "SCAN_PMD_MAPPED",
	"SCAN_EXCEED_NONE_PTE", "SCAN_EXCEED_SWAP_PTE", "SCAN_EXCEED_SHARED_PTE",
	"SCAN_PTE_NON_PRESENT", "SCAN_PTE_UFFD_WP", "SCAN_PTE_MAPPED_HUGEPAGE",
	"SCAN_LACK_REFERENCED_PAGE", "SCAN_PAGE_NULL", "SCAN_SCAN_ABORT", "SCAN_PAGE_COUNT",
	"SCAN_PAGE_LRU", "SCAN_PAGE_LOCK", "SCAN_PAGE_ANON", "SCAN_PAGE_LAZYFREE",
	"SCAN_PAGE_COMPOUND", "SCAN_ANY_PROCESS", "SCAN_VMA_NULL", "SCAN_VMA_CHECK",
	"SCAN_ADDRESS_RANGE", "SCAN_DEL_PAGE_LRU", "SCAN_ALLOC_HUGE_PAGE_FAIL",
	"SCAN_CGROUP_CHARGE_FAIL", "SCAN_TRUNCATED", "SCAN_PAGE_HAS_PRIVATE",
	"SCAN_STORE_FAILED", "SCAN_COPY_MC", "SCAN_PAGE_FILLED",
	"SCAN_PAGE_DIRTY_OR_WRITEBACK",
};

bool krs_kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	if (uname(&u) || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return false;
	return ma > major || (ma == major && mi >= minor);
}

/* 7.3 renamed SCAN_PTE_UFFD_WP: it stands for uffd read-write protection too. */
static void __attribute__((constructor)) krs_scan_names_init(void)
{
	if (krs_kernel_at_least(7, 3))
		krs_scan_names[KRS_SCAN_PTE_UFFD] = "SCAN_PTE_UFFD";
}

#define KRS_THP_ENABLED "/sys/kernel/mm/transparent_hugepage/enabled"

int krs_thp_madvise(char *prev, size_t size)
{
	int ret = krs_sysfs_choice(KRS_THP_ENABLED, prev, size);

	if (ret || strcmp(prev, "always")) {
		prev[0] = '\0';
		return 0;
	}
	return krs_write_str(KRS_THP_ENABLED, "madvise");
}

void krs_thp_restore(const char *prev)
{
	if (prev[0])
		krs_write_str(KRS_THP_ENABLED, prev);
}

/* ---- trace timeline ---------------------------------------------------- */

static int trace_marker_fd = -1;

/* The tracefs directory (mounted at /sys/kernel/tracing if it is not). */
static const char *trace_dir(void)
{
	static const char *const dirs[] = { "/sys/kernel/tracing", "/sys/kernel/debug/tracing" };

	for (size_t k = 0; k < ARRAY_SIZE(dirs); k++) {
		char path[96];

		snprintf(path, sizeof(path), "%s/trace_marker", dirs[k]);
		if (!access(path, W_OK))
			return dirs[k];
	}
	if (!mount("tracefs", dirs[0], "tracefs", 0, NULL))
		return dirs[0];
	return NULL;
}

static int trace_write(const char *name, const char *value)
{
	const char *dir = trace_dir();
	char path[256];

	if (!dir)
		return -ENOENT;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return krs_write_str(path, value);
}

int krs_trace_clear(void)
{
	const char *dir = trace_dir();
	char path[160];
	int fd;

	if (!dir)
		return -ENOENT;
	/* Opened with O_TRUNC: the buffer emptied. */
	snprintf(path, sizeof(path), "%s/trace", dir);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	return fd < 0 ? -errno : close(fd);
}

ssize_t krs_trace_read(char *buf, size_t size)
{
	const char *dir = trace_dir();
	char path[160];

	if (!dir)
		return -ENOENT;
	snprintf(path, sizeof(path), "%s/trace", dir);
	return krs_read_file(path, buf, size);
}

int krs_trace_setup(const char *const *events, size_t n, unsigned int buf_kb)
{
	char buf[32], path[160];
	int ret;

	snprintf(buf, sizeof(buf), "%u", buf_kb);
	ret = trace_write("buffer_size_kb", buf);
	if (!ret)
		ret = krs_trace_clear();
	for (size_t k = 0; !ret && k < n; k++) {
		const char *cond = strstr(events[k], " if ");
		int len = cond ? (int)(cond - events[k]) : (int)strlen(events[k]);

		if (cond) {
			snprintf(path, sizeof(path), "events/%.*s/filter", len, events[k]);
			ret = trace_write(path, cond + 4);
		}
		snprintf(path, sizeof(path), "events/%.*s/enable", len, events[k]);
		if (!ret)
			ret = trace_write(path, "1");
	}
	if (!ret)
		ret = trace_write("tracing_on", "1");
	return ret;
}

/* errno is kept: callers mark between a call and its errno check. */
void krs_trace_mark(const char *fmt, ...)
{
	int err = errno;
	char line[256];
	va_list ap;
	int len;

	static bool tried;

	if (trace_marker_fd < 0 && !tried) {
		const char *dir = trace_dir();
		char path[160];

		tried = true;
		if (dir) {
			snprintf(path, sizeof(path), "%s/trace_marker", dir);
			trace_marker_fd = open(path, O_WRONLY | O_CLOEXEC);
		}
	}
	if (trace_marker_fd >= 0) {
		va_start(ap, fmt);
		len = vsnprintf(line, sizeof(line), fmt, ap);
		va_end(ap);
		if (len > 0)
			krs_ignore(write(trace_marker_fd, line,
					 len < (int)sizeof(line) ? len : (int)sizeof(line) - 1));
	}
	errno = err;
}

void krs_trace_freeze(void)
{
	trace_write("tracing_on", "0");
}

void krs_trace_dump(const char *const *needles, size_t n, size_t max)
{
	const char *dir = trace_dir();
	char path[160], line[512];
	char (*ring)[512];
	size_t kept = 0;
	FILE *f;

	if (!dir)
		return;
	snprintf(path, sizeof(path), "%s/trace", dir);
	f = fopen(path, "re");
	ring = calloc(max, sizeof(*ring));
	if (!f || !ring) {
		if (f)
			fclose(f);
		free(ring);
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		for (size_t k = 0; k < n; k++) {
			if (strstr(line, needles[k])) {
				memcpy(ring[kept++ % max], line, sizeof(line));
				break;
			}
		}
	}
	fclose(f);
	dprintf(2, "# trace: the last %zu of %zu lines about the file (oldest first)\n",
		kept < max ? kept : max, kept);
	for (size_t k = kept > max ? kept - max : 0; k < kept; k++)
		dprintf(2, "# trace: %s", ring[k % max]);
	free(ring);
}

void krs_trace_teardown(const char *const *events, size_t n)
{
	char path[160];

	for (size_t k = 0; k < n; k++) {
		const char *cond = strstr(events[k], " if ");
		int len = cond ? (int)(cond - events[k]) : (int)strlen(events[k]);

		snprintf(path, sizeof(path), "events/%.*s/enable", len, events[k]);
		trace_write(path, "0");
		if (cond) {
			snprintf(path, sizeof(path), "events/%.*s/filter", len, events[k]);
			trace_write(path, "0");
		}
	}
	trace_write("buffer_size_kb", "1408");
}

const char *krs_busy_actors(void)
{
	const char *a = getenv("KRS_ACTORS");

	return a && *a && strcmp(a, "none") ? a : NULL;
}

/*
 * Whether every actor of $KRS_ACTORS has (@held) or has not its
 * acknowledgment in @dir.
 */
static bool actors_acknowledged(const char *dir, bool held)
{
	char list[256], path[320], *tok, *save;

	snprintf(list, sizeof(list), "%s", krs_busy_actors());
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		snprintf(path, sizeof(path), "%s/held-%s", dir, tok);
		if (!access(path, F_OK) != held)
			return false;
	}
	return true;
}

static int actors_wait(const char *dir, bool held, int timeout_ms)
{
	uint64_t end = krs_now_ms() + timeout_ms;

	while (!actors_acknowledged(dir, held)) {
		if (krs_now_ms() >= end)
			return -ETIMEDOUT;
		krs_sleep_ms(5);
	}
	return 0;
}

int krs_actors_hold(int timeout_ms)
{
	const char *dir = getenv("KRS_ACTORS_HOLD");
	char path[320];
	int fd, ret;

	if (!krs_busy_actors())
		return 0;
	if (!dir || !*dir)
		return -ENOENT;
	snprintf(path, sizeof(path), "%s/hold", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	close(fd);
	ret = actors_wait(dir, true, timeout_ms);
	return ret ? ret : 1;
}

int krs_actors_release(int timeout_ms)
{
	const char *dir = getenv("KRS_ACTORS_HOLD");
	char path[320];

	if (!krs_busy_actors() || !dir || !*dir)
		return 0;
	snprintf(path, sizeof(path), "%s/hold", dir);
	if (unlink(path))
		return errno == ENOENT ? 0 : -errno;
	return actors_wait(dir, false, timeout_ms);
}

pid_t krs_khugepaged_pid(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;

	while (d && !found && (e = readdir(d))) {
		char path[64], comm[32];
		pid_t pid = atoi(e->d_name);

		snprintf(path, sizeof(path), "/proc/%d/comm", pid);
		if (pid > 1 && krs_read_file(path, comm, sizeof(comm)) > 0 &&
		    !strcmp(comm, "khugepaged\n"))
			found = pid;
	}
	if (d)
		closedir(d);
	return found;
}

char krs_task_state(pid_t tid)
{
	char path[64], buf[512], *s;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
	if (krs_read_file(path, buf, sizeof(buf)) <= 0)
		return 'X';
	/* After the command's closing parenthesis: " S ...". */
	s = strrchr(buf, ')');
	return s && s[1] == ' ' && s[2] ? s[2] : '?';
}

void krs_names_add(struct krs_names *nm, const char *name)
{
	for (int i = 0; i < nm->count; i++) {
		if (!strcmp(nm->name[i], name)) {
			nm->n[i]++;
			return;
		}
	}
	if (nm->count < KRS_MAX_NAMES) {
		snprintf(nm->name[nm->count], sizeof(nm->name[0]), "%s", name);
		nm->n[nm->count++] = 1;
	}
}

void krs_names_print(const struct krs_names *nm)
{
	for (int i = 0; i < nm->count; i++)
		printf(" %s %lu", nm->name[i], nm->n[i]);
}

int krs_measure_setup(char *thp_prev, size_t size)
{
	int cfd = krs_ensure_loaded() ? -1 : krs_collapse_open();

	if (cfd < 0) {
		fprintf(stderr, "khugepaged_rs not loaded\n");
		return -1;
	}
	if (krs_thp_madvise(thp_prev, size)) {
		fprintf(stderr, "THP enabled cannot be set to madvise\n");
		close(cfd);
		return -1;
	}
	return cfd;
}

void krs_run_on(int cpu)
{
	int ncpu = get_nprocs();
	cpu_set_t set;

	CPU_ZERO(&set);
	for (int c = 0; c < ncpu; c++)
		if (cpu < 0 || c == cpu)
			CPU_SET(c, &set);
	krs_ignore(sched_setaffinity(0, sizeof(set), &set));
}
