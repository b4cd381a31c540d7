// SPDX-License-Identifier: GPL-2.0
/*
 * The busy kernel: background actors that run the kernel's own mm machinery
 * on a test's pages while the test runs. Not a kselftest: `make stress
 * ACTORS=...` (tools/stress/run) wraps khugepaged_rs_stress in it, and any
 * command can be wrapped by hand in the VM (`make vm`).
 *
 *   khugepaged_rs_actors [-a ACTORS] [-d SECONDS] [-n COUNT] [-m MEMCG_MB]
 *                        [-s SEED] -- CMD [ARGS...]
 *
 * ACTORS is "all", "none" or a comma-separated list of:
 *
 *   khugepaged  the real khugepaged, aggressive: scan_sleep_millisecs 0,
 *               alloc_sleep_millisecs 100, pages_to_scan 4096,
 *               max_ptes_none 511, and shmem_enabled "advise" (if it was
 *               "never"), so that MADV_HUGEPAGE shmem mappings are its to
 *               collapse; its full_scans and pages_collapsed are counted
 *   compact     vm.compaction_proactiveness 100 (kcompactd), and
 *               compact_memory or a node's compact written every
 *               100-600 ms; the compact_* vm events are counted
 *   migrate     with two NUMA nodes or more (tools/vm/run --numa 2): every
 *               20-200 ms, migrate_pages(2) of a process of CMD's tree from
 *               one node to another, or move_pages(2) of up to 256 pages of
 *               its mappings whose path holds "krs_" (the test's files) to a
 *               node picked at random; raw syscalls, no libnuma
 *   memcg       CMD runs in a cgroup v2 memcg, memory.max MEMCG_MB (default
 *               48, below the default stress's 64 MiB of files), swapping
 *               to the VM's zram; every 0.5-2 s memory.reclaim asks for
 *               1-8 MiB back; memory.events and memory.stat are reported
 *   drop        every 100-800 ms, drop_caches (1 or 3) or
 *               POSIX_FADV_DONTNEED of the regular files named krs_* under
 *               /mnt/xfs, /mnt/ext4 and /mnt/tmpfs (all or a range)
 *   mthp        every 0.5-2 s, a per-size shmem mTHP knob below PMD size
 *               (hugepages-*kB/shmem_enabled) set to always, inherit,
 *               within_size, advise or never; and a tmpfs mounted
 *               huge=within_size at /mnt/tmpfs for the test's files
 *
 * Each actor is a process that stops when CMD exits, after SECONDS (default:
 * no limit but CMD's) or after COUNT actions (default 1000000), whichever
 * comes first; every setting changed is put back at the end. CMD runs with
 * KRS_ACTORS set to the actors started, and KRS_ACTORS_HOLD to a directory
 * through which it can ask them to stand still (krs_actors_hold()):
 *
 *   CMD creates DIR/hold. Each actor, between two actions, takes its
 *   pressure off (khugepaged: scan_sleep_millisecs an hour, and the scan
 *   it was in finished, khugepaged asleep in its wait; compact:
 *   compaction_proactiveness 0; memcg: memory.max "max"; the others: no
 *   action), then creates DIR/held-ACTOR and waits. CMD removes DIR/hold;
 *   each actor puts its pressure back, then removes DIR/held-ACTOR. An
 *   actor whose bound is reached serves holds until CMD exits.
 *
 * The status is CMD's, or 1 if an actor could not be set up or failed (an
 * unexpected errno). The report at the end gives each actor's own counts,
 * and the module's rollback_* and khugepaged-first results (extents found
 * already huge) over the run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/mempolicy.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "krs_test.h"

#define THP "/sys/kernel/mm/transparent_hugepage"
#define KHD THP "/khugepaged"
#define CG "/sys/fs/cgroup"
#define CG_DIR CG "/krs-busy"
#define TMPFS_DIR "/mnt/tmpfs"
#define MAX_NODES 8
#define MOVE_BATCH 256
#define STATBUF 16384

enum actor { A_KHUGEPAGED, A_COMPACT, A_MIGRATE, A_MEMCG, A_DROP, A_MTHP, NR_ACTORS };

static const char *const actor_names[NR_ACTORS] = {
	"khugepaged", "compact", "migrate", "memcg", "drop", "mthp",
};

/* Per actor: what it did, and errnos it did not expect. */
enum counter {
	C_ACTIONS, C_ERRORS, C_HOLDS,
	/* migrate */
	C_MIGRATE_CALLS, C_MIGRATE_NOT_MOVED, C_MOVE_CALLS, C_MOVE_PAGES, C_MOVE_MOVED,
	C_MOVE_ELSEWHERE, C_MOVE_EBUSY, C_MOVE_ENOENT, C_MOVE_EFAULT, C_MOVE_OTHER,
	C_MOVE_NO_STATUS, C_NO_PROCESS,
	/* compact */
	C_COMPACT_ALL, C_COMPACT_NODE,
	/* memcg */
	C_RECLAIM_WRITES, C_RECLAIM_EAGAIN,
	/* drop */
	C_DROP_CACHES, C_FADVISE_FILES, C_FADVISE_RANGES,
	/* mthp */
	C_MTHP_SETS,
	NR_COUNTERS
};

static const char *const counter_names[NR_COUNTERS] = {
	"actions", "unexpected errors", "holds",
	"migrate_pages calls", "migrate_pages pages not moved", "move_pages calls",
	"move_pages pages asked", "move_pages pages now on the target",
	"move_pages pages left on another node", "move_pages -EBUSY", "move_pages -ENOENT",
	"move_pages -EFAULT", "move_pages other errno", "move_pages status not written",
	"no process of CMD to act on",
	"compact_memory writes", "node compact writes",
	"memory.reclaim writes", "memory.reclaim EAGAIN",
	"drop_caches writes", "files fadvised (DONTNEED)", "ranges fadvised (DONTNEED)",
	"shmem_enabled knobs set",
};

struct shared {
	int stop;
	pid_t cmd;
	uint64_t c[NR_ACTORS][NR_COUNTERS];
	uint64_t move_errno[134];	/* move_pages' per-page status, the other errnos */
	char first_error[512];
};

static struct shared *sh;
static uint64_t deadline_ms, max_count = 1000000, seed;
static unsigned int memcg_mb = 48;
static int nr_nodes;

#define ADD(a, k, n) __atomic_add_fetch(&sh->c[a][k], (n), __ATOMIC_RELAXED)

static void actor_error(enum actor a, const char *fmt, ...) __printf(2, 3);

/* An unexpected failure: printed, counted, fails the run. */
static void actor_error(enum actor a, const char *fmt, ...)
{
	char msg[sizeof(sh->first_error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ADD(a, C_ERRORS, 1) == 1 && !sh->first_error[0])
		memcpy(sh->first_error, msg, sizeof(msg));
	dprintf(2, "# actors: %s: %s\n", actor_names[a], msg);
}

/* ---- settings, put back at the end --------------------------------------- */

struct setting {
	char path[128];
	char saved[64];
};

static struct setting settings[64];
static int nr_settings;

/* The current value: the bracketed word of a choice, else the first line. */
static int read_value(const char *path, char *out, size_t size)
{
	char buf[256], *v = buf;
	ssize_t n = krs_read_file(path, buf, sizeof(buf));
	size_t len;

	if (n < 0)
		return (int)n;
	if (strchr(buf, '['))
		v = strchr(buf, '[') + 1;
	len = strcspn(v, "]\n");
	if (len >= size)
		return -EOVERFLOW;
	memcpy(out, v, len);
	out[len] = '\0';
	return 0;
}

/* Set @path to @value, saving what it held first (once per path). */
static int set_value(const char *path, const char *value)
{
	struct setting *s = NULL;
	int i;

	for (i = 0; i < nr_settings; i++)
		if (!strcmp(settings[i].path, path))
			s = &settings[i];
	if (!s && nr_settings < (int)ARRAY_SIZE(settings)) {
		s = &settings[nr_settings];
		snprintf(s->path, sizeof(s->path), "%s", path);
		if (read_value(path, s->saved, sizeof(s->saved)))
			return -errno;
		nr_settings++;
	}
	return krs_write_str(path, value);
}

static void restore_settings(void)
{
	for (int i = nr_settings - 1; i >= 0; i--)
		if (krs_write_str(settings[i].path, settings[i].saved))
			printf("# actors: could not put %s back to %s\n", settings[i].path,
			       settings[i].saved);
	nr_settings = 0;
}

static long read_long(const char *path)
{
	char buf[64];

	return krs_read_file(path, buf, sizeof(buf)) > 0 ? atol(buf) : -1;
}

/* ---- the actors ------------------------------------------------------------ */

static struct krs_rng rng;

static size_t below(size_t n)
{
	return krs_below(&rng, n);
}

static bool stopping(void)
{
	return __atomic_load_n(&sh->stop, __ATOMIC_RELAXED);
}

static bool go_on(enum actor a)
{
	return !stopping() &&
	       (!deadline_ms || krs_now_ms() < deadline_ms) && sh->c[a][C_ACTIONS] < max_count;
}

/* ---- the hold (KRS_ACTORS_HOLD) ------------------------------------------- */

static char hold_dir[64];

static void hold_path(char *path, size_t size, enum actor a)
{
	if (a == NR_ACTORS)
		snprintf(path, size, "%s/hold", hold_dir);
	else
		snprintf(path, size, "%s/held-%s", hold_dir, actor_names[a]);
}

static bool hold_asked(void)
{
	char path[96];

	hold_path(path, sizeof(path), NR_ACTORS);
	return !access(path, F_OK);
}

/*
 * Whether khugepaged sleeps in its own wait (between two scans, or after a
 * failed allocation): state S with a wchan of khugepaged's, not a folio
 * lock or an allocation inside a collapse.
 */
static bool khugepaged_waiting(pid_t pid)
{
	char path[64], wchan[64] = "";

	snprintf(path, sizeof(path), "/proc/%d/wchan", pid);
	krs_read_file(path, wchan, sizeof(wchan));
	return krs_task_state(pid) == 'S' && !strncmp(wchan, "khugepaged", 10);
}

static char hold_saved[64];

/* The setting @a's hold changes, and the value it holds it at. */
static const char *hold_setting(enum actor a, const char **value)
{
	switch (a) {
	case A_KHUGEPAGED:
		*value = "3600000";
		return KHD "/scan_sleep_millisecs";
	case A_COMPACT:
		*value = "0";
		return "/proc/sys/vm/compaction_proactiveness";
	case A_MEMCG:
		*value = "max";
		return CG_DIR "/memory.max";
	default:
		return NULL;
	}
}

/* Take @a's pressure off; what hold_resume() puts back is saved. */
static void hold_pause(enum actor a)
{
	const char *value, *path = hold_setting(a, &value);
	pid_t pid;

	hold_saved[0] = '\0';
	if (!path)
		return;
	if (read_value(path, hold_saved, sizeof(hold_saved)) || krs_write_str(path, value)) {
		actor_error(a, "hold: %s cannot be set to %s", path, value);
		hold_saved[0] = '\0';
		return;
	}
	if (a != A_KHUGEPAGED)
		return;
	/*
	 * The write wakes khugepaged for a scan at once, then it sleeps the
	 * hour: wait for that sleep, three looks 20 ms apart, 60 s at most.
	 */
	pid = krs_khugepaged_pid();
	for (int still = 0, tries = 0; pid && still < 3 && tries < 3000; tries++) {
		still = khugepaged_waiting(pid) ? still + 1 : 0;
		krs_sleep_ms(20);
	}
}

static void hold_resume(enum actor a)
{
	const char *value, *path = hold_setting(a, &value);

	if (path && hold_saved[0] && krs_write_str(path, hold_saved))
		actor_error(a, "hold: %s cannot be put back to %s", path, hold_saved);
}

/*
 * Asleep until DIR/hold is removed (inotify, a look a second for the
 * command's exit): a held actor should not wake every few milliseconds.
 * Wake-ups preempt the command on its CPU and let the scheduler move it to
 * the other one, where its collapse's lru_add_drain() after a swap-in
 * misses the folio left in the first CPU's LRU batch (SCAN_DEL_PAGE_LRU).
 */
static void wait_hold_end(void)
{
	int fd = inotify_init1(IN_CLOEXEC);

	if (fd >= 0 && inotify_add_watch(fd, hold_dir, IN_DELETE | IN_MOVED_FROM) < 0) {
		close(fd);
		fd = -1;
	}
	while (hold_asked() && !stopping()) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char buf[4096];

		if (fd < 0) {
			krs_sleep_ms(100);
			continue;
		}
		if (poll(&p, 1, 1000) > 0 && read(fd, buf, sizeof(buf)) < 0 && errno != EINTR)
			break;
	}
	if (fd >= 0)
		close(fd);
}

/* Between two actions: stand still while the command asks it. */
static void hold_point(enum actor a)
{
	char held[96];
	int fd;

	if (!hold_dir[0] || !hold_asked())
		return;
	hold_pause(a);
	hold_path(held, sizeof(held), a);
	fd = open(held, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		actor_error(a, "hold: %s: %s", held, strerror(errno));
	else
		close(fd);
	krs_trace_mark("krs actor %s held\n", actor_names[a]);
	ADD(a, C_HOLDS, 1);
	wait_hold_end();
	hold_resume(a);
	unlink(held);
	krs_trace_mark("krs actor %s released\n", actor_names[a]);
}

/* Sleep @ms between two actions, serving holds; back early at the bound. */
static void nap(enum actor a, unsigned int ms)
{
	uint64_t end = krs_now_ms() + ms, now;

	for (;;) {
		hold_point(a);
		now = krs_now_ms();
		if (!go_on(a) || now >= end)
			return;
		krs_sleep_ms(end - now < 20 ? end - now : 20);
	}
}

/* After its bound: serve the holds until the command exits. */
static int serve_holds(enum actor a)
{
	while (!stopping()) {
		hold_point(a);
		krs_sleep_ms(20);
	}
	return 0;
}

/* The directory and what a command that died holding left in it. */
static void remove_hold_dir(void)
{
	char path[96];

	for (int a = 0; a <= NR_ACTORS; a++) {
		hold_path(path, sizeof(path), a);
		unlink(path);
	}
	rmdir(hold_dir);
}

/* ---- the actors' loops ------------------------------------------------------ */

static int compact_loop(void)
{
	char path[96];

	while (go_on(A_COMPACT)) {
		int node = below(nr_nodes + 1), ret;

		krs_trace_mark("krs actor compact %d\n", node);
		if (node == nr_nodes) {
			ret = krs_write_str("/proc/sys/vm/compact_memory", "1");
			ADD(A_COMPACT, C_COMPACT_ALL, 1);
		} else {
			snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/compact",
				 node);
			ret = krs_write_str(path, "1");
			ADD(A_COMPACT, C_COMPACT_NODE, 1);
		}
		if (ret)
			actor_error(A_COMPACT, "compact: %s", strerror(-ret));
		ADD(A_COMPACT, C_ACTIONS, 1);
		nap(A_COMPACT, 100 + below(500));
	}
	return 0;
}

/* Whether @pid is CMD or one of its descendants (through /proc ppid). */
static bool in_cmd_tree(pid_t pid)
{
	for (int depth = 0; pid > 1 && depth < 16; depth++) {
		char path[64], buf[512], *p;

		if (pid == sh->cmd)
			return true;
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		if (krs_read_file(path, buf, sizeof(buf)) <= 0)
			return false;
		p = strrchr(buf, ')');
		if (!p || sscanf(p + 2, "%*c %d", &pid) != 1)
			return false;
	}
	return false;
}

/* A process of CMD's tree picked at random, 0 if none. */
static pid_t pick_process(void)
{
	pid_t pids[256];
	int n = 0;
	DIR *d = opendir("/proc");
	struct dirent *e;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < (int)ARRAY_SIZE(pids)) {
		pid_t pid = atoi(e->d_name);

		if (pid > 1 && in_cmd_tree(pid))
			pids[n++] = pid;
	}
	closedir(d);
	return n ? pids[below(n)] : 0;
}

/* Up to @max page addresses of @pid's krs_ mappings, from one at random. */
static size_t pick_pages(pid_t pid, void **pages, size_t max)
{
	unsigned long lo[64], hi[64];
	char path[64], line[512];
	size_t n = 0, k, npages;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (n < ARRAY_SIZE(lo) && fgets(line, sizeof(line), f))
		if (strstr(line, "krs_") && sscanf(line, "%lx-%lx", &lo[n], &hi[n]) == 2)
			n++;
	fclose(f);
	if (!n)
		return 0;
	k = below(n);
	npages = (hi[k] - lo[k]) / KRS_PAGE_SIZE;
	if (npages > max) {
		unsigned long first = below(npages - max + 1);

		lo[k] += first * KRS_PAGE_SIZE;
		npages = max;
	}
	for (size_t i = 0; i < npages; i++)
		pages[i] = (void *)(lo[k] + i * KRS_PAGE_SIZE);
	return npages;
}

/*
 * The process picked has exited (ESRCH), or is exiting: its mm gone,
 * get_task_mm() finds none and both syscalls say EINVAL.
 */
static bool gone(int err)
{
	return err == ESRCH || err == EINVAL;
}

/* A move_pages() status that is neither a node nor an errno counted apart. */
static void count_move_status(int st)
{
	if (st == INT_MIN) {
		ADD(A_MIGRATE, C_MOVE_NO_STATUS, 1);
		return;
	}
	ADD(A_MIGRATE, C_MOVE_OTHER, 1);
	if (st < 0 && -st < (int)ARRAY_SIZE(sh->move_errno))
		__atomic_add_fetch(&sh->move_errno[-st], 1, __ATOMIC_RELAXED);
}

static int migrate_loop(void)
{
	static void *pages[MOVE_BATCH];
	static int nodes[MOVE_BATCH], status[MOVE_BATCH];

	while (go_on(A_MIGRATE)) {
		pid_t pid = pick_process();
		int to = below(nr_nodes);

		ADD(A_MIGRATE, C_ACTIONS, 1);
		if (!pid) {
			ADD(A_MIGRATE, C_NO_PROCESS, 1);
		} else if (below(3) == 0) {
			/* Every page of @pid from each other node to @to. */
			unsigned long dest = 1UL << to, from;
			long r;

			from = ((1UL << nr_nodes) - 1) & ~dest;
			r = syscall(SYS_migrate_pages, pid, MAX_NODES + 1, &from, &dest);
			krs_trace_mark("krs actor migrate_pages pid %d to node %d: %ld\n", pid, to,
				       r);
			ADD(A_MIGRATE, C_MIGRATE_CALLS, 1);
			if (r > 0)
				ADD(A_MIGRATE, C_MIGRATE_NOT_MOVED, r);
			else if (r < 0 && !gone(errno))
				actor_error(A_MIGRATE, "migrate_pages(%d): %s", pid,
					    strerror(errno));
		} else {
			size_t n = pick_pages(pid, pages, 1 + below(MOVE_BATCH));
			long r;

			for (size_t i = 0; i < n; i++) {
				nodes[i] = below(4) ? to : (int)below(nr_nodes);
				status[i] = INT_MIN;	/* not written by the kernel */
			}
			/*
			 * A positive return: the call gave up after a batch that
			 * did not all move, and counts the pages it did not try
			 * too, whose status it leaves unwritten.
			 */
			if (!n)
				goto next;
			r = syscall(SYS_move_pages, pid, n, pages, nodes, status, MPOL_MF_MOVE_ALL);
			krs_trace_mark("krs actor move_pages pid %d %zu pages from %p: %ld\n",
				       pid, n, pages[0], r);
			ADD(A_MIGRATE, C_MOVE_CALLS, 1);
			ADD(A_MIGRATE, C_MOVE_PAGES, n);
			if (r < 0) {
				/* Or its mapping went (moved, unmapped). */
				if (!gone(errno) && errno != ENOENT && errno != EFAULT)
					actor_error(A_MIGRATE, "move_pages(%d, %zu pages): %s", pid,
						    n, strerror(errno));
				goto next;
			}
			for (size_t i = 0; i < n; i++) {
				if (status[i] == nodes[i])
					ADD(A_MIGRATE, C_MOVE_MOVED, 1);
				else if (status[i] >= 0)
					ADD(A_MIGRATE, C_MOVE_ELSEWHERE, 1);
				else if (status[i] == -EBUSY)
					ADD(A_MIGRATE, C_MOVE_EBUSY, 1);
				else if (status[i] == -ENOENT)
					ADD(A_MIGRATE, C_MOVE_ENOENT, 1);
				else if (status[i] == -EFAULT)
					ADD(A_MIGRATE, C_MOVE_EFAULT, 1);
				else
					count_move_status(status[i]);
			}
		}
next:
		nap(A_MIGRATE, 20 + below(180));
	}
	return 0;
}

static int memcg_loop(void)
{
	char amount[32];

	while (go_on(A_MEMCG)) {
		int ret;

		nap(A_MEMCG, 500 + below(1500));
		if (!go_on(A_MEMCG))
			break;
		snprintf(amount, sizeof(amount), "%zuM", 1 + below(8));
		ret = krs_write_str(CG_DIR "/memory.reclaim", amount);
		krs_trace_mark("krs actor memory.reclaim %s: %d\n", amount, ret);
		ADD(A_MEMCG, C_RECLAIM_WRITES, 1);
		ADD(A_MEMCG, C_ACTIONS, 1);
		/* EAGAIN: it could not reclaim that much (after retries). */
		if (ret == -EAGAIN)
			ADD(A_MEMCG, C_RECLAIM_EAGAIN, 1);
		else if (ret && ret != -EBUSY)
			actor_error(A_MEMCG, "memory.reclaim: %s", strerror(-ret));
	}
	return 0;
}

static const char *const file_dirs[] = { "/mnt/xfs", "/mnt/ext4", TMPFS_DIR };

/* POSIX_FADV_DONTNEED on every krs_* regular file of the mounts. */
static void fadvise_files(void)
{
	for (size_t k = 0; k < ARRAY_SIZE(file_dirs); k++) {
		DIR *d = opendir(file_dirs[k]);
		struct dirent *e;

		while (d && (e = readdir(d))) {
			struct stat st;
			off_t off = 0, len = 0;
			int fd;

			if (strncmp(e->d_name, "krs_", 4))
				continue;
			fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC | O_NOATIME);
			if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
				if (fd >= 0)
					close(fd);
				continue;
			}
			if (below(2) && st.st_size > (off_t)KRS_PAGE_SIZE) {
				off = below(st.st_size / KRS_PAGE_SIZE) * KRS_PAGE_SIZE;
				len = (1 + below(1024)) * KRS_PAGE_SIZE;
				ADD(A_DROP, C_FADVISE_RANGES, 1);
			} else {
				ADD(A_DROP, C_FADVISE_FILES, 1);
			}
			errno = posix_fadvise(fd, off, len, POSIX_FADV_DONTNEED);
			krs_trace_mark("krs actor fadvise %s/%s offset=%lld len=%lld: %d\n",
				       file_dirs[k], e->d_name, (long long)off, (long long)len,
				       errno);
			if (errno)
				actor_error(A_DROP, "fadvise %s/%s: %s", file_dirs[k], e->d_name,
					    strerror(errno));
			close(fd);
		}
		if (d)
			closedir(d);
	}
}

static int drop_loop(void)
{
	while (go_on(A_DROP)) {
		if (below(3) == 0) {
			const char *v = below(2) ? "1" : "3";
			int ret = krs_write_str("/proc/sys/vm/drop_caches", v);

			krs_trace_mark("krs actor drop_caches %s\n", v);

			ADD(A_DROP, C_DROP_CACHES, 1);
			if (ret)
				actor_error(A_DROP, "drop_caches: %s", strerror(-ret));
		} else {
			fadvise_files();
		}
		ADD(A_DROP, C_ACTIONS, 1);
		nap(A_DROP, 100 + below(700));
	}
	return 0;
}

/* The per-size knobs below PMD size: hugepages-<kB>kB with shmem_enabled. */
static int mthp_sizes(unsigned int *kb, int max)
{
	DIR *d = opendir(THP);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)) && n < max) {
		unsigned int size;
		char path[320];

		if (sscanf(e->d_name, "hugepages-%ukB", &size) != 1 || size >= 2048)
			continue;
		snprintf(path, sizeof(path), THP "/%s/shmem_enabled", e->d_name);
		if (!access(path, W_OK))
			kb[n++] = size;
	}
	if (d)
		closedir(d);
	return n;
}

static int mthp_loop(void)
{
	static const char *const values[] = { "always", "inherit", "within_size", "advise",
					      "never" };
	unsigned int kb[16];
	int n = mthp_sizes(kb, ARRAY_SIZE(kb));
	char path[160];

	while (n && go_on(A_MTHP)) {
		const char *v = values[below(ARRAY_SIZE(values))];
		int ret;

		snprintf(path, sizeof(path), THP "/hugepages-%ukB/shmem_enabled", kb[below(n)]);
		/* Saved by main() before the actors started. */
		ret = krs_write_str(path, v);
		krs_trace_mark("krs actor %s <- %s\n", path + strlen(THP) + 1, v);
		ADD(A_MTHP, C_MTHP_SETS, 1);
		ADD(A_MTHP, C_ACTIONS, 1);
		if (ret)
			actor_error(A_MTHP, "%s <- %s: %s", path, v, strerror(-ret));
		nap(A_MTHP, 500 + below(1500));
	}
	return 0;
}

/* khugepaged needs no process: its knobs are set; count its scans. */
static int khugepaged_loop(void)
{
	long scans0 = read_long(KHD "/full_scans");

	while (go_on(A_KHUGEPAGED)) {
		nap(A_KHUGEPAGED, 100);
		sh->c[A_KHUGEPAGED][C_ACTIONS] = read_long(KHD "/full_scans") - scans0;
	}
	/* The bound reached: khugepaged back to sleeping between scans. */
	krs_write_str(KHD "/scan_sleep_millisecs", "10000");
	return 0;
}

static int (*const loops[NR_ACTORS])(void) = {
	khugepaged_loop, compact_loop, migrate_loop, memcg_loop, drop_loop, mthp_loop,
};

/* ---- set-up ------------------------------------------------------------------ */

static int count_nodes(void)
{
	char path[64];
	int n = 0;

	while (n < MAX_NODES) {
		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", n);
		if (access(path, F_OK))
			break;
		n++;
	}
	return n ? n : 1;
}

static bool tmpfs_mounted;

/* 0, or why the actor cannot run here (a string for the report). */
static const char *setup(enum actor a)
{
	static char why[160];
	unsigned int kb[16];
	char path[160];
	int n;

	switch (a) {
	case A_KHUGEPAGED:
		if (set_value(KHD "/scan_sleep_millisecs", "0") ||
		    set_value(KHD "/alloc_sleep_millisecs", "100") ||
		    set_value(KHD "/pages_to_scan", "4096") ||
		    set_value(KHD "/max_ptes_none", "511"))
			return "the khugepaged knobs cannot be set";
		if (read_value(THP "/shmem_enabled", path, sizeof(path)))
			return "no shmem_enabled";
		if (!strcmp(path, "never") && set_value(THP "/shmem_enabled", "advise"))
			return "shmem_enabled cannot be set";
		if (read_value(THP "/enabled", path, sizeof(path)) || !strcmp(path, "never"))
			set_value(THP "/enabled", "madvise");
		return NULL;
	case A_COMPACT:
		if (set_value("/proc/sys/vm/compaction_proactiveness", "100"))
			return "no vm.compaction_proactiveness";
		return NULL;
	case A_MIGRATE:
		if (nr_nodes < 2)
			return "one NUMA node (tools/vm/run --numa 2)";
		return NULL;
	case A_MEMCG:
		if (access(CG "/cgroup.controllers", F_OK) &&
		    mount("cgroup2", CG, "cgroup2", 0, NULL))
			return "cgroup2 cannot be mounted";
		if (krs_write_str(CG "/cgroup.subtree_control", "+memory"))
			return "no memory controller";
		if (mkdir(CG_DIR, 0755) && errno != EEXIST)
			return "cannot make the cgroup";
		snprintf(path, sizeof(path), "%uM", memcg_mb);
		if (krs_write_str(CG_DIR "/memory.max", path))
			return "cannot set memory.max";
		return NULL;
	case A_DROP:
		return NULL;
	case A_MTHP:
		n = mthp_sizes(kb, ARRAY_SIZE(kb));
		if (!n)
			return "no per-size shmem mTHP knobs";
		for (int i = 0; i < n; i++) {
			snprintf(path, sizeof(path), THP "/hugepages-%ukB/shmem_enabled", kb[i]);
			if (set_value(path, below(2) ? "always" : "inherit"))
				return "a per-size shmem_enabled cannot be set";
		}
		mkdir(TMPFS_DIR, 0755);
		if (mount("krs-tmpfs", TMPFS_DIR, "tmpfs", 0, "huge=within_size,size=256m")) {
			snprintf(why, sizeof(why), "tmpfs huge=within_size: %s", strerror(errno));
			return why;
		}
		tmpfs_mounted = true;
		return NULL;
	case NR_ACTORS:
		break;
	}
	return "unknown";
}

/* ---- the report --------------------------------------------------------------- */

static char vm0[STATBUF], vm1[STATBUF], mod0[STATBUF], mod1[STATBUF];
static long khd_collapsed0, khd_scans0;

static long long delta(const char *a, const char *b, const char *name)
{
	long long x = krs_stat(a, name), y = krs_stat(b, name);

	return y < 0 ? 0 : y - (x < 0 ? 0 : x);
}

static void print_vmstat(const char *const *names, size_t n)
{
	printf("#     /proc/vmstat:");
	for (size_t i = 0; i < n; i++)
		printf(" %s +%lld", names[i], delta(vm0, vm1, names[i]));
	printf("\n");
}

static void print_file_keys(const char *path, const char *const *keys, size_t n)
{
	static char buf[STATBUF];

	if (krs_read_file(path, buf, sizeof(buf)) <= 0)
		return;
	printf("#     %s:", strrchr(path, '/') + 1);
	for (size_t i = 0; i < n; i++)
		if (krs_stat(buf, keys[i]) >= 0)
			printf(" %s %lld", keys[i], krs_stat(buf, keys[i]));
	printf("\n");
}

static void report(const bool *on, const char *const *skipped)
{
	static const char *const khd_vm[] = { "thp_collapse_alloc", "thp_collapse_alloc_failed",
					      "thp_file_alloc", "thp_file_mapped" };
	static const char *const compact_vm[] = {
		"compact_stall", "compact_success", "compact_fail", "compact_migrate_scanned",
		"compact_free_scanned", "compact_isolated", "compact_daemon_wake" };
	static const char *const migrate_vm[] = { "pgmigrate_success", "pgmigrate_fail",
						  "thp_migration_success", "thp_migration_fail",
						  "thp_migration_split" };
	static const char *const memcg_vm[] = { "pswpin", "pswpout" };
	static const char *const memcg_events[] = { "low", "high", "max", "oom", "oom_kill" };
	static const char *const memcg_stat[] = {
		"anon", "file", "shmem", "file_thp", "shmem_thp", "pgscan", "pgsteal",
		"workingset_refault_anon", "workingset_refault_file", "thp_collapse_alloc",
		"swpin_zero", "swpout_zero" };
	static const char *const drop_vm[] = { "drop_pagecache", "drop_slab", "pginodesteal" };

	printf("# ---- actors (%s) ----\n", getenv("KRS_ACTORS") ?: "none");
	for (int a = 0; a < NR_ACTORS; a++) {
		if (skipped[a])
			printf("#   %-10s not run: %s\n", actor_names[a], skipped[a]);
		if (!on[a])
			continue;
		printf("#   %s:", actor_names[a]);
		for (int k = 0; k < NR_COUNTERS; k++)
			if (sh->c[a][k] || k <= C_ERRORS)
				printf("%s %s %llu", k ? "," : "", counter_names[k],
				       (unsigned long long)sh->c[a][k]);
		printf("\n");
		switch (a) {
		case A_KHUGEPAGED:
			printf("#     khugepaged: full_scans +%ld, pages_collapsed +%ld\n",
			       read_long(KHD "/full_scans") - khd_scans0,
			       read_long(KHD "/pages_collapsed") - khd_collapsed0);
			print_vmstat(khd_vm, ARRAY_SIZE(khd_vm));
			break;
		case A_COMPACT:
			print_vmstat(compact_vm, ARRAY_SIZE(compact_vm));
			break;
		case A_MIGRATE:
			for (size_t e = 1; e < ARRAY_SIZE(sh->move_errno); e++)
				if (sh->move_errno[e])
					printf("#     move_pages status -%s: %llu\n",
					       strerrorname_np(e) ?: "?",
					       (unsigned long long)sh->move_errno[e]);
			print_vmstat(migrate_vm, ARRAY_SIZE(migrate_vm));
			break;
		case A_MEMCG:
			printf("#     memory.max %u MiB, memory.peak %ld bytes\n", memcg_mb,
			       read_long(CG_DIR "/memory.peak"));
			print_file_keys(CG_DIR "/memory.events", memcg_events,
					ARRAY_SIZE(memcg_events));
			print_file_keys(CG_DIR "/memory.stat", memcg_stat, ARRAY_SIZE(memcg_stat));
			print_vmstat(memcg_vm, ARRAY_SIZE(memcg_vm));
			break;
		case A_DROP:
			print_vmstat(drop_vm, ARRAY_SIZE(drop_vm));
			break;
		}
	}
	if (mod0[0] && krs_stats_read(mod1, sizeof(mod1)) > 0) {
		const char *line = mod1;

		printf("#   the module's races over the run (stats, non-zero):");
		while (line && *line) {
			char name[64];
			long long v;

			if (sscanf(line, "%63s %lld", name, &v) == 2 &&
			    (!strncmp(name, "rollback_", 9) || !strcmp(name, "SCAN_PMD_MAPPED") ||
			     !strcmp(name, "SCAN_PTE_MAPPED_HUGEPAGE") ||
			     !strcmp(name, "SCAN_PAGE_COMPOUND")) &&
			    delta(mod0, mod1, name))
				printf(" %s %lld", name, delta(mod0, mod1, name));
			line = strchr(line, '\n');
			if (line)
				line++;
		}
		printf("\n");
	}
}

/* ---- main ------------------------------------------------------------------- */

static void print_usage(const char *prog)
{
	fprintf(stderr, "%s %s [-a all|none|ACTOR,...] [-d SECONDS] [-n COUNT] [-m MEMCG_MB]",
		"usage:", prog);
	fprintf(stderr, " [-s SEED] -- CMD [ARGS...]\nactors: %s\n",
		"khugepaged compact migrate memcg drop mthp");
	exit(2);
}

static bool parse_actors(const char *list, bool *on)
{
	char buf[256], *tok, *save;

	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int a;

		if (!strcmp(tok, "none"))
			continue;
		if (!strcmp(tok, "all")) {
			for (a = 0; a < NR_ACTORS; a++)
				on[a] = true;
			continue;
		}
		for (a = 0; a < NR_ACTORS && strcmp(tok, actor_names[a]); a++)
			;
		if (a == NR_ACTORS)
			return false;
		on[a] = true;
	}
	return true;
}

int main(int argc, char **argv)
{
	const char *skipped[NR_ACTORS] = { 0 };
	bool on[NR_ACTORS] = { 0 };
	pid_t pids[NR_ACTORS] = { 0 };
	char names[256] = "";
	unsigned int seconds = 0;
	int opt, status = 0, rc;
	size_t len = 0;
	pid_t cmd;

	seed = time(NULL) ^ getpid();
	while ((opt = getopt(argc, argv, "+a:d:n:m:s:")) != -1) {
		switch (opt) {
		case 'a':
			if (!parse_actors(optarg, on))
				print_usage(argv[0]);
			break;
		case 'd':
			seconds = strtoul(optarg, NULL, 0);
			break;
		case 'n':
			max_count = strtoull(optarg, NULL, 0);
			break;
		case 'm':
			memcg_mb = strtoul(optarg, NULL, 0);
			break;
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		default:
			print_usage(argv[0]);
		}
	}
	if (optind >= argc || !memcg_mb)
		print_usage(argv[0]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 1;
	rng.s = (seed + 1) * 0x9e3779b97f4a7c15ULL;
	nr_nodes = count_nodes();
	if (seconds)
		deadline_ms = krs_now_ms() + seconds * 1000ULL;
	khd_scans0 = read_long(KHD "/full_scans");
	khd_collapsed0 = read_long(KHD "/pages_collapsed");
	krs_read_file("/proc/vmstat", vm0, sizeof(vm0));
	if (krs_stats_read(mod0, sizeof(mod0)) < 0)
		mod0[0] = '\0';
	snprintf(hold_dir, sizeof(hold_dir), "/tmp/krs-actors.XXXXXX");
	if (!mkdtemp(hold_dir)) {
		perror("mkdtemp");
		return 1;
	}
	setenv("KRS_ACTORS_HOLD", hold_dir, 1);
	for (int a = 0; a < NR_ACTORS; a++) {
		if (!on[a])
			continue;
		skipped[a] = setup(a);
		if (skipped[a]) {
			on[a] = false;
			continue;
		}
		len += snprintf(names + len, sizeof(names) - len, "%s%s", len ? "," : "",
				actor_names[a]);
	}
	setenv("KRS_ACTORS", len ? names : "none", 1);
	printf("# actors: %s (%d NUMA node(s), seed %#llx%s)\n", len ? names : "none", nr_nodes,
	       (unsigned long long)seed, seconds ? ", time-bounded" : "");
	for (int a = 0; a < NR_ACTORS; a++)
		if (skipped[a])
			printf("# actors: %s not run: %s\n", actor_names[a], skipped[a]);

	/* Stored by the parent only: the child's 0 must not land in @sh. */
	cmd = fork();
	if (cmd == 0) {
		char self[32];

		snprintf(self, sizeof(self), "%d", getpid());
		if (on[A_MEMCG] && krs_write_str(CG_DIR "/cgroup.procs", self)) {
			perror("joining the memcg");
			_exit(1);
		}
		execvp(argv[optind], argv + optind);
		perror(argv[optind]);
		_exit(127);
	}
	if (cmd < 0)
		return 1;
	__atomic_store_n(&sh->cmd, cmd, __ATOMIC_SEQ_CST);
	for (int a = 0; a < NR_ACTORS; a++) {
		if (!on[a])
			continue;
		pids[a] = fork();
		if (pids[a] == 0) {
			int ret;

			rng.s ^= (a + 1) * 0xbf58476d1ce4e5b9ULL;
			ret = loops[a]();
			_exit(ret | serve_holds(a));
		}
	}
	waitpid(cmd, &status, 0);
	__atomic_store_n(&sh->stop, 1, __ATOMIC_SEQ_CST);
	for (int a = 0; a < NR_ACTORS; a++)
		if (pids[a] > 0)
			waitpid(pids[a], NULL, 0);
	krs_read_file("/proc/vmstat", vm1, sizeof(vm1));
	report(on, skipped);
	restore_settings();
	if (tmpfs_mounted)
		umount2(TMPFS_DIR, MNT_DETACH);
	if (on[A_MEMCG])
		rmdir(CG_DIR);
	remove_hold_dir();
	rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	for (int a = 0; a < NR_ACTORS; a++)
		if (sh->c[a][C_ERRORS]) {
			printf("# actors: FAILED: %s\n", sh->first_error);
			return rc ? rc : 1;
		}
	return rc;
}
