/* SPDX-License-Identifier: GPL-2.0 */
/*
 * khugepaged_rs's tracepoints: khugepaged_rs:scan_file and
 * khugepaged_rs:collapse_file with the fields of upstream's
 * huge_memory:mm_khugepaged_scan_file / mm_khugepaged_collapse_file (plus
 * the pages copied, the holes filled and the node the huge folio was
 * asked for: collapse_find_target_node()'s choice, -1 before one), khugepaged_rs:retract (one VMA of
 * retract_page_tables(): retracted or why not) and
 * khugepaged_rs:install_pmd (try_collapse_pte_mapped_thp()'s result).
 * Results are printed with the SCAN_* names of the kernel built for
 * (SCAN_PTE_UFFD_WP is SCAN_PTE_UFFD since 7.3). Defined in
 * rust/helpers/trace.c (CREATE_TRACE_POINTS); Rust calls them through
 * rust/ffi/trace.rs, behind the same static key as trace_<event>().
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM khugepaged_rs

#if !defined(_KHUGEPAGED_RS_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _KHUGEPAGED_RS_TRACE_H

#include <linux/fs.h>
#include <linux/mm_types.h>
#include <linux/tracepoint.h>

#include "khugepaged_rs.h"

/* 7.3 renamed it: uffd read-write protection (RWP) refuses the same way. */
#if KRS_KERNEL_7_3
#define KRS_SCAN_PTE_UFFD "SCAN_PTE_UFFD"
#else
#define KRS_SCAN_PTE_UFFD "SCAN_PTE_UFFD_WP"
#endif

/* enum scan_result of mm/khugepaged.c (7.2, 7.3), value for value. */
#define KRS_SCAN_STATUS							\
	EM(0,  "SCAN_FAIL")						\
	EM(1,  "SCAN_SUCCEED")						\
	EM(2,  "SCAN_NO_PTE_TABLE")					\
	EM(3,  "SCAN_PMD_MAPPED")					\
	EM(4,  "SCAN_EXCEED_NONE_PTE")					\
	EM(5,  "SCAN_EXCEED_SWAP_PTE")					\
	EM(6,  "SCAN_EXCEED_SHARED_PTE")				\
	EM(7,  "SCAN_PTE_NON_PRESENT")					\
	EM(8,  KRS_SCAN_PTE_UFFD)					\
	EM(9,  "SCAN_PTE_MAPPED_HUGEPAGE")				\
	EM(10, "SCAN_LACK_REFERENCED_PAGE")				\
	EM(11, "SCAN_PAGE_NULL")					\
	EM(12, "SCAN_SCAN_ABORT")					\
	EM(13, "SCAN_PAGE_COUNT")					\
	EM(14, "SCAN_PAGE_LRU")						\
	EM(15, "SCAN_PAGE_LOCK")					\
	EM(16, "SCAN_PAGE_ANON")					\
	EM(17, "SCAN_PAGE_LAZYFREE")					\
	EM(18, "SCAN_PAGE_COMPOUND")					\
	EM(19, "SCAN_ANY_PROCESS")					\
	EM(20, "SCAN_VMA_NULL")						\
	EM(21, "SCAN_VMA_CHECK")					\
	EM(22, "SCAN_ADDRESS_RANGE")					\
	EM(23, "SCAN_DEL_PAGE_LRU")					\
	EM(24, "SCAN_ALLOC_HUGE_PAGE_FAIL")				\
	EM(25, "SCAN_CGROUP_CHARGE_FAIL")				\
	EM(26, "SCAN_TRUNCATED")					\
	EM(27, "SCAN_PAGE_HAS_PRIVATE")					\
	EM(28, "SCAN_STORE_FAILED")					\
	EM(29, "SCAN_COPY_MC")						\
	EM(30, "SCAN_PAGE_FILLED")					\
	EMe(31, "SCAN_PAGE_DIRTY_OR_WRITEBACK")

/*
 * Why retract_page_tables() left a VMA's table, or that it did not
 * (Retract in rust/ffi/trace.rs): values above the SCAN_* ones, so that
 * one table prints both.
 */
#define KRS_RETRACT_STATUS						\
	EM(100, "retracted")						\
	EM(101, "not_pmd_aligned")					\
	EM(102, "no_pte_table")						\
	EM(103, "mm_exiting")						\
	EM(104, "not_retractable")					\
	EM(105, "changed_under_ptl")					\
	EM(106, "not_retractable_under_ptl")				\
	EMe(107, "not_empty")

#undef EM
#undef EMe
#define EM(a, b)	{ a, b },
#define EMe(a, b)	{ a, b }

TRACE_EVENT(scan_file,

	TP_PROTO(struct mm_struct *mm, unsigned long pfn, struct file *file,
		 int present, int swap, int result),

	TP_ARGS(mm, pfn, file, present, swap, result),

	TP_STRUCT__entry(
		__field(struct mm_struct *, mm)
		__field(unsigned long, pfn)
		__string(filename, file->f_path.dentry->d_iname)
		__field(int, present)
		__field(int, swap)
		__field(int, result)
	),

	TP_fast_assign(
		__entry->mm = mm;
		__entry->pfn = pfn;
		__assign_str(filename);
		__entry->present = present;
		__entry->swap = swap;
		__entry->result = result;
	),

	TP_printk("mm=%p, scan_pfn=0x%lx, filename=%s, present=%d, swap=%d, result=%s",
		  __entry->mm, __entry->pfn, __get_str(filename), __entry->present,
		  __entry->swap, __print_symbolic(__entry->result, KRS_SCAN_STATUS))
);

TRACE_EVENT(collapse_file,

	TP_PROTO(struct mm_struct *mm, unsigned long hpfn, unsigned long index,
		 unsigned long addr, bool is_shmem, struct file *file, int nr,
		 int copied, int holes, int node, int result),

	TP_ARGS(mm, hpfn, index, addr, is_shmem, file, nr, copied, holes, node, result),

	TP_STRUCT__entry(
		__field(struct mm_struct *, mm)
		__field(unsigned long, hpfn)
		__field(unsigned long, index)
		__field(unsigned long, addr)
		__field(bool, is_shmem)
		__string(filename, file->f_path.dentry->d_iname)
		__field(int, nr)
		__field(int, copied)
		__field(int, holes)
		__field(int, node)
		__field(int, result)
	),

	TP_fast_assign(
		__entry->mm = mm;
		__entry->hpfn = hpfn;
		__entry->index = index;
		__entry->addr = addr;
		__entry->is_shmem = is_shmem;
		__assign_str(filename);
		__entry->nr = nr;
		__entry->copied = copied;
		__entry->holes = holes;
		__entry->node = node;
		__entry->result = result;
	),

	TP_printk("mm=%p, hpage_pfn=0x%lx, index=%ld, addr=%lx, is_shmem=%d, filename=%s, nr=%d, copied=%d, holes=%d, node=%d, result=%s",
		  __entry->mm, __entry->hpfn, __entry->index, __entry->addr,
		  __entry->is_shmem, __get_str(filename), __entry->nr, __entry->copied,
		  __entry->holes, __entry->node,
		  __print_symbolic(__entry->result, KRS_SCAN_STATUS))
);

/* An mm, an address and a result: retract (retracted or why not) and install_pmd (SCAN_*). */
DECLARE_EVENT_CLASS(krs_mm_addr_result,

	TP_PROTO(struct mm_struct *mm, unsigned long addr, int result),

	TP_ARGS(mm, addr, result),

	TP_STRUCT__entry(
		__field(struct mm_struct *, mm)
		__field(unsigned long, addr)
		__field(int, result)
	),

	TP_fast_assign(
		__entry->mm = mm;
		__entry->addr = addr;
		__entry->result = result;
	),

	TP_printk("mm=%p, addr=%lx, result=%s", __entry->mm, __entry->addr,
		  __print_symbolic(__entry->result, KRS_SCAN_STATUS, KRS_RETRACT_STATUS))
);

DEFINE_EVENT(krs_mm_addr_result, retract,
	TP_PROTO(struct mm_struct *mm, unsigned long addr, int result),
	TP_ARGS(mm, addr, result)
);

DEFINE_EVENT(krs_mm_addr_result, install_pmd,
	TP_PROTO(struct mm_struct *mm, unsigned long addr, int result),
	TP_ARGS(mm, addr, result)
);

#endif /* _KHUGEPAGED_RS_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE khugepaged_rs_trace
#include <trace/define_trace.h>
