// SPDX-License-Identifier: GPL-2.0
/*
 * make demo, in the guest: map a tmpfs (memfd) file with a pattern and
 * some holes, show smaps, collapse it through debugfs, show the report,
 * smaps again, and check every byte.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SZ (2UL << 20)
#define COLLAPSE "/sys/kernel/debug/khugepaged_rs/collapse"

static void smaps(const char *when, void *p)
{
	char line[256];
	FILE *f = fopen("/proc/self/smaps", "r");
	int in = 0;

	printf("## smaps of the mapping, %s\n", when);
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long a, b;

		if (sscanf(line, "%lx-%lx ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = a == (unsigned long)p;
		else if (in && (!strncmp(line, "Rss:", 4) || !strncmp(line, "ShmemPmdMapped:", 15)))
			printf("   %s", line);
	}
	if (f)
		fclose(f);
}

static char want(int i) { return i % 3 ? 'A' + i % 26 : 0; }

int main(void)
{
	int fd = memfd_create("demo", 0), d, bad = 0;
	char cmd[128], report[4096], *base, *p;
	ssize_t r, n;

	if (fd < 0 || ftruncate(fd, SZ))
		return perror("memfd"), 1;
	base = mmap(NULL, 2 * SZ, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	p = (char *)(((unsigned long)base + SZ - 1) & ~(SZ - 1));
	p = mmap(p, SZ, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED)
		return perror("mmap"), 1;
	printf("## a 2 MiB memfd mapping; every third page left a hole\n");
	for (int i = 0; i < 512; i++)
		if (want(i))
			memset(p + i * 4096, want(i), 4096);
	smaps("before", p);

	d = open(COLLAPSE, O_RDWR);
	if (d < 0)
		return perror(COLLAPSE), 1;
	snprintf(cmd, sizeof(cmd), "addr=%lx len=2M", (unsigned long)p);
	printf("## echo '%s' > %s\n", cmd, COLLAPSE);
	r = write(d, cmd, strlen(cmd));
	printf("   write returned %zd%s%s\n", r, r < 0 ? ": " : "", r < 0 ? strerror(errno) : "");
	n = pread(d, report, sizeof(report) - 1, 0);
	report[n > 0 ? n : 0] = '\0';
	printf("## reading back the same open file (this writer's report)\n%s", report);
	smaps("after", p);
	for (int i = 0; i < 512; i++)
		for (int j = 0; j < 4096; j++)
			if (p[i * 4096 + j] != want(i)) {
				bad++;
				break;
			}
	printf("## contents: %s (%d bad pages)\n", bad ? "WRONG" : "intact, zeroes where the holes were", bad);
	return bad || r < 0;
}
