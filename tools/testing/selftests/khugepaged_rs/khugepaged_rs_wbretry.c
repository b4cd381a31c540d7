// SPDX-License-Identifier: GPL-2.0
/*
 * The write-back retry's transients, counted: how often one attempt at a
 * file of dirty pages fails where the retry after write-back should have
 * made it succeed, for MADV_COLLAPSE and for the module side by side. Not
 * a kselftest (a measurement: nothing fails on the counts); design.rst,
 * "Differences from MADV_COLLAPSE", quotes it for the LRU drain before the
 * module's retry.
 *
 *   khugepaged_rs_wbretry [--rounds N] [--dir DIR]... [--writer] [--partial] [-v]
 *
 * Each round, on each DIR (default /mnt/xfs and /mnt/ext4, those mounted):
 * two twin files of two extents of pattern pages, written and not synced
 * (every page dirty; with --partial, synced and then five pages of each
 * extent written again from page 100 on, so that the collapse isolates
 * the clean folios before it finds a dirty one, and puts them back when
 * it does), the writer closed (or kept open with --writer), each
 * mapped read-only and shared at a 2 MiB boundary; MADV_COLLAPSE of one
 * mapping and the module's addr= of the other, each once (no retry of
 * EAGAIN), in an order that alternates by round; then the data checked
 * through the mapping. The CPU each side runs on alternates too (two
 * CPUs: the failed attempt puts its folios back in one CPU's LRU batch,
 * and the task may wake from the write-back's wait on the other).
 *
 * Printed per directory: each side's outcomes (ok, EAGAIN, other) and
 * FilePmdMapped in full, and the module's extent results by name. Exit
 * status 0 unless a page read back wrong or a call failed with an errno
 * other than EAGAIN.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "krs_test.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define PAGE KRS_PAGE_SIZE
#define NPAGES (2 * KRS_PMD_PAGES)
#define LEN (NPAGES * PAGE)

struct side {
	unsigned long ok, eagain, other, pmd_full;
};

static bool verbose, partial;
static int bad;

static void count(struct side *s, long ret, char *p)
{
	if (ret >= 0)
		s->ok++;
	else if (ret == -EAGAIN)
		s->eagain++;
	else
		s->other++;
	if (krs_smaps_kb(0, (unsigned long)p, "FilePmdMapped") >= (long)(LEN >> 10))
		s->pmd_full++;
}

/* One twin: made dirty, mapped, collapsed once; 0 or -1 (set-up failed). */
static int one(const char *dir, int round, bool module, bool writer, int cfd, struct side *s,
	       struct krs_names *nm)
{
	char path[256], cmd[96], report[4096];
	struct krs_extent ext[4];
	unsigned int seed = 7000 + round;
	long ret, status;
	int wfd, fd, n;
	char *p;

	snprintf(path, sizeof(path), "%s/krs_wbretry.%d.%s", dir, (int)getpid(),
		 module ? "krs" : "madv");
	unlink(path);
	wfd = krs_make_file(path, seed, NPAGES, partial ? KRS_FILE_SYNCED : KRS_FILE_DIRTY);
	for (size_t e = 0; partial && wfd >= 0 && e < NPAGES / KRS_PMD_PAGES; e++)
		for (size_t i = 100; i < 105 && wfd >= 0; i++) {
			int err = krs_pwrite_page(wfd, seed, e * KRS_PMD_PAGES + i);

			if (err) {
				close(wfd);
				wfd = err;
			}
		}
	if (wfd < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(-wfd));
		return -1;
	}
	if (!writer) {
		close(wfd);
		wfd = -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	p = fd < 0 ? MAP_FAILED : krs_map_aligned(LEN, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "%s: open or map: %s\n", path, strerror(errno));
		return -1;
	}
	if (module) {
		snprintf(cmd, sizeof(cmd), "addr=%lx len=%zu", (unsigned long)p, (size_t)LEN);
		ret = krs_collapse_write(cfd, cmd, strlen(cmd));
		n = krs_collapse_report(cfd, report, sizeof(report)) > 0 ?
			    krs_report_parse(report, ext, 4, &status) : 0;
		for (int i = 0; i < n; i++)
			krs_names_add(nm, ext[i].result);
	} else {
		ret = madvise(p, LEN, MADV_COLLAPSE) ? -errno : 0;
	}
	count(s, ret, p);
	if (ret < 0 && ret != -EAGAIN) {
		printf("# %s round %d: %s: %s\n", dir, round, module ? "module" : "MADV_COLLAPSE",
		       strerror(-ret));
		bad = 1;
	}
	if (verbose)
		printf("#   %s round %d %s: %ld\n", dir, round, module ? "module" : "madv", ret);
	for (size_t i = 0; i < NPAGES; i++) {
		if (krs_check_page(p + i * PAGE, seed, i)) {
			printf("# %s round %d: page %zu wrong after %s\n", dir, round, i,
			       module ? "addr=" : "MADV_COLLAPSE");
			bad = 1;
			break;
		}
	}
	munmap(p, LEN);
	close(fd);
	if (wfd >= 0)
		close(wfd);
	unlink(path);
	return 0;
}

int main(int argc, char **argv)
{
	const char *dirs[8] = { 0 };
	int ndirs = 0, rounds = 20, cfd, ncpu = get_nprocs();
	bool writer = false;
	char prev[32];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
			rounds = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--dir") && i + 1 < argc && ndirs < 8) {
			dirs[ndirs++] = argv[++i];
		} else if (!strcmp(argv[i], "--writer")) {
			writer = true;
		} else if (!strcmp(argv[i], "--partial")) {
			partial = true;
		} else if (!strcmp(argv[i], "-v")) {
			verbose = true;
		} else {
			fprintf(stderr, "usage: %s %s\n", argv[0],
				"[--rounds N] [--dir DIR]... [--writer] [--partial] [-v]");
			return 2;
		}
	}
	if (!ndirs) {
		char type[32];

		if (krs_mounted_type("/mnt/xfs", type, sizeof(type)))
			dirs[ndirs++] = "/mnt/xfs";
		if (krs_mounted_type("/mnt/ext4", type, sizeof(type)))
			dirs[ndirs++] = "/mnt/ext4";
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	cfd = krs_measure_setup(prev, sizeof(prev));
	if (cfd < 0)
		return 2;
	printf("# write-back retry: %d rounds per directory, 2 extents of %s, %s %s, %d CPUs\n",
	       rounds, partial ? "clean pages but 5 dirty from page 100" : "dirty pages",
	       "writer", writer ? "open" : "closed", ncpu);
	for (int d = 0; d < ndirs; d++) {
		struct side madv = { 0 }, krs = { 0 };
		struct krs_names nm = { 0 };

		for (int r = 0; r < rounds; r++) {
			bool module_first = r & 1;

			for (int k = 0; k < 2; k++) {
				bool module = (k == 0) == module_first;

				krs_run_on(ncpu > 1 ? (r >> 1) & 1 : 0);
				struct side *sd = module ? &krs : &madv;

				if (one(dirs[d], r, module, writer, cfd, sd, &nm))
					bad = 1;
			}
		}
		printf("# %s: MADV_COLLAPSE ok %lu, EAGAIN %lu, other %lu, %s %lu\n",
		       dirs[d], madv.ok, madv.eagain, madv.other, "PMD-mapped in full",
		       madv.pmd_full);
		printf("# %s: module        ok %lu, EAGAIN %lu, other %lu, %s %lu\n",
		       dirs[d], krs.ok, krs.eagain, krs.other, "PMD-mapped in full", krs.pmd_full);
		printf("# %s: module's extents:", dirs[d]);
		krs_names_print(&nm);
		printf("\n");
	}
	krs_thp_restore(prev);
	close(cfd);
	return bad;
}
