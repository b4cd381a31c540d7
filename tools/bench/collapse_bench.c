// SPDX-License-Identifier: GPL-2.0
/*
 * make bench, in the guest: time khugepaged_rs's collapse (a write() to
 * debugfs collapse) against the kernel's own (madvise(MADV_COLLAPSE)) on
 * identical shmem (memfd) twins, and print every timed pair as one JSON
 * object per scenario ("BENCH-JSON {...}" lines); tools/bench/report.py
 * turns them into the table, result.json and the plot on the host.
 *
 *   collapse_bench [SAMPLES [WARMUP [ONLY]]]   (defaults 30, 3, every scenario)
 *
 * ONLY: a comma-separated list of scenario keys (see scenarios[]).
 *
 * Each sample is a pair: one call on a twin built for the Rust path and one
 * on a twin built the same way for the C path, the first path alternating
 * from pair to pair. Each twin is built just before its own call (so both
 * calls see the same history: build, settle, call) and freed after it. The
 * time is CLOCK_MONOTONIC around the call(s) and nothing else. A call counts
 * only if it returned success (len / 0) and the mapping is then wholly
 * ShmemPmdMapped (FilePmdMapped for a regular file) in smaps; a pair with
 * a failed call is excluded from the figures and reported. WARMUP pairs per
 * scenario run first and are not counted, and 10 untimed full-extent pairs
 * come before the first scenario. THP "enabled" is "madvise" while it runs
 * (it was "always" in the stock kernel): khugepaged then leaves the regular
 * files alone.
 * Scenarios of more than 8 extents run fewer pairs (pairs_for(),
 * warmup_for()); the 1 GiB one runs last, as it disturbs the guest most.
 *
 * The scanner scenario times daemons, not calls: the module's scanner
 * (debugfs scan, "add pid=" of this process) and khugepaged (woken by
 * scan_sleep_millisecs=0), each with pages_to_scan=4096 and no sleep
 * between passes, from the start until every extent of the twin (64, with
 * MADV_HUGEPAGE, shmem_enabled=advise) is collapsed (the scanner's
 * extents_collapsed, khugepaged's thp_collapse_alloc, polled every 0.5 ms);
 * then the twin is touched and must be wholly PMD-mapped (both leave the
 * PMD to the next fault). khugepaged is parked (scan_sleep_millisecs of
 * ten minutes) the rest of the time.
 *
 * The floor scenario is not a pair: it times copying 512 small pages of a
 * shmem file into a huge page in user space, with the instruction the
 * kernel's copy_mc_highpage() uses here (rep movsb when the CPU has ERMS),
 * the data movement any collapse of a full extent must do.
 *
 * This is a benchmark, not a test: it asserts nothing about time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define MAXPROCS 8
#define STATUS "/sys/kernel/debug/khugepaged_rs/status"
#define SCAN "/sys/kernel/debug/khugepaged_rs/scan"
#define THP_ENABLED "/sys/kernel/mm/transparent_hugepage/enabled"
#define SHMEM_ENABLED "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
#define KHD "/sys/kernel/mm/transparent_hugepage/khugepaged"

enum path { RUST, C, NPATHS };
static const char *const path_name[NPATHS] = { "Rust", "C" };

struct scenario {
	const char *key;	/* "scenario" in the JSON */
	const char *name;	/* the table's label */
	const char *kind;	/* extent, fixed, batch_vs_calls, batch_vs_one, scale, floor, scanner */
	unsigned int extents;	/* 2 MiB extents in the Rust path's one call */
	unsigned int stride;	/* a page present every <stride> pages */
	unsigned int c_calls;	/* the C path splits the range into this many madvise() calls */
	unsigned int procs;	/* processes mapping the file, this one included */
	int premapped;		/* collapse once untimed, time the second */
	int second_vma;		/* a second shared mapping, touched */
	const char *unsupported;	/* a placeholder: skipped, with this reason */
	const char *dir;	/* a regular file in this directory, not a memfd */
};

static const struct scenario scenarios[] = {
	{ "full", "full extent (512 pages)", "extent", 1, 1, 1, 1, 0, 0, NULL },
	{ "holes", "half holes (256 pages)", "extent", 1, 2, 1, 1, 0, 0, NULL },
	{ "sparse", "sparse (16 pages)", "extent", 1, 32, 1, 1, 0, 0, NULL },
	{ "second_mapping", "2nd mapping (2 VMAs)", "extent", 1, 1, 1, 1, 0, 1, NULL },
	{ "procs8", "8 mappings in 8 processes", "extent", 1, 1, 1, 8, 0, 0, NULL },
	/*
	 * A regular file on the VM's XFS (/mnt/xfs): written a page at a time
	 * (small folios), synced (clean, so no write-back retry), in the page
	 * cache and mapped; as "full" otherwise.
	 */
	{ "xfs_file", "regular file on XFS", "extent", 1, 1, 1, 1, 0, 0, NULL, "/mnt/xfs" },
	{ "pmd_mapped", "already PMD-mapped", "fixed", 1, 1, 1, 1, 1, 0, NULL },
	{ "floor", "floor: copy 512 pages", "floor", 1, 1, 1, 1, 0, 0, NULL },
	{ "batch32_vs_calls", "32 extents vs 32 calls", "batch_vs_calls", 32, 1, 32, 1, 0, 0, NULL },
	{ "batch32_vs_one", "32 extents vs one call", "batch_vs_one", 32, 1, 1, 1, 0, 0, NULL },
	{ "scale1", "per extent, 1 (2 MiB)", "scale", 1, 1, 1, 1, 0, 0, NULL },
	{ "scale8", "per extent, 8 (16 MiB)", "scale", 8, 1, 1, 1, 0, 0, NULL },
	{ "scale64", "per extent, 64 (128 MiB)", "scale", 64, 1, 1, 1, 0, 0, NULL },
	{ "scanner", "scanner vs khugepaged, 64", "scanner", 64, 1, 1, 1, 0, 0, NULL },
	{ "scale512", "per extent, 512 (1 GiB)", "scale", 512, 1, 1, 1, 0, 0, NULL },
};
#define NSCEN (sizeof(scenarios) / sizeof(scenarios[0]))

struct twin {
	int fd;
	char *p, *p2;
	size_t len;
	pid_t kids[MAXPROCS];
	int nkids;
	int hold;		/* write end of the pipe the other processes wait on */
};

static int krs_fd = -1;

static int is_scanner(const struct scenario *sc)
{
	return !strcmp(sc->kind, "scanner");
}

static int write_str(const char *path, const char *v)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, v, strlen(v));
	n = n == (ssize_t)strlen(v) ? 0 : -errno;
	close(fd);
	return (int)n;
}

/* `name value` in the text of @path (a vmstat or a scan line); -1 if none. */
static long long stat_of(const char *path, const char *name)
{
	static char buf[1 << 16];
	size_t len = strlen(name);
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	for (char *l = buf; l && *l; l = strchr(l, '\n'), l += !!l)
		if (!strncmp(l, name, len) && l[len] == ' ')
			return strtoll(l + len + 1, NULL, 10);
	return -1;
}

static long long read_num(const char *path)
{
	char buf[64] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) <= 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return strtoll(buf, NULL, 10);
}

/* khugepaged done with its pass: full_scans unchanged for 200 ms. */
static void khugepaged_quiet(void)
{
	long long last = read_num(KHD "/full_scans");

	for (int quiet = 0, i = 0; quiet < 10 && i < 3000; i++) {
		long long now;

		usleep(20000);
		now = read_num(KHD "/full_scans");
		quiet = now == last ? quiet + 1 : 0;
		last = now;
	}
}

/* Park khugepaged (a sleep of ten minutes), once its last pass is over. */
static void khugepaged_park(void)
{
	write_str(KHD "/scan_sleep_millisecs", "600000");
	khugepaged_quiet();
}

/* Poll @name in @path every 0.5 ms until it reaches @want; 0, or -1 after 120 s. */
static int poll_until(const char *path, const char *name, long long want)
{
	for (long i = 0; i < 240000; i++) {
		if (stat_of(path, name) >= want)
			return 0;
		usleep(500);
	}
	return -1;
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/*
 * Pairs for a scenario: SAMPLES up to 8 extents, then fewer so that a
 * scenario costs about what 16 extents x SAMPLES would; at least 2, so
 * that each path goes first once.
 */
static int pairs_for(const struct scenario *sc, int samples)
{
	int n = sc->extents <= 8 ? samples : (int)(samples * 16L / sc->extents);

	return n < 2 ? 2 : n;
}

/* Warm-up pairs: WARMUP up to 8 extents, at most 1 at 32, none from 64. */
static int warmup_for(const struct scenario *sc, int warmup)
{
	if (sc->extents >= 64)
		return 0;
	return sc->extents > 8 && warmup > 1 ? 1 : warmup;
}

static void twin_free(struct twin *t)
{
	if (t->hold >= 0)
		close(t->hold);	/* the other processes see EOF and exit */
	for (int k = 0; k < t->nkids; k++)
		waitpid(t->kids[k], NULL, 0);
	if (t->p)
		munmap(t->p, t->len);
	if (t->p2)
		munmap(t->p2, t->len);
	if (t->fd >= 0)
		close(t->fd);
	memset(t, 0, sizeof(*t));
	t->fd = -1;
	t->hold = -1;
}

static void touch(const struct scenario *sc, const char *p, size_t len)
{
	volatile char sink = 0;

	for (size_t i = 0; i < len / PAGE; i += sc->stride)
		sink += p[i * PAGE];
	(void)sink;
}

/*
 * procs > 1: fork procs - 1 processes that fault every present page in
 * through the mapping they inherit (a shared file mapping's page tables are
 * not copied at fork), then wait until twin_free() closes the pipe.
 */
static int spawn_mappers(const struct scenario *sc, struct twin *t)
{
	int hold[2], ready[2];
	char c;

	if (pipe(hold) || pipe(ready))
		return -1;
	for (unsigned int k = 1; k < sc->procs; k++) {
		pid_t pid = fork();

		if (pid < 0)
			return -1;
		if (!pid) {
			close(hold[1]);
			close(ready[0]);
			touch(sc, t->p, t->len);
			if (write(ready[1], "x", 1) != 1)
				_exit(1);
			while (read(hold[0], &c, 1) > 0)
				;
			_exit(0);
		}
		t->kids[t->nkids++] = pid;
	}
	close(hold[0]);
	close(ready[1]);
	t->hold = hold[1];
	for (int k = 0; k < t->nkids; k++)
		if (read(ready[0], &c, 1) != 1) {
			close(ready[0]);
			errno = ECHILD;
			return -1;
		}
	close(ready[0]);
	return 0;
}

/*
 * A regular file in @dir, unlinked at once, holding the pattern pages of
 * @sc written a page at a time (small folios in the page cache) and synced
 * (clean); fd or -1.
 */
static int file_make(const struct scenario *sc, const char *dir, size_t len)
{
	char path[128], page[PAGE];
	int fd;

	snprintf(path, sizeof(path), "%s/krs-bench.%d", dir, getpid());
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	unlink(path);
	if (ftruncate(fd, len))
		goto fail;
	for (size_t i = 0; i < len / PAGE; i += sc->stride) {
		fill_page(page, (uint64_t)i << 32 | 1);
		if (pwrite(fd, page, PAGE, i * PAGE) != (ssize_t)PAGE)
			goto fail;
	}
	if (fsync(fd))
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

/* The smaps field that counts the twin's PMD mappings. */
static const char *pmd_key(const struct scenario *sc)
{
	return sc->dir ? "FilePmdMapped" : "ShmemPmdMapped";
}

static int twin_make(const struct scenario *sc, struct twin *t)
{
	memset(t, 0, sizeof(*t));
	t->hold = -1;
	t->len = sc->extents * PMD;
	if (sc->dir) {
		t->fd = file_make(sc, sc->dir, t->len);
		if (t->fd < 0)
			return -1;
	} else {
		t->fd = memfd_create("krs-bench", MFD_CLOEXEC);
		if (t->fd < 0 || ftruncate(t->fd, t->len))
			return -1;
	}
	t->p = map_aligned(t->fd, t->len);
	if (!t->p)
		return -1;
	if (sc->dir)
		touch(sc, t->p, t->len);
	else
		for (size_t i = 0; i < t->len / PAGE; i += sc->stride)
			fill_page(t->p + i * PAGE, (uint64_t)i << 32 | 1);
	/* The daemons' eligibility (shmem_enabled=advise), after the pages. */
	if (is_scanner(sc) && madvise(t->p, t->len, MADV_HUGEPAGE))
		return -1;
	if (sc->second_vma) {
		/* Fault every present page in through a second mapping too. */
		t->p2 = map_aligned(t->fd, t->len);
		if (!t->p2)
			return -1;
		touch(sc, t->p2, t->len);
	}
	if (sc->procs > 1 && spawn_mappers(sc, t))
		return -1;
	return 0;
}

/*
 * The scanner scenario's "call": the module's scanner on this process, or
 * khugepaged woken, until every extent of the twin is collapsed.
 */
static int daemon_collapse(const struct scenario *sc, enum path path, double *us)
{
	char cmd[64];
	long long base;
	double t0, t1;
	int ok;

	if (path == RUST) {
		base = stat_of(SCAN, "extents_collapsed");
		snprintf(cmd, sizeof(cmd), "add pid=%d", getpid());
		t0 = now_us();
		ok = base >= 0 && !write_str(SCAN, cmd) &&
		     !poll_until(SCAN, "extents_collapsed", base + sc->extents);
		t1 = now_us();
		snprintf(cmd, sizeof(cmd), "remove pid=%d", getpid());
		write_str(SCAN, cmd);
	} else {
		base = stat_of("/proc/vmstat", "thp_collapse_alloc");
		t0 = now_us();
		ok = base >= 0 && !write_str(KHD "/scan_sleep_millisecs", "0") &&
		     !poll_until("/proc/vmstat", "thp_collapse_alloc", base + sc->extents);
		t1 = now_us();
		khugepaged_park();
	}
	if (us)
		*us = t1 - t0;
	return ok ? 0 : -ETIMEDOUT;
}

static int collapse(const struct scenario *sc, enum path path, const struct twin *t, double *us)
{
	char cmd[96];
	double t0, t1;
	int ok = 1;

	if (is_scanner(sc))
		return daemon_collapse(sc, path, us);

	snprintf(cmd, sizeof(cmd), "addr=%lx len=%luM", (unsigned long)t->p, t->len >> 20);
	if (path == RUST) {
		size_t n = strlen(cmd);
		ssize_t r;

		t0 = now_us();
		r = write(krs_fd, cmd, n);
		t1 = now_us();
		ok = r == (ssize_t)n;
	} else {
		size_t step = t->len / sc->c_calls;

		t0 = now_us();
		for (unsigned int i = 0; ok && i < sc->c_calls; i++)
			ok = !madvise(t->p + i * step, step, MADV_COLLAPSE);
		t1 = now_us();
	}
	if (us)
		*us = t1 - t0;
	return ok ? 0 : -(errno ? errno : EIO);
}

/* Failure bookkeeping: counts and the first reason, per scenario and path. */
struct fails {
	int n[NPATHS];
	char why[NPATHS][160];
	int retracted[NPATHS];	/* second_vma, procs: the other mappings' page tables were removed */
};

/*
 * Sleep before each timed call. Without it the second call of a pair ran
 * ~10-60% slower than the first (the first one's deferred work still
 * running), which made the pooled ratio bimodal; see the order check.
 * Under -icount (sleep=off) it costs no host time.
 */
static const unsigned int settle_us = 20000;

/* Untimed full-extent pairs before the first scenario (unless WARMUP is 0). */
static const int settle_in_pairs = 10;

/* Where the current pair is, for failure reports. */
static int cur_pair, cur_second;

static void fail(struct fails *f, enum path path, const char *fmt, long v)
{
	char msg[96];

	if (f->n[path]++)
		return;
	snprintf(msg, sizeof(msg), fmt, v);
	snprintf(f->why[path], sizeof(f->why[path]), "%s (pair %d, this path went %s)", msg,
		 cur_pair, cur_second ? "second" : "first");
}

/*
 * One timed collapse by path on a twin built for it, verified. Returns 0
 * and the time, or -1 after recording why; exits on a twin it cannot build.
 */
static int sample(const struct scenario *sc, enum path path, double *us, struct fails *f)
{
	struct twin t;
	long want, got;
	int r, ret = -1;

	if (twin_make(sc, &t)) {
		fprintf(stderr, "bench: cannot build a twin: %s\n", strerror(errno));
		exit(2);
	}
	want = (long)(t.len >> 10);
	if (sc->premapped) {
		r = collapse(sc, path, &t, NULL);
		if (r) {
			fail(f, path, "first collapse failed: errno %ld", -r);
			goto out;
		}
	} else if ((got = smaps_kb(0, (unsigned long)t.p, pmd_key(sc))) != 0) {
		fail(f, path, "already huge before collapse (PMD-mapped %ld kB)", got);
		goto out;
	}
	/*
	 * Let deferred work of what came before (the twin's faults, the other
	 * path's collapse: RCU frees, kworkers) finish before the clock starts.
	 */
	if (settle_us)
		usleep(settle_us);
	errno = 0;
	r = collapse(sc, path, &t, us);
	if (r) {
		fail(f, path, -r == EAGAIN ? "collapse failed: errno %ld (EAGAIN)" :
			 "collapse failed: errno %ld", -r);
		goto out;
	}
	/* The daemons leave the PMD to the next fault: touch first. */
	if (is_scanner(sc))
		touch(sc, t.p, t.len);
	got = smaps_kb(0, (unsigned long)t.p, pmd_key(sc));
	if (got != want) {
		fail(f, path, "PMD-mapped %ld kB after, not the whole range", got);
		goto out;
	}
	/* Informative: the other mappings no longer map anything. */
	if (sc->second_vma && smaps_kb(0, (unsigned long)t.p2, "Rss") == 0)
		f->retracted[path]++;
	if (sc->procs > 1) {
		int all = 1;

		for (int k = 0; k < t.nkids; k++)
			all &= smaps_kb(t.kids[k], (unsigned long)t.p, "Rss") == 0;
		f->retracted[path] += all;
	}
	ret = 0;
out:
	twin_free(&t);
	return ret;
}

/* The kernel's copy_mc_to_kernel() here: rep movsb with ERMS, else memcpy(). */
static int has_erms;

static void copy_4k(char *dst, const char *src)
{
	if (has_erms) {
		size_t n = PAGE;

		asm volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
	} else {
		memcpy(dst, src, PAGE);
	}
}

/*
 * Pages between the source's start and a 2 MiB boundary. Odd, so that
 * source page i and destination page i never share a slot of QEMU's
 * direct-mapped software TLB, whatever its size (a power of two): with
 * both 2 MiB-aligned they did, and every byte of rep movsb went through
 * the slow path (the copy took 15-20 times longer under the wall clock).
 * The kernel copies between direct-map addresses that are not so aligned.
 */
#define FLOOR_SRC_SKEW 37

/*
 * One floor sample: a fresh 2 MiB memfd of small pages (filled like the
 * full-extent twin) and a fresh anonymous huge page (MADV_HUGEPAGE, faulted
 * in, checked in smaps), then the 512 page copies timed.
 */
static int floor_sample(double *us, char *why, size_t whylen)
{
	struct twin t = { .fd = -1, .hold = -1, .len = PMD };
	char *dst, *res;
	long huge;
	double t0;

	t.fd = memfd_create("krs-bench-floor", MFD_CLOEXEC);
	res = map_aligned(-1, 2 * PMD);
	if (t.fd < 0 || ftruncate(t.fd, PMD) || !res ||
	    mmap(res + FLOOR_SRC_SKEW * PAGE, PMD, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 t.fd, 0) == MAP_FAILED) {
		snprintf(why, whylen, "cannot build the source: %s", strerror(errno));
		if (res)
			munmap(res, 2 * PMD);
		twin_free(&t);
		return -1;
	}
	t.p = res + FLOOR_SRC_SKEW * PAGE;
	for (size_t i = 0; i < PAGES_PER_PMD; i++)
		fill_page(t.p + i * PAGE, (uint64_t)i << 32 | 1);
	/* twin_free() unmaps [t.p, t.p + len); the rest of the reservation here. */
	munmap(res, FLOOR_SRC_SKEW * PAGE);
	munmap(t.p + PMD, 2 * PMD - PMD - FLOOR_SRC_SKEW * PAGE);
	dst = map_aligned(-1, PMD);
	if (!dst || madvise(dst, PMD, MADV_HUGEPAGE)) {
		snprintf(why, whylen, "cannot map the huge page: %s", strerror(errno));
		twin_free(&t);
		return -1;
	}
	dst[0] = 1;
	huge = smaps_kb(0, (unsigned long)dst, "AnonHugePages");
	if (huge != (long)(PMD >> 10) && !madvise(dst, PMD, MADV_COLLAPSE))
		huge = smaps_kb(0, (unsigned long)dst, "AnonHugePages");
	if (huge != (long)(PMD >> 10)) {
		snprintf(why, whylen, "destination not a huge page (AnonHugePages %ld kB)", huge);
		munmap(dst, PMD);
		twin_free(&t);
		return -1;
	}
	usleep(settle_us);
	t0 = now_us();
	for (size_t i = 0; i < PAGES_PER_PMD; i++)
		copy_4k(dst + i * PAGE, t.p + i * PAGE);
	*us = now_us() - t0;
	if (memcmp(dst, t.p, PMD)) {
		snprintf(why, whylen, "copy differs");
		munmap(dst, PMD);
		twin_free(&t);
		return -1;
	}
	munmap(dst, PMD);
	twin_free(&t);
	return 0;
}

/* A JSON string: the text between quotes, escaped. */
static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void json_kv(const char *k, const char *v, int last)
{
	json_str(k);
	putchar(':');
	json_str(v);
	if (!last)
		putchar(',');
}

static void json_array(const char *k, const double *v, int n)
{
	printf("\"%s\":[", k);
	for (int i = 0; i < n; i++)
		printf("%s%.3f", i ? "," : "", v[i]);
	printf("],");
}

static void read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");

	buf[0] = '\0';
	if (f && fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = '\0';
	if (f)
		fclose(f);
}

/* Per-size shmem settings (mTHP) other than never/inherit, or "none". */
static void mthp(char *out, size_t len)
{
	glob_t g;
	size_t o = 0;

	out[0] = '\0';
	if (!glob("/sys/kernel/mm/transparent_hugepage/hugepages-*kB/shmem_enabled", 0, NULL, &g)) {
		for (size_t i = 0; i < g.gl_pathc; i++) {
			char buf[256], *sel, *end;
			const char *dir = strstr(g.gl_pathv[i], "hugepages-") + 10;

			read_line(g.gl_pathv[i], buf, sizeof(buf));
			if ((sel = strchr(buf, '[')) && (end = strchr(sel, ']')) &&
			    strncmp(sel, "[never]", 7) && strncmp(sel, "[inherit]", 9) && o < len) {
				*end = '\0';
				o += snprintf(out + o, len - o, "%s%.*s=%s", o ? " " : "",
					      (int)strcspn(dir, "/"), dir, sel + 1);
			}
		}
		globfree(&g);
	}
	if (!out[0])
		snprintf(out, len, "none (never/inherit)");
}

static void print_meta(const char *thp, int samples, int warmup)
{
	char buf[512], cpu[256] = "", mt[512];
	struct utsname u;
	FILE *f = fopen("/proc/cpuinfo", "r");

	while (f && fgets(buf, sizeof(buf), f))
		if (!strncmp(buf, "model name", 10)) {
			snprintf(cpu, sizeof(cpu), "%s", strchr(buf, ':') + 2);
			cpu[strcspn(cpu, "\n")] = '\0';
			break;
		}
	if (f)
		fclose(f);
	uname(&u);
	snprintf(buf, sizeof(buf), "%s %s (%s)", u.sysname, u.release, u.machine);
	printf("BENCH-JSON {\"meta\":1,");
	json_kv("kernel", buf, 0);
	json_kv("cpu", cpu, 0);
	printf("\"cpus\":%ld,", sysconf(_SC_NPROCESSORS_ONLN));
	read_line(STATUS, buf, sizeof(buf));
	json_kv("module", buf, 0);
	json_kv("shmem_enabled", thp, 0);
	mthp(mt, sizeof(mt));
	json_kv("shmem_mthp", mt, 0);
	read_line("/sys/devices/system/clocksource/clocksource0/current_clocksource", buf,
		  sizeof(buf));
	json_kv("clocksource", buf, 0);
	json_kv("floor_copy", has_erms ? "rep movsb" : "memcpy", 0);
	printf("\"samples\":%d,\"warmup\":%d,\"settle_ms\":%u}\n", samples, warmup,
	       settle_us / 1000);
}

/* The settings the scanner scenario changes, to restore. */
static char saved_sleep[32], saved_pages[32], saved_shmem[64];

static void save(const char *path, char *buf, size_t len)
{
	read_line(path, buf, len);
}

/*
 * For the scanner scenario: shmem_enabled=advise (MADV_HUGEPAGE makes the
 * twins khugepaged's), khugepaged's pages_to_scan=4096 and the scanner's
 * own (with no sleep between its passes), khugepaged parked, and this
 * process registered with khugepaged through a mapping gone again (so that
 * khugepaged always has work and sleeps its timed sleep, which a twin's
 * registration does not end). 0, or -1 when something is missing.
 */
static int daemons_setup(void)
{
	char shmem[256], *sel, *end;
	int fd;
	char *p;

	if (access(SCAN, W_OK) || access(KHD "/full_scans", R_OK))
		return -1;
	save(KHD "/scan_sleep_millisecs", saved_sleep, sizeof(saved_sleep));
	save(KHD "/pages_to_scan", saved_pages, sizeof(saved_pages));
	read_line(SHMEM_ENABLED, shmem, sizeof(shmem));
	saved_shmem[0] = '\0';
	if ((sel = strchr(shmem, '[')) && (end = strchr(sel, ']'))) {
		*end = '\0';
		snprintf(saved_shmem, sizeof(saved_shmem), "%s", sel + 1);
	}
	if (write_str(SHMEM_ENABLED, "advise") || write_str(KHD "/pages_to_scan", "4096"))
		return -1;
	khugepaged_park();
	if (write_str(SCAN, "set pages_to_scan=4096 scan_sleep_millisecs=0"))
		return -1;
	fd = memfd_create("krs-bench-anchor", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, PMD))
		return -1;
	p = map_aligned(fd, PMD);
	if (!p || madvise(p, PMD, MADV_HUGEPAGE))
		return -1;
	munmap(p, PMD);
	close(fd);
	khugepaged_quiet();
	return 0;
}

static void daemons_restore(void)
{
	write_str(SCAN, "clear");
	write_str(SCAN, "set pages_to_scan=default scan_sleep_millisecs=default");
	if (saved_shmem[0])
		write_str(SHMEM_ENABLED, saved_shmem);
	if (saved_pages[0])
		write_str(KHD "/pages_to_scan", saved_pages);
	if (saved_sleep[0])
		write_str(KHD "/scan_sleep_millisecs", saved_sleep);
}

static int selected(const char *only, const char *key)
{
	size_t k = strlen(key);

	for (const char *s = only; s && *s; s += strcspn(s, ","), s += *s == ',') {
		if (strcspn(s, ",") == k && !strncmp(s, key, k))
			return 1;
	}
	return !only || !*only;
}

static void run_floor(const struct scenario *sc, int n, int warmup)
{
	double *us = calloc(n, sizeof(*us)), t0 = now_us();
	char why[160] = "";
	int ok = 0, failed = 0;

	if (!us)
		exit(2);
	for (int i = -warmup; i < n; i++) {
		double v;

		if (floor_sample(&v, why, sizeof(why))) {
			failed++;
			continue;
		}
		if (i >= 0)
			us[ok++] = v;
	}
	printf("BENCH-JSON {");
	json_kv("scenario", sc->key, 0);
	json_kv("name", sc->name, 0);
	json_kv("kind", sc->kind, 0);
	printf("\"pairs\":%d,", n);
	json_array("floor_us", us, ok);
	printf("\"failed\":%d,", failed);
	json_kv("why", why, 0);
	printf("\"secs\":%.1f}\n", (now_us() - t0) / 1e6);
	fprintf(stderr, "bench: %-28s %d/%d ok, %.1f s\n", sc->name, ok, n, (now_us() - t0) / 1e6);
	free(us);
}

/* A scenario not run: its JSON line says why. */
static void skip(const struct scenario *sc, const char *why)
{
	printf("BENCH-JSON {");
	json_kv("scenario", sc->key, 0);
	json_kv("name", sc->name, 0);
	json_kv("kind", sc->kind, 0);
	json_kv("skipped", why, 1);
	printf("}\n");
	fprintf(stderr, "bench: %-28s skipped: %s\n", sc->name, why);
}

int main(int argc, char **argv)
{
	int samples = argc > 1 ? atoi(argv[1]) : 30, warmup = argc > 2 ? atoi(argv[2]) : 3;
	const char *only = argc > 3 ? argv[3] : NULL;
	char thp[256], flags[4096] = "";
	int empty = 0;
	FILE *f;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (samples < 1 || warmup < 0) {
		fprintf(stderr, "usage: %s [SAMPLES>=1 [WARMUP>=0 [ONLY]]]\n", argv[0]);
		return 2;
	}
	read_line("/sys/kernel/mm/transparent_hugepage/shmem_enabled", thp, sizeof(thp));
	/* Neither path may find a huge page already there. */
	if (strstr(thp, "[always]") || strstr(thp, "[force]") || strstr(thp, "[within_size]")) {
		fprintf(stderr, "shmem_enabled is '%s': shmem would be huge at fault; set never or advise\n",
			thp);
		return 2;
	}
	/* khugepaged must not collapse the regular files behind the calls. */
	read_line(THP_ENABLED, thp, sizeof(thp));
	if (strstr(thp, "[always]")) {
		f = fopen(THP_ENABLED, "w");
		if (!f || fputs("madvise", f) < 0 || fclose(f)) {
			perror(THP_ENABLED);
			return 2;
		}
	}
	krs_fd = open(COLLAPSE, O_RDWR | O_CLOEXEC);
	if (krs_fd < 0) {
		perror(COLLAPSE " (is khugepaged_rs loaded?)");
		return 2;
	}
	f = fopen("/proc/cpuinfo", "r");
	while (f && fgets(flags, sizeof(flags), f))
		if (!strncmp(flags, "flags", 5)) {
			has_erms = strstr(flags, " erms") != NULL;
			break;
		}
	if (f)
		fclose(f);
	print_meta(thp, samples, warmup);
	/*
	 * The first few collapses after boot ran up to 6 times longer (under
	 * -icount the first 5 pairs, then flat within 0.3 %): settle in with
	 * untimed full-extent pairs before any scenario.
	 */
	if (warmup) {
		struct fails wf = { 0 };
		double t0 = now_us(), t;

		for (int i = 0; i < settle_in_pairs; i++)
			for (int p = 0; p < NPATHS; p++)
				sample(&scenarios[0], p, &t, &wf);
		fprintf(stderr, "bench: settled in with %d untimed full-extent pairs, %.1f s\n",
			settle_in_pairs, (now_us() - t0) / 1e6);
	}

	for (size_t s = 0; s < NSCEN; s++) {
		const struct scenario *sc = &scenarios[s];
		int n = pairs_for(sc, samples), w = warmup_for(sc, warmup), ok = 0;
		double *us[NPATHS], t0 = now_us();
		struct fails fl = { 0 }, wf = { 0 };
		char *first;

		if (!selected(only, sc->key))
			continue;
		if (sc->dir && access(sc->dir, W_OK)) {
			skip(sc, "its filesystem is not mounted in the VM");
			continue;
		}
		if (sc->unsupported) {
			skip(sc, sc->unsupported);
			continue;
		}
		if (!strcmp(sc->kind, "floor")) {
			run_floor(sc, n, w);
			continue;
		}
		if (is_scanner(sc) && daemons_setup()) {
			skip(sc, "no khugepaged or no scan file (set-up failed)");
			continue;
		}
		us[RUST] = calloc(n, sizeof(double));
		us[C] = calloc(n, sizeof(double));
		first = calloc(n, 1);
		if (!us[RUST] || !us[C] || !first)
			return 2;
		for (int i = -w; i < n; i++) {
			struct fails *fp = i < 0 ? &wf : &fl;
			double t[NPATHS];
			int good[NPATHS];
			/* Alternate which path goes first. */
			enum path p0 = (i & 1) ? C : RUST, p1 = p0 == RUST ? C : RUST;

			cur_pair = i;
			cur_second = 0;
			good[p0] = !sample(sc, p0, &t[p0], fp);
			cur_second = 1;
			good[p1] = !sample(sc, p1, &t[p1], fp);
			if (i < 0 || !good[RUST] || !good[C])
				continue;
			us[RUST][ok] = t[RUST];
			us[C][ok] = t[C];
			first[ok] = p0 == RUST;
			ok++;
		}
		empty |= !ok;
		printf("BENCH-JSON {");
		json_kv("scenario", sc->key, 0);
		json_kv("name", sc->name, 0);
		json_kv("kind", sc->kind, 0);
		printf("\"extents\":%u,\"c_calls\":%u,\"pairs\":%d,\"warmup\":%d,", sc->extents,
		       sc->c_calls, n, w);
		json_array("rust_us", us[RUST], ok);
		json_array("c_us", us[C], ok);
		printf("\"rust_first\":[");
		for (int i = 0; i < ok; i++)
			printf("%s%d", i ? "," : "", first[i]);
		printf("],\"failed_c\":%d,\"failed_rust\":%d,", fl.n[C], fl.n[RUST]);
		json_kv("why_c", fl.why[C], 0);
		json_kv("why_rust", fl.why[RUST], 0);
		printf("\"warmup_failed\":%d,", wf.n[C] + wf.n[RUST]);
		if (sc->second_vma || sc->procs > 1)
			printf("\"retracted_c\":%d,\"retracted_rust\":%d,", fl.retracted[C],
			       fl.retracted[RUST]);
		printf("\"secs\":%.1f}\n", (now_us() - t0) / 1e6);
		fprintf(stderr, "bench: %-28s %d/%d pairs ok, %.1f s%s\n", sc->name, ok, n,
			(now_us() - t0) / 1e6, wf.n[RUST] + wf.n[C] ? " (warm-up had failures)" : "");
		for (int p = 0; p < NPATHS; p++)
			if (fl.n[p])
				fprintf(stderr, "bench: %s, %s: %d failed, first: %s\n", sc->name,
					path_name[p], fl.n[p], fl.why[p]);
		free(us[RUST]);
		free(us[C]);
		free(first);
		if (is_scanner(sc))
			daemons_restore();
	}
	printf("BENCH-JSON {\"end\":1}\n");
	/* Failures are reported; only a scenario with no figure fails the run. */
	return empty ? 1 : 0;
}
