// SPDX-License-Identifier: GPL-2.0
/*
 * SCAN_DEL_PAGE_LRU after a swap-in, counted: a collapse of a shmem extent
 * that is swapped out fails with EAGAIN when the task changed CPU between
 * a page's swap-in and collapse_file()'s lru_add_drain() (design.rst,
 * "Upstream notes": the swap-in's LRU batch drained on the wrong CPU). Not
 * a kselftest (a measurement: nothing fails on the counts).
 *
 *   khugepaged_rs_swapin_lru [--tries N] [--hogs N] [--side madv|module|both]
 *                            [--dir DIR] [-v]
 *
 * The swap-in puts the new folio in this CPU's lru_add batch before its
 * read (folio_add_lru()), and collapse_file() then drains "to help
 * folio_isolate_lru()" with lru_add_drain(), which drains the batch of the
 * CPU the task is on by then. If the task moved in between (it slept in
 * the read, or was preempted and pulled to the other CPU), the folio is
 * still in the first CPU's batch, not on the LRU: folio_isolate_lru()
 * fails, SCAN_DEL_PAGE_LRU, and the collapse rolls back.
 *
 * Each try: a memfd of one extent (2 MiB) of pattern pages, mapped shared
 * at a 2 MiB boundary, swapped out with MADV_PAGEOUT (the VM swaps to
 * zram), collapsed once (no retry) by MADV_COLLAPSE or by the module's
 * addr=, then every page checked through the mapping. The task's CPU
 * migrations during the call are counted (the perf software event
 * cpu-migrations, this thread only). Three placements, N tries each per
 * side: alone (no other load), beside H hog threads (each spins 2 ms and
 * sleeps 0.2 ms, on any CPU), and beside them with the task pinned to CPU
 * 0 (sched_setaffinity(): what migrate_disable() across the swap-in and
 * the drain would give). Where the race is met, EAGAIN comes with a
 * migration, and the pinned task never gets it: on the debug kernel
 * (KASAN, TCG) both sides fail most tries unpinned and none pinned; on the
 * stock kernel the swap-in is short and the task seldom moves (design.rst
 * gives the figures).
 *
 * --dir DIR: the regular-file path instead: each try's extent is a file on
 * DIR (the VM's /mnt/xfs or /mnt/ext4) written, synced and dropped from
 * the page cache (POSIX_FADV_DONTNEED), mapped read-only; the collapse
 * reads it in with page_cache_sync_readahead(), whose folio_add_lru()s
 * also come before collapse_file()'s lru_add_drain().
 *
 * Printed per side and placement: ok, EAGAIN, other errors; tries with a
 * migration and the EAGAINs among them; the extent results by name (the
 * module's report; MADV_COLLAPSE's from the huge_memory
 * mm_khugepaged_collapse_file trace event, when tracefs is there). Exit
 * status 0 unless a page read back wrong, a call failed with an errno
 * other than EAGAIN, or no extent could be put out of memory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "krs_test.h"

#define PAGE KRS_PAGE_SIZE
#define LEN KRS_PMD_SIZE
#define MAX_HOGS 16

struct tally {
	unsigned long tries, not_out, ok, eagain, other;
	unsigned long migrated, eagain_migrated;
	struct krs_names results;
};

static bool verbose;
static const char *dir;	/* --dir: a file there, dropped, instead of a memfd */
static int bad, migr_fd = -1, cfd = -1;
static int hogs_stop;	/* __atomic: read by the hogs */
static bool tracing;	/* the collapse_file() event is on */
static const char *const event[] = { "huge_memory/mm_khugepaged_collapse_file" };

static uint64_t migrations(void)
{
	uint64_t v = 0;

	if (migr_fd < 0 || read(migr_fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000ull + ts.tv_nsec / 1000;
}

static void *hog(void *arg)
{
	while (!__atomic_load_n(&hogs_stop, __ATOMIC_RELAXED)) {
		uint64_t end = now_us() + 2000;

		while (now_us() < end && !__atomic_load_n(&hogs_stop, __ATOMIC_RELAXED))
			;
		usleep(200);
	}
	return NULL;
}

/* The result= of the last collapse_file() event in the trace buffer. */
static void trace_result(char *out, size_t size)
{
	static char buf[65536];
	char *r, *last = NULL;
	ssize_t n;

	snprintf(out, size, "?");
	n = krs_trace_read(buf, sizeof(buf));
	for (r = n > 0 ? strstr(buf, "result=") : NULL; r; r = strstr(r + 1, "result="))
		last = r + 7;
	if (last)
		snprintf(out, size, "%.*s", (int)strcspn(last, "\n "), last);
}

/*
 * The extent of a try, mapped at a 2 MiB boundary with its pages out of
 * memory: a memfd's swapped out, or (--dir) a file's dropped from the page
 * cache. Returns the mapping (MAP_FAILED if the set-up failed) and the kB
 * out of memory in *@out_kb.
 */
static char *make_extent(unsigned int seed, int *fdp, long *out_kb)
{
	unsigned char vec[LEN / PAGE];
	char path[256];
	int fd, wfd;
	char *p;

	if (!dir) {
		fd = krs_memfd("krs_swapin_lru", LEN);
		p = fd < 0 ? MAP_FAILED :
			     krs_map_aligned(LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		for (size_t i = 0; p != MAP_FAILED && i < LEN / PAGE; i++)
			krs_fill_page(p + i * PAGE, seed, i);
		if (p != MAP_FAILED) {
			krs_ignore(madvise(p, LEN, MADV_PAGEOUT));
			*out_kb = krs_smaps_kb(0, (unsigned long)p, "Swap");
		}
	} else {
		/* Written, synced, dropped; the writer closed, mapped read-only. */
		snprintf(path, sizeof(path), "%s/krs_swapin_lru.%d", dir, (int)getpid());
		unlink(path);
		wfd = krs_make_file(path, seed, LEN / PAGE, KRS_FILE_DROPPED);
		fd = wfd < 0 ? wfd : open(path, O_RDONLY | O_CLOEXEC);
		if (wfd >= 0)
			close(wfd);
		unlink(path);
		p = fd < 0 ? MAP_FAILED : krs_map_aligned(LEN, PROT_READ, MAP_SHARED, fd, 0);
		*out_kb = 0;
		if (p != MAP_FAILED && !mincore(p, LEN, vec))
			for (size_t i = 0; i < LEN / PAGE; i++)
				*out_kb += vec[i] & 1 ? 0 : PAGE >> 10;
	}
	if (p == MAP_FAILED) {
		fprintf(stderr, "%s or map: %s\n", dir ? "file" : "memfd",
			strerror(fd < 0 ? -fd : errno));
		if (fd >= 0)
			close(fd);
	}
	*fdp = fd;
	return p;
}

/* One try: 0, or -1 if the set-up failed. */
static int one(bool module, unsigned int seed, struct tally *t)
{
	char cmd[96], report[4096], result[48] = "";
	struct krs_extent ext[2];
	uint64_t m0, m1;
	long ret, status, out_kb = 0;
	int fd, n;
	char *p;

	p = make_extent(seed, &fd, &out_kb);
	if (p == MAP_FAILED)
		return -1;
	t->tries++;
	if (out_kb < (long)(LEN >> 11)) {
		t->not_out++;
		goto check;
	}
	if (tracing && !module)
		krs_trace_clear();
	m0 = migrations();
	if (module) {
		snprintf(cmd, sizeof(cmd), "addr=%lx len=2M", (unsigned long)p);
		ret = krs_collapse_write(cfd, cmd, strlen(cmd));
	} else {
		ret = madvise(p, LEN, MADV_COLLAPSE) ? -errno : 0;
	}
	m1 = migrations();
	if (module) {
		n = krs_collapse_report(cfd, report, sizeof(report)) > 0 ?
			    krs_report_parse(report, ext, 2, &status) : 0;
		snprintf(result, sizeof(result), "%s", n > 0 ? ext[0].result : "?");
	} else if (tracing) {
		trace_result(result, sizeof(result));
	}
	if (result[0])
		krs_names_add(&t->results, result);
	if (m1 != m0)
		t->migrated++;
	if (ret >= 0) {
		t->ok++;
	} else if (ret == -EAGAIN) {
		t->eagain++;
		if (m1 != m0)
			t->eagain_migrated++;
	} else {
		t->other++;
		printf("# %s: %s\n", module ? "addr=" : "MADV_COLLAPSE", strerror(-ret));
		bad = 1;
	}
	if (verbose)
		printf("#   %s: %ld kB out of memory, %s %s, %llu migrations\n",
		       module ? "module" : "madv", out_kb, ret < 0 ? strerror(-ret) : "ok",
		       result, (unsigned long long)(m1 - m0));
check:
	for (size_t i = 0; i < LEN / PAGE; i++) {
		if (krs_check_page(p + i * PAGE, seed, i)) {
			printf("# page %zu wrong after %s\n", i,
			       module ? "addr=" : "MADV_COLLAPSE");
			bad = 1;
			break;
		}
	}
	munmap(p, LEN);
	close(fd);
	return 0;
}

static void print(const char *side, const char *placement, const struct tally *t)
{
	printf("# %-13s %-22s tries %lu: ok %lu, EAGAIN %lu, other %lu; ", side, placement,
	       t->tries - t->not_out, t->ok, t->eagain, t->other);
	printf("migrated during the call %lu (EAGAIN %lu), not %lu (EAGAIN %lu)",
	       t->migrated, t->eagain_migrated, t->tries - t->not_out - t->migrated,
	       t->eagain - t->eagain_migrated);
	if (t->not_out)
		printf("; tries with less than half out of memory (not counted) %lu", t->not_out);
	printf("\n#   results:");
	krs_names_print(&t->results);
	printf("\n");
}

int main(int argc, char **argv)
{
	struct perf_event_attr attr = {
		.type = PERF_TYPE_SOFTWARE,
		.size = sizeof(attr),
		.config = PERF_COUNT_SW_CPU_MIGRATIONS,
	};
	int tries = 50, nhogs = 2;
	bool sides[2] = { true, true };	/* MADV_COLLAPSE, the module */
	pthread_t hogs[MAX_HOGS];
	char prev[32];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--tries") && i + 1 < argc) {
			tries = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--hogs") && i + 1 < argc) {
			nhogs = atoi(argv[++i]);
			if (nhogs < 1 || nhogs > MAX_HOGS)
				nhogs = 2;
		} else if (!strcmp(argv[i], "--side") && i + 1 < argc) {
			i++;
			sides[0] = strcmp(argv[i], "module");
			sides[1] = strcmp(argv[i], "madv");
		} else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
			dir = argv[++i];
		} else if (!strcmp(argv[i], "-v")) {
			verbose = true;
		} else {
			fprintf(stderr, "usage: %s %s\n", argv[0],
				"[--tries N] [--hogs N] [--side madv|module|both] [--dir DIR] [-v]");
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	cfd = krs_measure_setup(prev, sizeof(prev));
	if (cfd < 0)
		return 2;
	migr_fd = syscall(__NR_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (migr_fd < 0)
		printf("# perf cpu-migrations: %s (migrations not counted)\n", strerror(errno));
	tracing = !krs_trace_setup(event, ARRAY_SIZE(event), 1024);
	printf("# swap-in then collapse: %d tries per side and placement, %d hogs, %d CPUs%s\n",
	       tries, nhogs, get_nprocs(),
	       tracing ? "" : " (no tracefs: no MADV_COLLAPSE results)");
	for (int pl = 0; pl < 3; pl++) {
		static const char *const placement[] = { "alone", "beside the hogs",
							 "beside them, pinned" };
		struct tally t[2] = { 0 };

		__atomic_store_n(&hogs_stop, 0, __ATOMIC_RELAXED);
		for (int h = 0; pl > 0 && h < nhogs; h++)
			if (pthread_create(&hogs[h], NULL, hog, NULL))
				nhogs = h;
		krs_run_on(pl == 2 ? 0 : -1);
		for (int k = 0; k < tries; k++)
			for (int s = 0; s < 2; s++) {
				/* Alternate which side goes first. */
				int side = (k & 1) ? 1 - s : s;

				if (sides[side] && one(side, 9000 + k, &t[side]))
					bad = 1;
			}
		__atomic_store_n(&hogs_stop, 1, __ATOMIC_RELAXED);
		for (int h = 0; pl > 0 && h < nhogs; h++)
			pthread_join(hogs[h], NULL);
		krs_run_on(-1);
		for (int s = 0; s < 2; s++)
			if (sides[s])
				print(s ? "module" : "MADV_COLLAPSE", placement[pl], &t[s]);
		for (int s = 0; s < 2; s++)
			if (sides[s] && t[s].tries && t[s].not_out == t[s].tries)
				bad = 1;
	}
	if (tracing)
		krs_trace_teardown(event, ARRAY_SIZE(event));
	krs_thp_restore(prev);
	close(cfd);
	return bad;
}
