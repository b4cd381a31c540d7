// SPDX-License-Identifier: GPL-2.0
/*
 * Reproducer of an ABBA deadlock in upstream collapse_file() (mm/khugepaged.c,
 * 7.2 and 7.3), between a folio lock and the mapping's invalidate_lock.
 * Not a kselftest: when it succeeds, two tasks stay in D state for good and
 * the VM has to be thrown away (design.rst, "Upstream notes": readahead
 * under the old folios' locks).
 *
 *   khugepaged_rs_ra_deadlock [--dir DIR] [--madvise [--tries N] [--maps M]]
 *
 * collapse_file() keeps every old folio it has isolated locked until the
 * end, and for a regular file's page missing from the page cache it calls
 * page_cache_sync_readahead(), which takes the mapping's invalidate_lock
 * shared (page_cache_ra_unbounded()). A hole punch (or a truncate) takes
 * the invalidate_lock exclusive (XFS's MMAPLOCK, ext4's
 * filemap_invalidate_lock()), then waits on each folio's lock in
 * truncate_inode_pages_range(). If it comes after the collapse locked the
 * extent's first folio and before the collapse reads a page in below EOF,
 * each waits for the other.
 *
 * The file (on DIR, default /mnt/xfs): one extent of pattern pages, synced,
 * pages 64-511 dropped from the page cache (POSIX_FADV_DONTNEED), so that
 * the collapse locks what holds pages 0-63 and then reads page 64 in.
 *
 * Default (the module, deterministic): the module mirrors collapse_file()'s
 * order (design.rst's C -> Rust table). Its collapse is paused at the
 * second scan_index (pages 0 and 1 locked and isolated, page 0 past its
 * reference count check), a child punches pages 0-31 and is seen blocked
 * (D state) on page 0's folio (having removed the unlocked ones), then the
 * pause is released: the collapse goes on to page 2, now missing, and
 * blocks in its readahead. Both stay blocked: their
 * kernel stacks are printed (function names only) and the exit status is
 * 0 ("reproduced"); 1 if the collapse or the punch completed.
 *
 * --madvise: the same against the kernel's own MADV_COLLAPSE, no injection
 * (a race, tried up to N times, default 200): the file is mapped M times
 * (default 512), so that try_to_unmap() of the first folio takes long, and
 * a child punches after a delay that sweeps the window.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "krs_test.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

#define PAGE KRS_PAGE_SIZE
#define PMD KRS_PMD_SIZE
#define SEED 4242
#define CACHED 64	/* pages 0..63 in the page cache, the rest dropped */
#define PUNCH (32 * PAGE)	/* the hole punched: pages 0..31 */

static const char *dir = "/mnt/xfs";

/* @pid's kernel stack, function names only (no addresses). */
static void print_stack(const char *who, pid_t pid)
{
	char path[64], buf[4096];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stack", pid);
	n = krs_read_file(path, buf, sizeof(buf));
	printf("# %s (pid %d, state %c):\n", who, pid, krs_task_state(pid));
	for (char *l = n > 0 ? buf : NULL, *nl; l && *l; l = nl ? nl + 1 : NULL) {
		char *f = strchr(l, ']');

		nl = strchr(l, '\n');
		if (nl)
			*nl = '\0';
		f = f ? f + 1 : l;
		while (*f == ' ')
			f++;
		printf("#     %.*s\n", (int)strcspn(f, "+"), f);
	}
}

/* The file: one extent, pages CACHED.. dropped; fd (read-only) or -1. */
static int make_file(const char *path)
{
	int fd = krs_make_file(path, SEED, PMD / PAGE, KRS_FILE_SYNCED);

	if (fd < 0) {
		printf("# %s: %s\n", path, strerror(-fd));
		return -1;
	}
	if (posix_fadvise(fd, CACHED * PAGE, PMD - CACHED * PAGE, POSIX_FADV_DONTNEED)) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * A child that punches pages 0..31 after @delay_us. A punch rather than a
 * truncate: it keeps i_size, so the collapse's readahead of a page below
 * EOF still runs (do_page_cache_ra() returns early past EOF).
 */
static pid_t punch_child(const char *path, unsigned int delay_us)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open(path, O_RDWR | O_CLOEXEC);

		if (delay_us)
			usleep(delay_us);
		_exit(fd < 0 ||
		      fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PUNCH));
	}
	return pid;
}

/*
 * Both blocked for 5 s in a row (within 20 s: under TCG the collapse takes
 * a while to get to the readahead): the deadlock.
 */
static bool both_stuck(pid_t a, pid_t b)
{
	int stuck = 0;

	for (int i = 0; i < 200 && stuck < 50; i++) {
		char sa = krs_task_state(a), sb = krs_task_state(b);

		if (sa == 'X' || sa == 'Z' || sb == 'X' || sb == 'Z')
			return false;
		stuck = sa == 'D' && sb == 'D' ? stuck + 1 : 0;
		usleep(100 * 1000);
	}
	return stuck >= 50;
}

static int with_module(const char *path)
{
	char cmd[96], report[4096];
	pid_t collapser, trunc;
	struct stat st;
	int fd, cfd, i;
	char *p;

	fd = make_file(path);
	if (fd < 0 || fstat(fd, &st))
		return 2;
	p = krs_map_aligned(PMD, PROT_READ, MAP_SHARED, fd, 0);
	cfd = krs_collapse_open();
	if (p == MAP_FAILED || cfd < 0)
		return 2;
	/*
	 * Paused at the second scan_index: page 0's folio passed its
	 * reference count check (a waiter on the folio being isolated would
	 * have made it fail SCAN_PAGE_COUNT), page 1's is locked too.
	 */
	if (krs_inject("pause=scan_index ino=%lu timeout_ms=60000 count=2",
		       (unsigned long)st.st_ino))
		return 2;
	collapser = fork();
	if (collapser == 0) {
		snprintf(cmd, sizeof(cmd), "addr=%lx len=2M", (unsigned long)p);
		_exit(krs_collapse_write(cfd, cmd, strlen(cmd)) < 0);
	}
	if (krs_inject_wait_paused("scan_index", 1, 60000, NULL) || krs_inject("release") ||
	    krs_inject_wait_paused("scan_index", 2, 60000, NULL)) {
		printf("# the collapse never paused at scan_index twice\n");
		krs_inject("release");
		return 2;
	}
	printf("# the collapse (pid %d) is paused at scan_index: pages 0 and 1 locked\n",
	       collapser);
	trunc = punch_child(path, 0);
	for (i = 0; i < 100 && krs_task_state(trunc) != 'D'; i++)
		usleep(100 * 1000);
	if (krs_task_state(trunc) != 'D') {
		printf("# the punch (pid %d) did not block on the locked folio\n", trunc);
		krs_inject("release");
		return 1;
	}
	printf("# the punch (pid %d) holds the invalidate_lock and waits on the folio lock\n",
	       trunc);
	print_stack("punch", trunc);
	krs_inject("release");
	printf("# released: the collapse goes on to pages the punch removed, and reads them in\n");
	if (!both_stuck(collapser, trunc)) {
		printf("# no deadlock: the collapse is %c, the punch %c\n",
		       krs_task_state(collapser), krs_task_state(trunc));
		if (krs_collapse_report(cfd, report, sizeof(report)) > 0)
			printf("# the collapse's report:\n%s", report);
		return 1;
	}
	print_stack("collapse", collapser);
	print_stack("punch", trunc);
	printf("# DEADLOCK reproduced: both blocked for 5 s, each on what the other holds\n");
	return 0;
}

static int with_madvise(const char *path, int tries, int maps)
{
	char **m = calloc(maps, sizeof(*m));

	if (!m)
		return 2;
	for (int t = 0; t < tries; t++) {
		/* Sweep the punch's delay over 0-5 ms in 50 us steps. */
		unsigned int delay = (t * 50) % 5000;
		pid_t collapser, trunc;
		int fd = make_file(path), status;

		if (fd < 0)
			return 2;
		for (int i = 0; i < maps; i++) {
			m[i] = mmap(NULL, PMD, PROT_READ, MAP_SHARED, fd, 0);
			if (m[i] == MAP_FAILED)
				return 2;
			/* Map pages 0..CACHED-1 in each: try_to_unmap() has work. */
			if (madvise(m[i], CACHED * PAGE, MADV_POPULATE_READ))
				return 2;
		}
		collapser = fork();
		if (collapser == 0) {
			char *p = krs_map_aligned(PMD, PROT_READ, MAP_SHARED, fd, 0);

			_exit(p == MAP_FAILED || madvise(p, PMD, MADV_COLLAPSE));
		}
		trunc = punch_child(path, delay);
		usleep(200 * 1000);
		if (krs_task_state(collapser) == 'D' && krs_task_state(trunc) == 'D' &&
		    both_stuck(collapser, trunc)) {
			print_stack("MADV_COLLAPSE", collapser);
			print_stack("punch", trunc);
			printf("# DEADLOCK reproduced against MADV_COLLAPSE in try %d %s %u us)\n",
			       t + 1, "(punch after", delay);
			return 0;
		}
		waitpid(collapser, &status, 0);
		waitpid(trunc, &status, 0);
		for (int i = 0; i < maps; i++)
			munmap(m[i], PMD);
		close(fd);
		unlink(path);
	}
	printf("# no deadlock against MADV_COLLAPSE in %d tries\n", tries);
	return 1;
}

int main(int argc, char **argv)
{
	int tries = 200, maps = 512, ret;
	bool madv = false;
	char path[256], prev[32];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
			dir = argv[++i];
		} else if (!strcmp(argv[i], "--madvise")) {
			madv = true;
		} else if (!strcmp(argv[i], "--tries") && i + 1 < argc) {
			tries = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--maps") && i + 1 < argc) {
			maps = atoi(argv[++i]);
		} else {
			fprintf(stderr, "usage: %s %s\n", argv[0],
				"[--dir DIR] [--madvise [--tries N] [--maps M]]");
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!madv && krs_ensure_loaded()) {
		fprintf(stderr, "khugepaged_rs not loaded\n");
		return 2;
	}
	if (krs_thp_madvise(prev, sizeof(prev)))
		return 2;
	snprintf(path, sizeof(path), "%s/krs_ra_deadlock.%d", dir, (int)getpid());
	unlink(path);
	printf("# %s: a hole punch against a collapse that reads pages in, on %s\n",
	       madv ? "MADV_COLLAPSE" : "khugepaged_rs", dir);
	ret = madv ? with_madvise(path, tries, maps) : with_module(path);
	/* Stuck tasks keep the old setting's restore from mattering. */
	krs_thp_restore(prev);
	return ret;
}
