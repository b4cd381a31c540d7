/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the programs of tools/bench/ run in the guest share: the twins'
 * 2 MiB-aligned shared mappings of a memfd filled with plain stores, and
 * smaps lookups (collapse_bench.c, profile_guest.c). Static functions: each
 * program is one translation unit, built with gcc -static by its runner.
 */
#ifndef KRS_BENCH_H
#define KRS_BENCH_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define PAGE 4096UL
#define PMD (2UL << 20)
#define PAGES_PER_PMD (PMD / PAGE)
#define COLLAPSE "/sys/kernel/debug/khugepaged_rs/collapse"

/*
 * The twins' contents: a word pattern written with plain stores. memset()
 * would be rep stosb here, which -icount counts (and runs) byte by byte.
 */
static void fill_page(char *page, uint64_t seed)
{
	uint64_t *q = (uint64_t *)page;

	for (size_t j = 0; j < PAGE / sizeof(*q); j++)
		q[j] = seed + j;
}

/* A mapping of fd (or anonymous memory, fd -1) at a 2 MiB-aligned address. */
static char *map_aligned(int fd, size_t len)
{
	size_t span = len + PMD;
	char *res, *a, *p;

	res = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		return NULL;
	a = (char *)(((uintptr_t)res + PMD - 1) & ~(PMD - 1));
	if (fd >= 0)
		p = mmap(a, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	else
		p = mmap(a, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			 -1, 0);
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

/* One smaps field (kB) of the VMA holding addr in process pid (0: self); -1 if not found. */
static long smaps_kb(pid_t pid, unsigned long addr, const char *field)
{
	static char buf[1 << 16];
	size_t flen = strlen(field), n = 0;
	char path[64];
	int fd, in = 0;
	ssize_t r;
	char *line, *save;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/smaps");
	fd = open(path, O_RDONLY);
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

#endif /* KRS_BENCH_H */
