// SPDX-License-Identifier: GPL-2.0
/*
 * tools/bench/profile, in the guest: where a collapse's instructions go.
 * Each pass traces a list of kernel functions with ftrace's function_graph
 * tracer (only this process: set_ftrace_pid) around one collapse of a fresh
 * full shmem twin by each path, khugepaged_rs (a write() to debugfs
 * collapse) and MADV_COLLAPSE, and prints, per call, what the graph holds
 * for each traced function, as one "PROF-JSON {...}" line;
 * tools/bench/profile.py turns them into tables on the host.
 *
 *   profile_guest [-n SAMPLES] [-w WARMUP] [-e EXTENTS] PASS...
 *
 * PASS is NAME=FUNC,FUNC,..., NAME=none (no tracer: the exact cost of the
 * call), NAME=fixed (the call on a twin collapsed already, untraced),
 * NAME=dry (the module's dry run, untraced) or NAME=zap (no collapse:
 * MADV_DONTNEED of a twin, see zap_twin()). SAMPLES calls per path and
 * pass (default 3), alternating which path goes first, after WARMUP
 * untimed ones (default 1); EXTENTS full 2 MiB extents per twin (default
 * 1): the module collapses them in one write, the kernel in one madvise()
 * per extent, as "32 extents vs 32 calls" in collapse_bench.c. Before the
 * first pass, 10 untimed pairs with no tracer settle the guest in (the
 * first collapses after boot cost more).
 *
 * Under tools/vm/run --icount, a nanosecond is an instruction executed, so
 * the graph's durations count instructions, those of the tracer included:
 * the host subtracts them (profile.py). Per traced function and call: calls,
 * the sum of their durations (ns), the same for the calls not nested in
 * another traced one ("top"), and how many traced calls ran nested inside
 * them. A function missing from available_filter_functions (inlined,
 * static, notrace) is reported as {"missing": name}.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/mount.h>
#include <time.h>

#include "bench.h"

#define TRACING "/sys/kernel/tracing"
#define MAXFUNCS 512
#define MAXDEPTH 64
#define SETTLE_PAIRS 10

enum path { RUST, C, NPATHS };
static const char *const path_name[NPATHS] = { "Rust", "C" };

struct func {
	char name[64];
	long calls, top_calls, nested;
	long long ns, top_ns;
};

/*
 * What a pass's calls do: collapse a fresh twin; collapse one that is
 * already collapsed (the fixed cost of a call, "already PMD-mapped" of
 * collapse_bench.c); or, the module only, a dry run (its scan and report).
 */
enum mode { MODE_COLLAPSE, MODE_FIXED, MODE_DRY };

static struct func funcs[MAXFUNCS];
static int nfuncs, krs_fd = -1, extents = 1;
static enum mode mode;

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Writes s to a tracefs file; with append, adds to it (set_ftrace_filter). */
static int tracefs_write(const char *file, const char *s, int append)
{
	char path[128];
	int fd, ok;

	snprintf(path, sizeof(path), TRACING "/%s", file);
	fd = open(path, O_WRONLY | (append ? O_APPEND : O_TRUNC));
	if (fd < 0)
		return -1;
	ok = write(fd, s, strlen(s)) == (ssize_t)strlen(s);
	close(fd);
	return ok ? 0 : -1;
}

static void tracefs_must(const char *file, const char *s)
{
	if (tracefs_write(file, s, 0)) {
		fprintf(stderr, "profile: cannot write '%s' to %s: %s\n", s, file, strerror(errno));
		exit(2);
	}
}

/* A twin: a memfd of EXTENTS * 2 MiB, every page written, mapped shared. */
static char *twin_make(int *fd)
{
	size_t len = extents * PMD;
	char *p;

	*fd = memfd_create("krs-prof", MFD_CLOEXEC);
	if (*fd < 0 || ftruncate(*fd, len))
		return NULL;
	p = map_aligned(*fd, len);
	if (!p)
		return NULL;
	for (size_t i = 0; i < len / PAGE; i++)
		fill_page(p + i * PAGE, (uint64_t)i << 32 | 1);
	return p;
}

static int collapse(enum path path, char *p)
{
	size_t len = extents * PMD;
	char cmd[96];

	if (path == RUST) {
		snprintf(cmd, sizeof(cmd), "addr=%lx len=%luM%s", (unsigned long)p, len >> 20,
			 mode == MODE_DRY ? " dry_run" : "");
		return write(krs_fd, cmd, strlen(cmd)) == (ssize_t)strlen(cmd) ? 0 : -1;
	}
	for (int i = 0; i < extents; i++)
		if (madvise(p + i * PMD, PMD, MADV_COLLAPSE))
			return -1;
	return 0;
}

static struct func *func_of(const char *name, size_t n)
{
	for (int i = 0; i < nfuncs; i++)
		if (strlen(funcs[i].name) == n && !strncmp(funcs[i].name, name, n))
			return &funcs[i];
	if (nfuncs == MAXFUNCS || n >= sizeof(funcs[0].name))
		return NULL;
	memcpy(funcs[nfuncs].name, name, n);
	funcs[nfuncs].name[n] = '\0';
	return &funcs[nfuncs++];
}

/* The duration column of a graph line (" 1)   12.345 us    |"), in ns; -1 if none. */
static long long duration_ns(const char *line, const char *bar)
{
	const char *s = strchr(line, ')');
	char *end;
	double us;

	if (!s || s > bar)
		return -1;
	us = strtod(s + 1, &end);
	if (end == s + 1 || end > bar || strncmp(end, " us", 3))
		return -1;
	return (long long)(us * 1000 + 0.5);
}

/* A module's function is "name [module]()": its name stops at the space. */
static size_t name_len(const char *t, const char *paren)
{
	size_t n = strcspn(t, " ");

	return n < (size_t)(paren - t) ? n : (size_t)(paren - t);
}

static void account(struct func *f, long long ns, long nested, int top)
{
	if (!f)
		return;
	f->calls++;
	f->ns += ns;
	f->nested += nested;
	if (top) {
		f->top_calls++;
		f->top_ns += ns;
	}
}

/*
 * Reads the function_graph trace of one call: "name() {" opens a call, a
 * closing brace followed by the name in a comment (funcgraph-tail) closes
 * it with its duration, "name();" is a call with nothing traced inside.
 * Returns the traced calls seen.
 */
static long parse_trace(void)
{
	struct { struct func *f; long mark; } stack[MAXDEPTH];
	FILE *fp = fopen(TRACING "/trace", "r");
	char line[512];
	long seen = 0;
	int depth = 0;

	nfuncs = 0;
	memset(funcs, 0, sizeof(funcs));
	if (!fp)
		return -1;
	while (fgets(line, sizeof(line), fp)) {
		char *bar = strchr(line, '|'), *t, *paren;
		long long ns;

		if (line[0] == '#' || !bar)
			continue;
		ns = duration_ns(line, bar);
		for (t = bar + 1; *t == ' '; t++)
			;
		t[strcspn(t, "\n")] = '\0';
		if (t[0] == '}') {
			char *name = strstr(t, "/* ");
			struct func *f;

			if (!name || depth == 0)
				continue;
			name += 3;
			f = func_of(name, strcspn(name, " "));
			/* An exit whose entry was lost: unwind to its entry. */
			while (depth > 0 && stack[depth - 1].f != f)
				depth--;
			if (depth == 0)
				continue;
			depth--;
			account(f, ns < 0 ? 0 : ns, seen - stack[depth].mark, depth == 0);
			continue;
		}
		paren = strstr(t, "() {");
		if (paren) {
			seen++;
			if (depth < MAXDEPTH) {
				stack[depth].f = func_of(t, name_len(t, paren));
				stack[depth].mark = seen;
				depth++;
			}
			continue;
		}
		paren = strstr(t, "();");
		if (paren) {
			seen++;
			account(func_of(t, name_len(t, paren)), ns < 0 ? 0 : ns, 0, depth == 0);
		}
	}
	fclose(fp);
	return seen;
}

/*
 * One call by path on a fresh twin, traced when the pass has a tracer;
 * prints its line (unless a warm-up). Returns 0 when the call collapsed
 * the whole range.
 */
static int one(const char *pass, int traced, enum path path, int sample, int first)
{
	double t0, t1;
	long seen = 0, want = mode == MODE_DRY ? 0 : (long)(extents * PMD >> 10), got;
	char *p;
	int fd, r;

	if (mode == MODE_DRY && path == C)
		return 0;
	p = twin_make(&fd);
	if (!p) {
		fprintf(stderr, "profile: cannot build a twin: %s\n", strerror(errno));
		exit(2);
	}
	if (mode == MODE_FIXED && collapse(path, p)) {
		fprintf(stderr, "profile: %s, %s: first collapse failed: %s\n", pass,
			path_name[path], strerror(errno));
		return -1;
	}
	usleep(20000);
	if (traced) {
		tracefs_must("trace", "");
		tracefs_must("tracing_on", "1");
	}
	t0 = now_ns();
	r = collapse(path, p);
	t1 = now_ns();
	if (traced) {
		tracefs_must("tracing_on", "0");
		seen = parse_trace();
	}
	got = smaps_kb(0, (unsigned long)p, "ShmemPmdMapped");
	munmap(p, extents * PMD);
	close(fd);
	if (r || got != want) {
		fprintf(stderr, "profile: %s, %s: collapse failed (%s, ShmemPmdMapped %ld kB)\n",
			pass, path_name[path], r ? strerror(errno) : "ok", got);
		return -1;
	}
	if (sample < 0)
		return 0;
	printf("PROF-JSON {\"pass\":\"%s\",\"path\":\"%s\",\"sample\":%d,", pass,
	       path_name[path], sample);
	printf("\"first\":%d,\"extents\":%d,\"total_ns\":%.0f,\"traced\":%ld,\"f\":{", first,
	       extents, t1 - t0, seen);
	for (int i = 0; traced && i < nfuncs; i++)
		printf("%s\"%s\":[%ld,%lld,%ld,%lld,%ld]", i ? "," : "", funcs[i].name,
		       funcs[i].calls, funcs[i].ns, funcs[i].top_calls, funcs[i].top_ns,
		       funcs[i].nested);
	printf("}}\n");
	return 0;
}

/*
 * A NAME=zap pass: no collapse, but MADV_DONTNEED of a fresh twin, timed
 * the same way: what zapping its PTEs costs in one page-table walk per
 * extent, with one TLB flush (zap_pte_range(), the walk
 * unmap_mapping_pages() would do over the extent), against the 512
 * try_to_unmap() calls of a collapse. Printed as the path "zap".
 */
static int zap_twin(const char *pass, int sample)
{
	double t0, t1;
	long rss;
	char *p;
	int fd, r;

	p = twin_make(&fd);
	if (!p) {
		fprintf(stderr, "profile: cannot build a twin: %s\n", strerror(errno));
		exit(2);
	}
	usleep(20000);
	t0 = now_ns();
	r = madvise(p, extents * PMD, MADV_DONTNEED);
	t1 = now_ns();
	rss = smaps_kb(0, (unsigned long)p, "Rss");
	munmap(p, extents * PMD);
	close(fd);
	if (r || rss) {
		fprintf(stderr, "profile: %s: MADV_DONTNEED left %ld kB mapped\n", pass, rss);
		return -1;
	}
	if (sample < 0)
		return 0;
	printf("PROF-JSON {\"pass\":\"%s\",\"path\":\"zap\",\"sample\":%d,", pass, sample);
	printf("\"first\":1,\"extents\":%d,\"total_ns\":%.0f,\"traced\":0,\"f\":{}}\n", extents,
	       t1 - t0);
	return 0;
}

/* Sets the tracer up for the functions of spec (comma-separated); 0 if none. */
static int setup_pass(const char *list)
{
	char spec[4096];
	int n = 0;

	snprintf(spec, sizeof(spec), "%s", list);
	tracefs_must("tracing_on", "0");
	tracefs_must("current_tracer", "nop");
	tracefs_must("set_ftrace_filter", "");
	if (!strcmp(spec, "none"))
		return 0;
	for (char *f = strtok(spec, ","); f; f = strtok(NULL, ",")) {
		if (tracefs_write("set_ftrace_filter", f, 1))
			printf("PROF-JSON {\"missing\":\"%s\"}\n", f);
		else
			n++;
	}
	if (!n) {
		fprintf(stderr, "profile: no function of the pass can be traced\n");
		exit(2);
	}
	tracefs_must("current_tracer", "function_graph");
	return 1;
}

int main(int argc, char **argv)
{
	int samples = 3, warmup = 1, opt, failed = 0;
	char pid[32];

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt(argc, argv, "n:w:e:")) != -1) {
		switch (opt) {
		case 'n':
			samples = atoi(optarg);
			break;
		case 'w':
			warmup = atoi(optarg);
			break;
		case 'e':
			extents = atoi(optarg);
			break;
		default:
			goto usage;
		}
	}
	if (optind == argc || samples < 1 || warmup < 0 || extents < 1)
		goto usage;
	krs_fd = open(COLLAPSE, O_RDWR | O_CLOEXEC);
	if (krs_fd < 0) {
		perror(COLLAPSE " (is khugepaged_rs loaded?)");
		return 2;
	}
	if (access(TRACING "/trace", F_OK) && mount("nodev", TRACING, "tracefs", 0, NULL)) {
		perror("mount tracefs");
		return 2;
	}
	/*
	 * This process only; the cheapest clock; no interrupt handlers, no
	 * overhead marks; the closing brace names its function.
	 */
	snprintf(pid, sizeof(pid), "%d", getpid());
	tracefs_must("tracing_on", "0");
	tracefs_must("set_ftrace_pid", pid);
	tracefs_must("trace_clock", "local");
	tracefs_must("buffer_size_kb", "16384");
	tracefs_must("options/funcgraph-irqs", "0");
	tracefs_must("options/funcgraph-overhead", "0");
	tracefs_must("options/funcgraph-tail", "1");
	tracefs_must("options/funcgraph-proc", "0");
	for (int i = 0; i < SETTLE_PAIRS; i++)
		for (int p = 0; p < NPATHS; p++)
			failed |= one("settle", 0, p, -1, 0);
	for (int a = optind; a < argc; a++) {
		char *eq = strchr(argv[a], '='), *name = argv[a];
		int traced;

		if (!eq)
			goto usage;
		*eq = '\0';
		if (!strcmp(eq + 1, "zap")) {
			for (int i = -warmup; i < samples; i++)
				failed |= zap_twin(name, i);
			continue;
		}
		mode = !strcmp(eq + 1, "fixed") ? MODE_FIXED :
		       !strcmp(eq + 1, "dry") ? MODE_DRY : MODE_COLLAPSE;
		traced = setup_pass(mode == MODE_COLLAPSE ? eq + 1 : "none");
		for (int i = -warmup; i < samples; i++) {
			enum path p0 = (i & 1) ? C : RUST, p1 = p0 == RUST ? C : RUST;

			failed |= one(name, traced, p0, i, 1);
			failed |= one(name, traced, p1, i, 0);
		}
		fprintf(stderr, "profile: pass %s done\n", name);
	}
	tracefs_must("current_tracer", "nop");
	tracefs_must("set_ftrace_filter", "");
	printf("PROF-JSON {\"end\":1}\n");
	return failed ? 1 : 0;
usage:
	fprintf(stderr, "usage: %s [-n N] [-w N] [-e N] NAME=FUNC,...|NAME=none...\n",
		argv[0]);
	return 2;
}
