/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers shared by the khugepaged_rs selftests. */
#ifndef KRS_TEST_H
#define KRS_TEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kselftest.h"

#ifndef fallthrough
#define fallthrough __attribute__((__fallthrough__))
#endif

/*
 * Takes the result of a call that has no use for it (a wake-up byte, a
 * write from a signal handler, a best-effort fallocate), so that
 * warn_unused_result is satisfied.
 */
static inline void krs_ignore(long ret)
{
	(void)ret;
}

/* *@p, read from memory every time (as READ_ONCE() does). */
static inline uint64_t krs_read_u64(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

#define KRS_DEBUGFS "/sys/kernel/debug/khugepaged_rs"
#define KRS_MODNAME "khugepaged_rs"

/*
 * Path of khugepaged_rs.ko: $KHUGEPAGED_RS_KO, ./, /krs/, or where
 * modules_install puts it (/lib/modules/$(uname -r)/{updates,extra}/, as
 * .ko or compressed .ko.xz, .ko.zst, .ko.gz); NULL if none. A program
 * linking krs_test.c is skipped as a whole (KSFT_SKIP) before main() when
 * not run as root, or when the module is neither loaded nor found.
 */
const char *krs_module_path(void);
bool krs_module_loaded(void);
/* finit_module() with @params; 0 or -errno. */
int krs_load(const char *params);
/* delete_module(); 0 or -errno. */
int krs_unload(void);
/* Load unless already loaded; 0 or -errno. */
int krs_ensure_loaded(void);
/* The type @dir is mounted with in /proc/mounts, in @type; false if none. */
bool krs_mounted_type(const char *dir, char *type, size_t size);
/* Write @s to the file @path; 0 or -errno. */
int krs_write_str(const char *path, const char *s);
/* The selected value of a sysfs choice file ("a [b] c" -> "b"); 0 or -errno. */
int krs_sysfs_choice(const char *path, char *out, size_t size);
/*
 * THP "enabled" from "always" to "madvise", so that khugepaged leaves the
 * test's regular files alone (file_thp_enabled()); what it was goes to
 * @prev ("" when nothing was changed), for krs_thp_restore(). 0 or -errno.
 */
int krs_thp_madvise(char *prev, size_t size);
void krs_thp_restore(const char *prev);
/* Read a whole file into @buf (NUL-terminated); bytes read or -errno. */
ssize_t krs_read_file(const char *path, char *buf, size_t size);
/* Read the kernel log (klogctl) into @buf; bytes or -errno. */
ssize_t krs_read_kmsg(char *buf, size_t size);
/* Run @fn(arg) in a child with uid/gid 65534; returns the child's exit code. */
int krs_as_nobody(int (*fn)(void *), void *arg);
/*
 * Run fn(arg) in a child without the capabilities in the mask @caps
 * (1ULL << CAP_*) in its effective and permitted sets; its exit status.
 */
int krs_without_caps(uint64_t caps, int (*fn)(void *), void *arg);

/* ---- randomness: the one PRNG of every program (splitmix64) ------------- */

struct krs_rng {
	uint64_t s;
};

uint64_t krs_rand(struct krs_rng *r);
/* Uniform enough in [0, n); 0 when n is 0. */
size_t krs_below(struct krs_rng *r, size_t n);
/* True with probability @percent / 100. */
bool krs_chance(struct krs_rng *r, unsigned int percent);
/* Take a page reference on the page at @page (vmsplice into a new pipe). */
int krs_pin_page(void *page, int pipefd[2]);

/* ---- collapse tests ---------------------------------------------------- */

#define KRS_COLLAPSE KRS_DEBUGFS "/collapse"
#define KRS_STATS KRS_DEBUGFS "/stats"
/* The madvise(2) advice the tests use, where the libc's headers lack them. */
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define KRS_PAGE_SIZE 4096UL
#define KRS_PMD_SIZE (2UL << 20)
#define KRS_PMD_PAGES (KRS_PMD_SIZE / KRS_PAGE_SIZE)

/* Map @len at a 2 MiB-aligned address (reserve PROT_NONE, MAP_FIXED inside, trim). */
void *krs_map_aligned(size_t len, int prot, int flags, int fd, off_t off);
/* End of the user address space (TASK_SIZE): 47 or 56 bits (LA57) less a page. */
unsigned long krs_user_limit(void);
/*
 * A 2 MiB-aligned range of up to @want bytes (at least 2 MiB) that nothing
 * in this process maps, below krs_user_limit(); 0 and *@start, *@len, or -1.
 */
int krs_unmapped_range(size_t want, unsigned long *start, size_t *len);
/* memfd_create(MFD_CLOEXEC) sized to @size; fd or -errno. */
int krs_memfd(const char *name, size_t size);

/* Per-page pattern: page @idx of data set @seed (never all zero). */
void krs_fill_page(void *page, unsigned int seed, size_t idx);
/* 0 if @page holds pattern (@seed, @idx); else 1 + index of the first bad word. */
size_t krs_check_page(const void *page, unsigned int seed, size_t idx);
bool krs_page_is_zero(const void *page);
/* pwrite()/pread() one pattern page at file page @idx; 0 or -errno / 1 if wrong. */
int krs_pwrite_page(int fd, unsigned int seed, size_t idx);
int krs_pread_check(int fd, unsigned int seed, size_t idx);
/* pread() file page @idx and check it is all zero: 0, 1 if not, -errno. */
int krs_pread_zero(int fd, size_t idx);

enum krs_file_state {
	KRS_FILE_SYNCED,	/* written, fsync'ed: clean pages in the page cache */
	KRS_FILE_DROPPED,	/* written, fsync'ed, then dropped from the page cache */
	KRS_FILE_DIRTY,		/* written, not synced */
};

/*
 * Create @path with @pages pattern pages (@seed) written by pwrite() in the
 * state @state; returns the fd (O_RDWR) or -errno.
 */
int krs_make_file(const char *path, unsigned int seed, size_t pages, enum krs_file_state state);
/*
 * Close the writer @fd of @path and open it again read-only (nobody has it
 * open for write any more); fd or -errno. A failed @fd passes through.
 */
int krs_reopen_ro(int fd, const char *path);
/* krs_make_file(), then krs_reopen_ro(); fd or -errno. */
int krs_make_ro_file(const char *path, unsigned int seed, size_t pages,
		     enum krs_file_state state);

/*
 * smaps field @field (e.g. "Rss", "ShmemPmdMapped") of the VMA containing
 * @addr in @pid (0: self), in kB; -1 if no such VMA, -2 if no such field.
 */
long krs_smaps_kb(pid_t pid, unsigned long addr, const char *field);

/* Open debugfs collapse read-write; fd or -errno. */
int krs_collapse_open(void);
/* One raw write of @len bytes; the write's result, or -errno. */
ssize_t krs_collapse_write(int fd, const void *buf, size_t len);
/*
 * Write @cmd (strlen bytes), retrying a few times on EAGAIN (transient, as
 * MADV_COLLAPSE documents); the write's result or -errno.
 */
ssize_t krs_collapse_cmd(int fd, const char *cmd);
/* Read the report of the last write through @fd (from offset 0); bytes or -errno. */
ssize_t krs_collapse_report(int fd, char *buf, size_t size);

struct krs_extent {
	unsigned int index;
	unsigned long start;
	unsigned long pgoff;
	char result[48];
	unsigned int copied;
	unsigned int holes;
};

/*
 * Parse a report: fills up to @max extents and *@status; returns the number
 * of extent lines, or -1 if a line is malformed or status= is not the last.
 */
int krs_report_parse(const char *report, struct krs_extent *ext, int max, long *status);

/* Read debugfs stats into @buf; bytes or -errno. */
ssize_t krs_stats_read(char *buf, size_t size);
/* Value of `<name> <value>` in a stats text; -1 if absent. */
long long krs_stat(const char *stats, const char *name);

/* True if @s holds something that looks like a kernel address (ffff8..., ffffffff8...). */
bool krs_has_kernel_pointer(const char *s);

/* ---- children ---------------------------------------------------------- */

struct krs_child {
	pid_t pid;
	int to_child;	/* parent's end: write */
	int from_child;	/* parent's end: read */
};

#define KRS_MSG_SIZE 256

/* Fork a child running _exit(@fn(in, out, @arg)) with a pipe each way; 0 or -errno. */
int krs_child_start(struct krs_child *c, int (*fn)(int in, int out, void *arg), void *arg);
/* Close the pipes, wait up to 10 s for the child (then SIGKILL); exit code, 128+sig, or -errno. */
int krs_child_wait(struct krs_child *c);
/* Write all of @buf; 0 or -errno. */
int krs_send(int fd, const void *buf, size_t len);
/* Read exactly @len bytes within @timeout_ms; 0, -ETIMEDOUT, -EPIPE on EOF, -errno. */
int krs_recv(int fd, void *buf, size_t len, int timeout_ms);
/* Send a KRS_MSG_SIZE message ("ok" or an explanation). */
void krs_send_msg(int fd, const char *fmt, ...) __printf(2, 3);

/* ---- userfaultfd ------------------------------------------------------- */

/* userfaultfd(O_CLOEXEC|O_NONBLOCK) + UFFDIO_API with @features; fd or -errno. */
int krs_uffd_open(uint64_t features);
/* UFFDIO_REGISTER with @mode; 0 or -errno; *@ioctls gets the allowed ioctls if non-NULL. */
int krs_uffd_register(int uffd, void *addr, size_t len, uint64_t mode, uint64_t *ioctls);
/*
 * A userfaultfd with @features, registered over [@addr, @addr + @len) in
 * @mode: its fd, or -errno with *@why naming the step the kernel refused
 * (a test then skips: the feature is missing).
 */
int krs_uffd_setup(uint64_t features, void *addr, size_t len, uint64_t mode, const char **why);
/* UFFDIO_WRITEPROTECT set or clear; 0 or -errno. */
int krs_uffd_wp(int uffd, void *addr, size_t len, bool protect);

/*
 * userfaultfd read-write protection (RWP, Linux 7.3): the uapi values, for
 * programs built against older headers; a kernel without it refuses the
 * feature at UFFDIO_API (the tests then skip).
 */
#define KRS_UFFD_FEATURE_RWP 0x20000ULL		/* bit 17 */
#define KRS_UFFDIO_REGISTER_MODE_RWP 0x8ULL	/* bit 3 */
#define KRS_UFFD_PAGEFAULT_FLAG_RWP 0x8ULL	/* bit 3 */
/* UFFDIO_RWPROTECT set or clear; 0 or -errno. */
int krs_uffd_rwp(int uffd, void *addr, size_t len, bool protect);

enum krs_uffd_resolve {
	KRS_UFFD_COPY,		/* UFFDIO_COPY of @src (one page) */
	KRS_UFFD_ZEROPAGE,	/* UFFDIO_ZEROPAGE */
	KRS_UFFD_WP_CLEAR,	/* UFFDIO_WRITEPROTECT clear of the page */
	KRS_UFFD_CONTINUE,	/* UFFDIO_CONTINUE of the page */
	KRS_UFFD_RWP_CLEAR,	/* UFFDIO_RWPROTECT clear of the page */
};

/*
 * A thread resolving page faults of @uffd one page at a time. If resolving
 * fails, or nothing arrives for 10 s, it unregisters [@reg_addr, +@reg_len)
 * and wakes the range so that no access can block forever.
 */
struct krs_uffd_handler {
	int uffd;
	enum krs_uffd_resolve how;
	const void *src;
	void *reg_addr;
	size_t reg_len;
	/* results */
	unsigned int faults, wp_faults, minor_faults, rwp_faults;
	unsigned long last_addr;
	uint64_t last_flags;
	int error;		/* errno of a failed resolve, or of read() */
	bool timed_out;
	/* private */
	int stop[2];
	pthread_t thread;
	bool running;
};

int krs_uffd_handler_start(struct krs_uffd_handler *h);
void krs_uffd_handler_stop(struct krs_uffd_handler *h);

/* ---- races: injection points, recording notifier, memory counters ------ */

#define KRS_INJECT KRS_DEBUGFS "/inject"
#define KRS_NOTIFIER KRS_DEBUGFS "/notifier"

/* Write one formatted command to debugfs inject / notifier; 0 or -errno. */
int krs_inject(const char *fmt, ...) __printf(1, 2);
int krs_notifier(const char *fmt, ...) __printf(1, 2);
/* Read the notifier log (reopened, so current); bytes or -errno. */
ssize_t krs_notifier_read(char *buf, size_t size);

/* One line of inject. */
struct krs_inject_state {
	int armed;
	char mode[8];
	char scope_kind[8];
	unsigned long scope;
	unsigned int ms, remaining, hits, waiting, timeouts;
};

/* The line of @point (reopened, so current); 0, -ENOENT if none, -errno. */
int krs_inject_state(const char *point, struct krs_inject_state *st);
/*
 * Poll until a collapse is paused at @point (waiting >= 1) after at least
 * @hits hits. Gives up after @timeout_ms (-ETIMEDOUT), or as soon as *@done
 * (if non-NULL) is set: -ECANCELED (the collapse finished without pausing).
 */
int krs_inject_wait_paused(const char *point, unsigned int hits, int timeout_ms,
			   const int *done);

/* khugepaged's pid (the kernel thread whose comm is "khugepaged"), 0 if none. */
pid_t krs_khugepaged_pid(void);

/*
 * The state letter of task @tid ("R", "S", "D", ... from /proc/TID/stat:
 * a thread id of any process, or a process id), or 'X' if it is gone.
 */
char krs_task_state(pid_t tid);

/*
 * The actors khugepaged_rs_actors started around this program
 * ($KRS_ACTORS: the busy kernel), or NULL when it runs alone (unset, empty
 * or "none").
 */
const char *krs_busy_actors(void);

/*
 * Ask khugepaged_rs_actors' actors to stand still ($KRS_ACTORS_HOLD: each
 * takes its pressure off between two actions and acknowledges): 1 once
 * every actor of $KRS_ACTORS did, within @timeout_ms; 0 when no actor runs;
 * -ENOENT when actors run but give no hold (no $KRS_ACTORS_HOLD);
 * -ETIMEDOUT when one did not acknowledge in time (the hold stays asked:
 * krs_actors_release() still puts it back).
 */
int krs_actors_hold(int timeout_ms);
/*
 * The end of the hold: 0 once every actor has put its pressure back, or
 * -ETIMEDOUT; 0 when there was no hold to end.
 */
int krs_actors_release(int timeout_ms);

/* Fold the per-CPU vm counters (/proc/sys/vm/stat_refresh), best effort. */
/* CLOCK_MONOTONIC in milliseconds. */
uint64_t krs_now_ms(void);
/* Sleep @ms milliseconds (a signal may cut it short). */
void krs_sleep_ms(unsigned int ms);
void krs_vm_stat_refresh(void);
/* /proc/meminfo field @field in kB; -1 if absent. */
long krs_meminfo_kb(const char *field);
/* A /proc/vmstat counter (@name without the space); -1 if absent. */
long krs_vmstat(const char *name);
/* The sum of the @n counters @names present, read at once; -1 if none is. */
long krs_vmstat_sum(const char *const *names, size_t n);

/*
 * A collapse written from a thread of its own through its own collapse fd
 * (one raw write, no EAGAIN retry): it blocks while paused at a point.
 */
struct krs_bg_collapse {
	char cmd[256];
	ssize_t ret;		/* the write's result or -errno */
	char report[8192];
	int done;		/* set (atomically) when ret and report are final */
	pid_t tid;		/* the writing thread's id, once it runs */
	pthread_t thread;
	bool running;
};

int krs_bg_collapse_start(struct krs_bg_collapse *c, const char *fmt, ...)
	__printf(2, 3);
/* Wait up to @timeout_ms for it to finish and join it; 0 or -ETIMEDOUT. */
int krs_bg_collapse_join(struct krs_bg_collapse *c, int timeout_ms);

/*
 * The names of the running kernel's enum scan_result, in order (each a line
 * of stats): 7.2's, and from 7.3 on SCAN_PTE_UFFD for SCAN_PTE_UFFD_WP.
 */
#define KRS_NR_SCAN_RESULTS 32
#define KRS_SCAN_PTE_UFFD 8
extern const char *krs_scan_names[KRS_NR_SCAN_RESULTS];
/*
 * A timeline for the stress and the actors: the kernel's trace buffer
 * (tracefs), with the given events enabled and the programs' own lines
 * written to trace_marker. krs_trace_setup() enables (0 or -errno);
 * krs_trace_mark() writes one line if a marker is open (best effort);
 * krs_trace_freeze() stops recording; krs_trace_dump() prints to stderr the
 * last @max lines holding any of @needles; krs_trace_teardown() disables
 * the events again. An event is "system/name", or "system/name if FILTER"
 * (the event's filter file gets FILTER).
 */
int krs_trace_setup(const char *const *events, size_t n, unsigned int buf_kb);
void krs_trace_mark(const char *fmt, ...) __printf(1, 2);
void krs_trace_freeze(void);
void krs_trace_dump(const char *const *needles, size_t n, size_t max);
void krs_trace_teardown(const char *const *events, size_t n);
/* Empty the trace buffer (0 or -errno). */
int krs_trace_clear(void);
/* Read the trace buffer's text into @buf (NUL-terminated); bytes or -errno. */
ssize_t krs_trace_read(char *buf, size_t size);
/* The running kernel (uname -r) is @major.@minor or later. */
bool krs_kernel_at_least(int major, int minor);

/*
 * For the measurements (not kselftests): load the module, open its collapse
 * file and set THP enabled to madvise (khugepaged leaves the test's files
 * alone: none is VM_HUGEPAGE), saving the old choice in @thp_prev for
 * krs_thp_restore(). The collapse file's fd, or -1 after saying on stderr
 * what failed.
 */
int krs_measure_setup(char *thp_prev, size_t size);
/* Run the calling thread on CPU @cpu only, or on every CPU if @cpu < 0. */
void krs_run_on(int cpu);

/* Names counted (extent results, say), in the order first seen. */
#define KRS_MAX_NAMES 16
struct krs_names {
	char name[KRS_MAX_NAMES][48];
	unsigned long n[KRS_MAX_NAMES];
	int count;
};

/* Count one more @name (dropped once KRS_MAX_NAMES names are counted). */
void krs_names_add(struct krs_names *nm, const char *name);

/* Print " NAME N" for each name counted (no newline). */
void krs_names_print(const struct krs_names *nm);

#endif
