// SPDX-License-Identifier: GPL-2.0
/* Helpers shared by the khugepaged_rs selftests. */
#include "krs_test.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

const char *krs_module_path(void)
{
	static char path[512];
	const char *env = getenv("KHUGEPAGED_RS_KO");
	struct utsname u;
	const char *dirs[] = { "extra", "updates" };

	if (env && !access(env, R_OK))
		return env;
	if (!access("khugepaged_rs.ko", R_OK))
		return "khugepaged_rs.ko";
	if (!access("/krs/khugepaged_rs.ko", R_OK))
		return "/krs/khugepaged_rs.ko";
	if (uname(&u))
		return NULL;
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "/lib/modules/%s/%s/khugepaged_rs.ko", u.release, dirs[i]);
		if (!access(path, R_OK))
			return path;
	}
	return NULL;
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
	ret = syscall(SYS_finit_module, fd, params ? params : "", 0);
	ret = ret ? -errno : 0;
	close(fd);
	return ret;
}

int krs_unload(void)
{
	return syscall(SYS_delete_module, KRS_MODNAME, O_NONBLOCK) ? -errno : 0;
}

int krs_ensure_loaded(void)
{
	return krs_module_loaded() ? 0 : krs_load(NULL);
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
