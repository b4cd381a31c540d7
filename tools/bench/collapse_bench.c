// SPDX-License-Identifier: GPL-2.0
/*
 * make bench, in the guest: time khugepaged_rs's collapse (a write() to
 * debugfs collapse) against the kernel's own (madvise(MADV_COLLAPSE)) on
 * identical shmem (memfd) twins, and print a table.
 *
 *   collapse_bench [SAMPLES [WARMUP]]      (defaults 30 and 3)
 *
 * Each sample is a pair: two memfds built the same way (twin R for Rust,
 * twin C for C), then one timed call on each, the first path alternating
 * from pair to pair. The time is CLOCK_MONOTONIC around the single write()
 * or madvise() call, nothing else. A call counts only if it returned
 * success (len / 0) and the mapping is then wholly ShmemPmdMapped in smaps;
 * a pair with a failed call is excluded from the figures and reported.
 * WARMUP pairs per scenario run first and are not counted.
 *
 * This is a benchmark, not a test: it asserts nothing about time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define PAGE 4096UL
#define PMD (2UL << 20)
#define PAGES_PER_PMD (PMD / PAGE)
#define COLLAPSE "/sys/kernel/debug/khugepaged_rs/collapse"
#define STATUS "/sys/kernel/debug/khugepaged_rs/status"

enum path { RUST, C, NPATHS };
static const char *const path_name[NPATHS] = { "Rust", "C" };

struct scenario {
	const char *name;
	unsigned int extents;	/* 2 MiB extents in the one call */
	unsigned int stride;	/* a page present every <stride> pages */
	int premapped;		/* collapse once untimed, time the second */
	int second_vma;		/* a second shared mapping, touched */
};

static const struct scenario scenarios[] = {
	{ "full extent (512 pages)", 1, 1, 0, 0 },
	{ "half holes (256 pages)", 1, 2, 0, 0 },
	{ "sparse (16 pages)", 1, 32, 0, 0 },
	{ "already PMD-mapped", 1, 1, 1, 0 },
	{ "8 extents (16 MiB)", 8, 1, 0, 0 },
	{ "2nd mapping (2 VMAs)", 1, 1, 0, 1 },
};
#define NSCEN (sizeof(scenarios) / sizeof(scenarios[0]))

struct twin {
	int fd;
	char *p, *p2;
	size_t len;
};

static int krs_fd = -1;

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* A shared mapping of fd at a 2 MiB-aligned address. */
static char *map_aligned(int fd, size_t len)
{
	size_t span = len + PMD;
	char *res, *a, *p;

	res = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		return NULL;
	a = (char *)(((uintptr_t)res + PMD - 1) & ~(PMD - 1));
	p = mmap(a, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED) {
		munmap(res, span);
		return NULL;
	}
	if (a > res)
		munmap(res, a - res);
	if (a + len < res + span)
		munmap(a + len, res + span - (a + len));
	return p;
}

/* One smaps field (kB) of the VMA holding addr; -1 if not found. */
static long smaps_kb(unsigned long addr, const char *field)
{
	static char buf[1 << 16];
	size_t flen = strlen(field), n = 0;
	int fd = open("/proc/self/smaps", O_RDONLY), in = 0;
	ssize_t r;
	char *line, *save;

	if (fd < 0)
		return -1;
	while (n < sizeof(buf) - 1 && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += r;
	close(fd);
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long s, e;
		int k = 0;

		if (sscanf(line, "%lx-%lx %n", &s, &e, &k) == 2 && k > 0) {
			if (in)
				break;
			in = s <= addr && addr < e;
		} else if (in && !strncmp(line, field, flen) && line[flen] == ':') {
			return strtol(line + flen + 1, NULL, 10);
		}
	}
	return -1;
}

static void twin_free(struct twin *t)
{
	if (t->p)
		munmap(t->p, t->len);
	if (t->p2)
		munmap(t->p2, t->len);
	if (t->fd >= 0)
		close(t->fd);
	memset(t, 0, sizeof(*t));
	t->fd = -1;
}

static int twin_make(const struct scenario *sc, struct twin *t)
{
	memset(t, 0, sizeof(*t));
	t->len = sc->extents * PMD;
	t->fd = memfd_create("krs-bench", MFD_CLOEXEC);
	if (t->fd < 0 || ftruncate(t->fd, t->len))
		return -1;
	t->p = map_aligned(t->fd, t->len);
	if (!t->p)
		return -1;
	for (size_t i = 0; i < t->len / PAGE; i += sc->stride)
		memset(t->p + i * PAGE, (int)(i & 0x7f) | 1, PAGE);
	if (sc->second_vma) {
		/* Fault every present page in through a second mapping too. */
		volatile char sink = 0;

		t->p2 = map_aligned(t->fd, t->len);
		if (!t->p2)
			return -1;
		for (size_t i = 0; i < t->len / PAGE; i += sc->stride)
			sink += t->p2[i * PAGE];
		(void)sink;
	}
	return 0;
}

static int collapse(enum path path, const struct twin *t, double *us)
{
	char cmd[96];
	double t0, t1;
	int ok;

	snprintf(cmd, sizeof(cmd), "addr=%lx len=%luM", (unsigned long)t->p, t->len >> 20);
	if (path == RUST) {
		size_t n = strlen(cmd);
		ssize_t r;

		t0 = now_us();
		r = write(krs_fd, cmd, n);
		t1 = now_us();
		ok = r == (ssize_t)n;
	} else {
		int r;

		t0 = now_us();
		r = madvise(t->p, t->len, MADV_COLLAPSE);
		t1 = now_us();
		ok = r == 0;
	}
	if (us)
		*us = t1 - t0;
	return ok ? 0 : -(errno ? errno : EIO);
}

/* Failure bookkeeping: counts and the first reason, per scenario and path. */
struct fails {
	int n[NPATHS];
	char why[NPATHS][160];
	int retracted[NPATHS];	/* second_vma: its page table was removed */
};

/*
 * Sleep before each timed call. Without it the second call of a pair ran
 * ~10-60% slower than the first (the first one's deferred work still
 * running), which made the pooled ratio bimodal; see the order check.
 */
static const unsigned int settle_us = 20000;

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
 * One timed collapse of t by path, verified. Returns 0 and the time, or
 * -1 after recording why.
 */
static int sample(const struct scenario *sc, enum path path, struct twin *t, double *us,
		  struct fails *f)
{
	long want = (long)(t->len >> 10), got;
	int r;

	if (sc->premapped) {
		r = collapse(path, t, NULL);
		if (r)
			return fail(f, path, "first collapse failed: errno %ld", -r), -1;
	} else if ((got = smaps_kb((unsigned long)t->p, "ShmemPmdMapped")) != 0) {
		return fail(f, path, "already huge before collapse (ShmemPmdMapped %ld kB)", got), -1;
	}
	/*
	 * Let deferred work of what came before (the twins' faults, the other
	 * path's collapse: RCU frees, kworkers) finish before the clock starts.
	 */
	if (settle_us)
		usleep(settle_us);
	errno = 0;
	r = collapse(path, t, us);
	if (r)
		return fail(f, path, -r == EAGAIN ? "collapse failed: errno %ld (EAGAIN)" :
				     "collapse failed: errno %ld", -r), -1;
	got = smaps_kb((unsigned long)t->p, "ShmemPmdMapped");
	if (got != want)
		return fail(f, path, "ShmemPmdMapped %ld kB after, not the whole range", got), -1;
	/* Informative: the other mapping no longer maps anything. */
	if (sc->second_vma && smaps_kb((unsigned long)t->p2, "Rss") == 0)
		f->retracted[path]++;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Quantile q of sorted v, interpolated. */
static double quantile(const double *v, int n, double q)
{
	double k = q * (n - 1);
	int i = (int)k;

	return i + 1 < n ? v[i] + (k - i) * (v[i + 1] - v[i]) : v[n - 1];
}

static void print_file_line(const char *label, const char *path, int lines)
{
	char buf[4096];
	FILE *f = fopen(path, "r");

	if (!f) {
		printf("%s: (%s unreadable)\n", label, path);
		return;
	}
	while (lines-- > 0 && fgets(buf, sizeof(buf), f)) {
		buf[strcspn(buf, "\n")] = '\0';
		printf("%s: %s\n", label, buf);
	}
	fclose(f);
}

/* Per-size shmem settings (mTHP) other than never/inherit, or "none". */
static void print_mthp(void)
{
	glob_t g;
	int any = 0;

	printf("shmem mTHP sizes enabled:");
	if (!glob("/sys/kernel/mm/transparent_hugepage/hugepages-*kB/shmem_enabled", 0, NULL, &g)) {
		for (size_t i = 0; i < g.gl_pathc; i++) {
			char buf[256] = "", *sel, *end;
			FILE *f = fopen(g.gl_pathv[i], "r");

			if (f && fgets(buf, sizeof(buf), f) && (sel = strchr(buf, '[')) &&
			    (end = strchr(sel, ']')) && strncmp(sel, "[never]", 7) &&
			    strncmp(sel, "[inherit]", 9)) {
				const char *dir = strstr(g.gl_pathv[i], "hugepages-") + 10;

				*end = '\0';
				printf(" %.*s=%s", (int)strcspn(dir, "/"), dir, sel + 1);
				any = 1;
			}
			if (f)
				fclose(f);
		}
		globfree(&g);
	}
	printf("%s\n", any ? "" : " none (never/inherit)");
}

static void print_cpu(void)
{
	char buf[256];
	FILE *f = fopen("/proc/cpuinfo", "r");

	while (f && fgets(buf, sizeof(buf), f))
		if (!strncmp(buf, "model name", 10)) {
			printf("cpu: %s", strchr(buf, ':') + 2);
			break;
		}
	if (f)
		fclose(f);
}

int main(int argc, char **argv)
{
	int samples = argc > 1 ? atoi(argv[1]) : 30, warmup = argc > 2 ? atoi(argv[2]) : 3;
	double *tr, *tc, *ratio, *rfirst, *cfirst, t_start = now_us();
	char thp[256] = "";
	struct fails fl[NSCEN] = { 0 };
	double res[NSCEN][9];
	int nres[NSCEN];
	struct utsname u;
	FILE *f;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (samples < 1 || warmup < 0) {
		fprintf(stderr, "usage: %s [SAMPLES>=1 [WARMUP>=0]]\n", argv[0]);
		return 2;
	}
	f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "r");
	if (f && fgets(thp, sizeof(thp), f))
		thp[strcspn(thp, "\n")] = '\0';
	if (f)
		fclose(f);
	/* Neither path may find a huge page already there. */
	if (strstr(thp, "[always]") || strstr(thp, "[force]") || strstr(thp, "[within_size]")) {
		fprintf(stderr, "shmem_enabled is '%s': shmem would be huge at fault; set never or advise\n",
			thp);
		return 2;
	}
	krs_fd = open(COLLAPSE, O_RDWR | O_CLOEXEC);
	if (krs_fd < 0) {
		perror(COLLAPSE " (is khugepaged_rs loaded?)");
		return 2;
	}
	tr = calloc(samples, sizeof(*tr));
	tc = calloc(samples, sizeof(*tc));
	ratio = calloc(samples, sizeof(*ratio));
	rfirst = calloc(samples, sizeof(*rfirst));
	cfirst = calloc(samples, sizeof(*cfirst));
	if (!tr || !tc || !ratio || !rfirst || !cfirst)
		return 2;

	for (size_t s = 0; s < NSCEN; s++) {
		const struct scenario *sc = &scenarios[s];
		struct fails wf = { 0 };
		double t0 = now_us();
		int n = 0, nrf = 0, ncf = 0;

		for (int i = -warmup; i < samples; i++) {
			struct fails *f = i < 0 ? &wf : &fl[s];
			struct twin t[NPATHS];
			double us[NPATHS];
			int ok[NPATHS] = { 0, 0 };
			/* Alternate which path goes first. */
			enum path first = (i & 1) ? C : RUST;

			for (int p = 0; p < NPATHS; p++)
				if (twin_make(sc, &t[p])) {
					fprintf(stderr, "bench: cannot build a twin: %s\n", strerror(errno));
					return 2;
				}
			cur_pair = i;
			cur_second = 0;
			ok[first] = !sample(sc, first, &t[first], &us[first], f);
			cur_second = 1;
			ok[!first] = !sample(sc, !first, &t[!first], &us[!first], f);
			for (int p = 0; p < NPATHS; p++)
				twin_free(&t[p]);
			if (i < 0 || !ok[RUST] || !ok[C])
				continue;
			tr[n] = us[RUST];
			tc[n] = us[C];
			ratio[n] = us[RUST] / us[C];
			if (first == RUST)
				rfirst[nrf++] = ratio[n];
			else
				cfirst[ncf++] = ratio[n];
			n++;
		}
		nres[s] = n;
		if (n) {
			res[s][0] = median(tc, n);
			res[s][1] = median(tr, n);
			res[s][2] = median(ratio, n);	/* sorted: */
			res[s][3] = ratio[0];
			res[s][4] = ratio[n - 1];
			res[s][5] = quantile(ratio, n, 0.25);
			res[s][6] = quantile(ratio, n, 0.75);
			res[s][7] = nrf ? median(rfirst, nrf) : 0;
			res[s][8] = ncf ? median(cfirst, ncf) : 0;
		}
		printf("bench: %-26s %d/%d pairs ok, %.1f s%s\n", sc->name, n, samples,
		       (now_us() - t0) / 1e6, wf.n[RUST] + wf.n[C] ? " (warm-up had failures)" : "");
	}

	uname(&u);
	printf("BENCH-RESULT-BEGIN\n");
	printf("khugepaged_rs collapse benchmark: Rust (write to debugfs collapse) vs C (madvise MADV_COLLAPSE)\n");
	printf("kernel: %s %s (%s)\n", u.sysname, u.release, u.machine);
	print_cpu();
	printf("cpus: %ld online\n", sysconf(_SC_NPROCESSORS_ONLN));
	print_file_line("module", STATUS, 1);
	printf("shmem_enabled: %s\n", thp);
	print_mthp();
	printf("samples: %d pairs per scenario after %d warm-up pairs; each pair = two fresh memfd twins,\n"
	       "  one collapsed by each path, the first path alternating from pair to pair\n",
	       samples, warmup);
	printf("time: CLOCK_MONOTONIC around the single write()/madvise() call, in microseconds,\n"
	       "  each call after a %u ms sleep\n", settle_us / 1000);
	printf("note: absolute times under TCG emulation mean little; the Rust/C ratio is the figure\n\n");
	printf("%-26s %10s %11s %7s %11s %13s %8s %7s\n", "scenario", "C median", "Rust median",
	       "Rust/C", "ratio", "ratio", "samples", "failed");
	printf("%-26s %10s %11s %7s %11s %13s %8s %7s\n", "", "(us)", "(us)", "median", "p25-p75",
	       "min-max", "ok/run", "C/Rust");
	for (size_t s = 0; s < NSCEN; s++) {
		char mm[32] = "-", iq[32] = "-", smp[16], fc[16];

		snprintf(smp, sizeof(smp), "%d/%d", nres[s], samples);
		snprintf(fc, sizeof(fc), "%d/%d", fl[s].n[C], fl[s].n[RUST]);
		if (!nres[s]) {
			printf("%-26s %10s %11s %7s %11s %13s %8s %7s\n", scenarios[s].name, "-", "-",
			       "-", iq, mm, smp, fc);
			continue;
		}
		snprintf(mm, sizeof(mm), "%.2f-%.2f", res[s][3], res[s][4]);
		snprintf(iq, sizeof(iq), "%.2f-%.2f", res[s][5], res[s][6]);
		printf("%-26s %10.0f %11.0f %7.2f %11s %13s %8s %7s\n", scenarios[s].name, res[s][0],
		       res[s][1], res[s][2], iq, mm, smp, fc);
	}
	printf("\nRust/C: median of the per-pair ratios Rust time / C time (< 1: Rust faster);\n"
	       "ratio p25-p75 and min-max: quartiles and extremes of the per-pair ratios (not\n"
	       "of each path's times). C and Rust medians are over the same pairs. A pair with\n"
	       "a failed call (error, or not wholly ShmemPmdMapped after) is left out of every\n"
	       "figure and counted under failed.\n");
	printf("order check: median ratio when Rust went first / when C went first, and\n"
	       "their geometric mean (cancels a constant first/second-position factor):\n");
	for (size_t s = 0; s < NSCEN; s++)
		if (nres[s])
			printf("  %-26s %.2f / %.2f  -> %.2f\n", scenarios[s].name, res[s][7],
			       res[s][8], res[s][7] > 0 && res[s][8] > 0 ?
			       sqrt(res[s][7] * res[s][8]) : 0);
	for (size_t s = 0; s < NSCEN; s++)
		for (int p = 0; p < NPATHS; p++)
			if (fl[s].n[p])
				printf("failed: %s, %s: %d, first: %s\n", scenarios[s].name, path_name[p],
				       fl[s].n[p], fl[s].why[p]);
	for (size_t s = 0; s < NSCEN; s++)
		if (scenarios[s].second_vma)
			printf("%s: the other mapping's page table was retracted (Rss 0 after) in\n"
			       "  %d/%d C and %d/%d Rust samples\n", scenarios[s].name,
			       fl[s].retracted[C], samples, fl[s].retracted[RUST], samples);
	printf("wall time in the guest: %.0f s\n", (now_us() - t_start) / 1e6);
	printf("BENCH-RESULT-END\n");
	/* Failures are reported above; only a scenario with no figure fails. */
	for (size_t s = 0; s < NSCEN; s++)
		if (!nres[s])
			return 1;
	return 0;
}
