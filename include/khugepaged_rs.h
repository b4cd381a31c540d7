/* SPDX-License-Identifier: GPL-2.0 */
/*
 * khugepaged_rs: the C half of the FFI edge.
 *
 * bindgen reads this header (and only this one) to produce the module's own
 * bindings, rust/khugepaged_rs_bindings.rs, generated at build time with the
 * kernel's bindgen flags. Kernel types named here are not re-generated: the
 * Rust side takes them from kernel::bindings. The definitions live in
 * rust/helpers/.
 */
#ifndef _KHUGEPAGED_RS_H
#define _KHUGEPAGED_RS_H

#include <linux/types.h>
#include <linux/numa.h>
#include <linux/spinlock_types.h>
#include <linux/version.h>
#include <asm/pgtable_types.h>

/*
 * The kernel versions the C helpers tell apart (Documentation/design.rst,
 * "Kernel versions"), as Kbuild's krs_kernel_versions gives the Rust crate
 * --cfg krs_7_3: KRS_KERNEL_7_3 is true when building for 7.3 or later.
 */
#define KRS_KERNEL_7_3 (KERNEL_VERSION(7, 3, 0) <= LINUX_VERSION_CODE)

/* The module's version: MODULE_VERSION() and the debugfs status file. */
#define KRS_VERSION "0.1.0"

/*
 * One kernel function (or, with @data, variable) 7.2 does not export,
 * resolved through kallsyms at load. @slot is where its address goes; C
 * uses it only through KRS_CALL() or KRS_DATA() (rust/helpers/symbols.c),
 * typed with typeof() of the kernel's own declaration, so a type change in
 * a newer kernel is a compile error, not a silent ABI mismatch. A function
 * must start with ENDBR when IBT is enforced; a variable is never called.
 */
struct krs_symbol {
	const char *name;
	void **slot;
	bool data;
};

extern const struct krs_symbol krs_symbols[];
extern const size_t krs_nr_symbols;

/* Name of a symbol that never exists, for the load-failure selftest. */
#define KRS_SELFTEST_MISSING_SYMBOL "khugepaged_rs_selftest_no_such_symbol"

/* Find kallsyms_lookup_name through a kprobe; returns 0 or -errno. */
int krs_kallsyms_init(void);
/* Address of kallsyms_lookup_name found by krs_kallsyms_init(). */
unsigned long krs_kallsyms_addr(void);
/* kallsyms_lookup_name(name); 0 when the name is unknown. */
unsigned long krs_kallsyms_lookup(const char *name);

/* True when the kernel has IBT and the CPU enforces it (not ibt=off). */
bool krs_ibt_enforced(void);
/* True when the instruction at @addr is ENDBR64 (readable, not sealed). */
bool krs_has_endbr(unsigned long addr);

/* Release string of the running kernel (uname -r). */
const char *krs_kernel_release(void);

/*
 * mm helpers (rust/helpers/mm.c, rust/helpers/symbols.c): one C function per
 * kernel inline function or macro the collapse needs, or per call through a
 * resolved symbol. They decide nothing; the Rust side does.
 */
struct folio;
struct page;
struct xa_state;
struct address_space;
struct vm_area_struct;
struct mm_struct;
struct mmu_notifier_range;
struct file;
struct task_struct;
struct rb_root_cached;

/* Page-table state of a PMD entry, as check_pmd_state() classifies it. */
enum krs_pmd_state {
	KRS_PMD_NONE,		/* pmd_none, or no PMD at all */
	KRS_PMD_MIGRATION,	/* a PMD migration entry */
	KRS_PMD_NOT_PRESENT,	/* another non-present entry */
	KRS_PMD_HUGE,		/* maps a huge page */
	KRS_PMD_BAD,		/* pmd_bad(): not a valid table pointer */
	KRS_PMD_TABLE,		/* points to a PTE table */
};

/* What an xarray slot holds, as the xarray's own predicates tell it. */
enum krs_xa_kind {
	KRS_XA_NULL,		/* empty */
	KRS_XA_VALUE,		/* xa_is_value(): a swap or shadow entry */
	KRS_XA_RETRY,		/* XA_RETRY_ENTRY */
	KRS_XA_SIBLING,		/* xa_is_sibling(): part of a multi-index entry */
	KRS_XA_INTERNAL,	/* any other xa_is_internal() entry */
	KRS_XA_POINTER,		/* a pointer: in the page cache, a folio */
};

/*
 * One step of collapse_scan_file()'s walk under RCU (krs_xas_scan_next()):
 * the kind of entry found, the folio checks' reads for a folio.
 */
enum krs_scan_kind {
	KRS_SCAN_END,		/* no entry up to max */
	KRS_SCAN_RETRY,		/* xas_retry(): a retry or zero entry, cursor reset */
	KRS_SCAN_SKIP,		/* another internal entry: never a folio */
	KRS_SCAN_VALUE,		/* a value (swap) entry of 1 << order pages */
	KRS_SCAN_AGAIN,		/* a folio being freed, or no longer the entry: reset */
	KRS_SCAN_FOLIO,		/* a folio, read while referenced (struct krs_folio_scan) */
};

/*
 * What collapse_scan_file() reads of a folio it holds a reference on, read
 * under that reference (put again before krs_xas_scan_next() returns).
 */
struct krs_folio_scan {
	unsigned long pfn;
	unsigned long nr_pages;
	int nid;
	int ref_count;
	int expected_ref_count;
	unsigned int order;
	bool lru;
};

/*
 * What collapse_file()'s loop reads of a folio it has locked
 * (krs_folio_locked_read()): stable while the lock is held but for the
 * dirty and writeback bits, which it re-checks later.
 */
struct krs_folio_locked {
	unsigned long index;
	unsigned long nr_pages;
	unsigned int order;
	bool uptodate;
	bool in_mapping;	/* folio_mapping() is the mapping asked about */
	bool dirty;
	bool writeback;
};

/* What krs_folio_isolate_unmap() got to. */
enum krs_isolate {
	KRS_ISOLATE_NOT_LRU,	/* folio_isolate_lru() failed: nothing done */
	KRS_ISOLATE_PRIVATE,	/* isolated; filemap_release_folio() failed */
	KRS_ISOLATE_DONE,	/* isolated, released, unmapped if it was mapped */
};

/*
 * khugepaged's sysfs knobs (/sys/kernel/mm/transparent_hugepage/khugepaged/)
 * that a mode=khugepaged collapse reads, as mm/khugepaged.c reads them.
 */
struct krs_khugepaged_knobs {
	unsigned int max_ptes_none;
	unsigned int max_ptes_swap;
	/* khugepaged_defrag(): the "defrag" knob (GFP_TRANSHUGE, else _LIGHT) */
	bool defrag;
	/* what the module's scanner follows by default */
	unsigned int pages_to_scan;
	unsigned int scan_sleep_millisecs;
	unsigned int alloc_sleep_millisecs;
};

void krs_khugepaged_knobs(struct krs_khugepaged_knobs *knobs);
/* count_vm_event(THP_SCAN_EXCEED_NONE_PTE) and (..._SWAP_PTE). */
void krs_count_scan_exceed_none(void);
void krs_count_scan_exceed_swap(void);

/* Folios. */
void krs_folio_unlock(struct folio *folio);
void krs_folio_get(struct folio *folio);
void krs_folio_put(struct folio *folio);
int krs_folio_ref_count(struct folio *folio);
void krs_folio_ref_sub(struct folio *folio, int nr);
unsigned int krs_folio_order(struct folio *folio);
unsigned long krs_folio_index(struct folio *folio);
bool krs_folio_test_uptodate(struct folio *folio);
bool krs_folio_test_dirty(struct folio *folio);
bool krs_folio_test_writeback(struct folio *folio);
struct address_space *krs_folio_mapping(struct folio *folio);
struct page *krs_folio_page(struct folio *folio, unsigned long n);
/* folio_trylock(), and folio_get() when it was taken. */
bool krs_folio_trylock_get(struct folio *folio);
/* The reads of collapse_file()'s checks on a folio it locked. */
void krs_folio_locked_read(struct folio *folio, struct address_space *mapping,
			   struct krs_folio_locked *s);
/*
 * Allocate a PMD-order folio the way alloc_charge_folio() does: with
 * GFP_TRANSHUGE, or GFP_TRANSHUGE_LIGHT when @light; on @node, allowed on
 * the online nodes whose entry of @node_load (@nr entries: nodes from @nr
 * on count 0) is @max_load (collapse_find_target_node()'s alloc_nmask).
 * *@zeroed: allocated with __GFP_ZERO (where init_on_alloc zeroes anyway).
 */
struct folio *krs_folio_alloc_pmd(bool light, int node, const unsigned int *node_load,
				  unsigned int nr, unsigned int max_load, bool *zeroed);
/* nr_node_ids: node ids are below it (at most MAX_NUMNODES). */
unsigned int krs_nr_node_ids(void);
int krs_folio_memcg_charge(struct folio *folio, struct mm_struct *mm, bool light);
void krs_count_collapse_alloc_failed(void);
/* count_mthp_stat(HPAGE_PMD_ORDER, MTHP_STAT_COLLAPSE_ALLOC[_FAILED]). */
void krs_count_mthp_collapse_alloc(bool allocated);
/* Prepare a new folio for @mapping at @index (locked, swapbacked if shmem). */
void krs_new_folio_init(struct folio *folio, struct address_space *mapping,
			unsigned long index, bool shmem);
void krs_new_folio_clear_mapping(struct folio *folio);
/* Publish a filled new folio: stats, uptodate, refs, dirty, LRU. */
void krs_new_folio_publish(struct folio *folio, bool shmem);
/*
 * Retire @nr old folios after a successful collapse, as collapse_file()
 * does (stats, mapping, flags, unlock, put), with the stats summed per
 * memcg and node and the puts batched (folios_put_refs()).
 */
void krs_old_folios_retire(struct folio **folios, unsigned int nr, bool shmem);
/*
 * copy_mc_highpage() of every page of @src into @dst from page @n on;
 * returns the pages copied before a poisoned one (all: none was), 0 if
 * they do not fit.
 */
unsigned long krs_copy_mc_folio(struct folio *dst, unsigned long n, struct folio *src);
/*
 * krs_copy_mc_folio() of @src[i] into @dst from page @at[i] on, for i
 * below @nr, in order; returns how many were copied whole (@nr: all).
 */
unsigned long krs_copy_mc_folios(struct folio *dst, struct folio *const *src,
				 const unsigned long *at, unsigned long nr);
/* Zero pages [@n, @n + @nr) of @dst. */
void krs_zero_pages(struct folio *dst, unsigned long n, unsigned long nr);

/* The xarray. */
void krs_xas_init(struct xa_state *xas, struct address_space *mapping,
		  unsigned long index, unsigned int order);
void krs_xas_set(struct xa_state *xas, unsigned long index);
void krs_xas_set_order(struct xa_state *xas, unsigned long index, unsigned int order);
/* xas_set(@index) then xas_load(): the entry in *@entry, and its kind. */
enum krs_xa_kind krs_xas_load_at(struct xa_state *xas, unsigned long index, void **entry);
/* xas_next(): the entry in *@entry, and its kind. */
enum krs_xa_kind krs_xas_next_kind(struct xa_state *xas, void **entry);
void *krs_xas_next_entry(struct xa_state *xas, unsigned long max);
/*
 * One step of collapse_scan_file()'s walk, under RCU: xas_find() (@find)
 * or xas_next_entry() up to @max, xas_retry(); a value entry's order in
 * *@order; a folio is held by folio_try_get() and checked by xas_reload()
 * (either failing: xas_reset(), KRS_SCAN_AGAIN), read into *@folio, put.
 */
enum krs_scan_kind krs_xas_scan_next(struct xa_state *xas, unsigned long max, bool find,
				     struct krs_folio_scan *folio, unsigned int *order);
void krs_xas_store(struct xa_state *xas, void *entry);
/* xas_store(XA_RETRY_ENTRY); false if the store failed (xas_error()). */
bool krs_xas_store_retry(struct xa_state *xas);
bool krs_xas_error(struct xa_state *xas);
void krs_xas_create_range(struct xa_state *xas);
bool krs_xas_nomem(struct xa_state *xas);
void krs_xas_lock_irq(struct xa_state *xas);
void krs_xas_unlock_irq(struct xa_state *xas);
enum krs_xa_kind krs_xa_kind(void *entry);
void krs_mapping_sub_nrpages(struct address_space *mapping, unsigned long nr);
void krs_rcu_read_lock(void);
void krs_rcu_read_unlock(void);

/* Files and mappings. */
bool krs_file_is_shmem(struct file *file);
struct address_space *krs_file_mapping(struct file *file);
bool krs_file_is_regular(struct file *file);
/* i_size_read(file_inode(@file)). */
long long krs_file_size(struct file *file);
bool krs_shmem_mapping(struct address_space *mapping);
void krs_fput(struct file *file);
struct file *krs_get_file(struct file *file);
int krs_shmem_get_folio(struct address_space *mapping, unsigned long index, struct folio **foliop);
bool krs_shmem_charge(struct address_space *mapping, long pages);
void krs_shmem_uncharge(struct address_space *mapping, long pages);
void krs_i_mmap_lock_read(struct address_space *mapping);
void krs_i_mmap_unlock_read(struct address_space *mapping);
struct vm_area_struct *krs_vma_first(struct address_space *mapping, unsigned long first,
				     unsigned long last);
struct vm_area_struct *krs_vma_next(struct vm_area_struct *vma, unsigned long first,
				    unsigned long last);
struct folio *krs_filemap_lock_folio(struct address_space *mapping, unsigned long index);

/* Regular files (the !is_shmem branch of collapse_file()). */
/* As krs_thp_vma_allowable_pmd() for a VMA of @file without MADV_HUGEPAGE. */
bool krs_file_pmd_collapse_allowed(struct file *file, bool khugepaged);
bool krs_mapping_can_writeback(struct address_space *mapping);
bool krs_mapping_open_for_write(struct address_space *mapping);
void krs_mapping_set_update(struct xa_state *xas, struct address_space *mapping);
int krs_filemap_flush(struct address_space *mapping);
int krs_filemap_write_and_wait_range(struct address_space *mapping, long long lstart,
				     long long lend);
void krs_file_sync_readahead(struct file *file, unsigned long index, unsigned long nr);

/* VMAs and mms. */
unsigned long krs_vma_start(struct vm_area_struct *vma);
unsigned long krs_vma_end(struct vm_area_struct *vma);
unsigned long krs_vma_pgoff(struct vm_area_struct *vma);
struct file *krs_vma_file(struct vm_area_struct *vma);
struct mm_struct *krs_vma_mm(struct vm_area_struct *vma);
bool krs_vma_is_anonymous(struct vm_area_struct *vma);
bool krs_vma_is_shared(struct vm_area_struct *vma);
bool krs_vma_has_anon_vma(struct vm_area_struct *vma);
bool krs_vma_maybe_guard(struct vm_area_struct *vma);
bool krs_userfaultfd_protected(struct vm_area_struct *vma);
bool krs_userfaultfd_missing(struct vm_area_struct *vma);
bool krs_userfaultfd_armed(struct vm_area_struct *vma);
bool krs_thp_vma_suitable_pmd(struct vm_area_struct *vma, unsigned long addr);
/* thp_vma_allowable_order(PMD_ORDER) as TVA_KHUGEPAGED, else TVA_FORCED_COLLAPSE. */
bool krs_thp_vma_allowable_pmd(struct vm_area_struct *vma, bool khugepaged);
struct vm_area_struct *krs_find_vma(struct mm_struct *mm, unsigned long addr);
struct vm_area_struct *krs_vma_lookup(struct mm_struct *mm, unsigned long addr);
bool krs_mm_exiting(struct mm_struct *mm);
bool krs_mm_thp_disabled(struct mm_struct *mm);
void krs_mmap_read_lock(struct mm_struct *mm);
void krs_mmap_read_unlock(struct mm_struct *mm);
struct mm_struct *krs_current_mm_get(void);
struct mm_struct *krs_pid_mm_get(int pid, int *err);
bool krs_remote_mm_needs_nice(struct mm_struct *mm);
void krs_mmput(struct mm_struct *mm);
unsigned long krs_task_size(void);
void krs_cond_resched(void);

/* Page tables. */
pmd_t *krs_mm_find_pmd(struct mm_struct *mm, unsigned long addr);
enum krs_pmd_state krs_pmd_state(pmd_t *pmd);
spinlock_t *krs_pmd_lockptr(struct mm_struct *mm, pmd_t *pmd);
spinlock_t *krs_pte_lockptr(struct mm_struct *mm, pmd_t *pmd);
void krs_spin_lock(spinlock_t *lock);
void krs_spin_lock_nested(spinlock_t *lock);
void krs_spin_unlock(spinlock_t *lock);
pmd_t krs_pmdp_get_lockless(pmd_t *pmd);
void krs_pmdp_get_lockless_sync(void);
bool krs_pmd_same(pmd_t a, pmd_t b);
pmd_t krs_pmdp_collapse_flush(struct vm_area_struct *vma, unsigned long addr, pmd_t *pmd);
/* After a pmdp_collapse_flush(): nr_ptes, page_table_check, pte_free_defer. */
void krs_free_retracted_table(struct mm_struct *mm, unsigned long addr, pmd_t pgt_pmd);
pte_t *krs_pte_offset_map_rw_nolock(struct mm_struct *mm, pmd_t *pmd, unsigned long addr,
				    pmd_t *pmdvalp, spinlock_t **ptlp);
void krs_pte_unmap(pte_t *pte);
/* What the PTE at @pte (for @addr in @vma) maps: 0 none, 1 present, -1 non-present. */
int krs_pte_kind(pte_t *pte);
/* Every PTE of the table whose entry 0 is @pte is none or a marker. */
bool krs_pte_table_empty(pte_t *pte);
struct page *krs_pte_page(struct vm_area_struct *vma, unsigned long addr, pte_t *pte);
/*
 * Clear one present PTE mapping page @page of @folio and drop its rmap; a
 * dirty PTE leaves @folio dirty.
 */
void krs_pte_clear_rmap(struct vm_area_struct *vma, unsigned long addr, pte_t *pte,
			struct folio *folio, struct page *page);
void krs_add_mm_counter_file(struct mm_struct *mm, struct folio *folio, long value);
void krs_flush_tlb_mm(struct mm_struct *mm);
/* set_huge_pmd() of mm/khugepaged.c: map @folio by a PMD at @addr; 0 or -errno. */
int krs_set_huge_pmd(struct vm_area_struct *vma, unsigned long addr, pmd_t *pmd,
		     struct folio *folio);

/* MMU notifiers: range_init(MMU_NOTIFY_CLEAR) + invalidate_range_start / _end. */
void krs_mmu_notifier_start(struct mmu_notifier_range *range, struct mm_struct *mm,
			    unsigned long start, unsigned long end);
void krs_mmu_notifier_end(struct mmu_notifier_range *range);

/* LRU and unmapping. */
/*
 * collapse_file()'s steps on a locked folio: folio_isolate_lru(), then
 * filemap_release_folio(), then try_to_unmap(TTU_IGNORE_MLOCK |
 * TTU_BATCH_FLUSH) if folio_mapped(); stops at the first that fails.
 */
enum krs_isolate krs_folio_isolate_unmap(struct folio *folio);
void krs_folio_putback_lru(struct folio *folio);
void krs_lru_add_drain(void);
void krs_lru_add_drain_all(void);
void krs_try_to_unmap_flush(void);

/*
 * The scanner's kernel thread: kthread_run() of @fn(@data) named @name,
 * with a task reference (NULL on failure); kthread_stop_put(); and, on the
 * thread, what khugepaged() does: set_freezable() and MAX_NICE,
 * kthread_should_stop(), try_to_freeze(), and a freezable sleep until
 * *@gen != @seen (@gen may be NULL), the stop, or @ms (UINT_MAX: none),
 * returning the milliseconds slept. krs_kthread_wake() wakes that sleep.
 */
struct task_struct *krs_kthread_run(int (*fn)(void *data), void *data, const char *name);
void krs_kthread_stop_put(struct task_struct *task);
void krs_kthread_freezable_nice(void);
bool krs_kthread_should_stop(void);
bool krs_try_to_freeze(void);
unsigned int krs_kthread_sleep(const unsigned int *gen, unsigned int seen, unsigned int ms);
void krs_kthread_wake(void);

/* Injection points: wait until *gen != seen (true) or the timeout (false). */
bool krs_inject_wait(unsigned int *gen, unsigned int seen, unsigned int timeout_ms);
void krs_inject_wake(void);
void krs_msleep(unsigned int ms);
int krs_current_tgid(void);
unsigned long krs_mapping_ino(struct address_space *mapping);

/*
 * Tracepoints (include/khugepaged_rs_trace.h, defined in
 * rust/helpers/trace.c): the static key of each event, and the call Rust
 * makes once it found the key enabled (rust/ffi/trace.rs).
 */
struct tracepoint;
extern struct tracepoint __tracepoint_scan_file;
extern struct tracepoint __tracepoint_collapse_file;
extern struct tracepoint __tracepoint_retract;
extern struct tracepoint __tracepoint_install_pmd;
void rust_do_trace_scan_file(struct mm_struct *mm, unsigned long pfn, struct file *file,
			     int present, int swap, int result);
void rust_do_trace_collapse_file(struct mm_struct *mm, unsigned long hpfn, unsigned long index,
				 unsigned long addr, bool is_shmem, struct file *file, int nr,
				 int copied, int holes, int node, int result);
void rust_do_trace_retract(struct mm_struct *mm, unsigned long addr, int result);
void rust_do_trace_install_pmd(struct mm_struct *mm, unsigned long addr, int result);
/* folio_pfn(). */
unsigned long krs_folio_pfn(struct folio *folio);

#endif /* _KHUGEPAGED_RS_H */
