/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Declarations of kernel functions and variables that modules cannot see:
 * those only mm/internal.h declares, statics of mm/khugepaged.c, and those
 * x86's tlbflush.h hides under #ifndef MODULE; copied from Linux 7.2 (less
 * a redundant extern), and what later kernels moved there under their
 * version. They are here so that typeof() in rust/helpers/symbols.c has a
 * declaration to check the resolved pointers against; on a kernel bump,
 * compare them with the new mm/internal.h and mm/khugepaged.c.
 */
#ifndef _KHUGEPAGED_RS_INTERNAL_H
#define _KHUGEPAGED_RS_INTERNAL_H

#include <linux/mm_types.h>

#include "khugepaged_rs.h"

/* mm/internal.h, Linux 7.2 */
bool folio_isolate_lru(struct folio *folio);
void folio_putback_lru(struct folio *folio);
pmd_t *mm_find_pmd(struct mm_struct *mm, unsigned long address);
void try_to_unmap_flush(void);
void workingset_update_node(struct xa_node *node);
extern struct list_lru shadow_nodes;

/*
 * mm/khugepaged.c, Linux 7.2: static there, found by kallsyms_lookup_name()
 * all the same (CONFIG_KALLSYMS_ALL); the type is the definition's.
 */
extern unsigned int khugepaged_max_ptes_swap;
extern unsigned int khugepaged_pages_to_scan;
extern unsigned int khugepaged_scan_sleep_millisecs;
extern unsigned int khugepaged_alloc_sleep_millisecs;

#if KRS_KERNEL_7_3
/* mm/internal.h, Linux 7.3 (was in <linux/swap.h>) */
void lru_add_drain(void);
#endif

/* arch/x86/include/asm/tlbflush.h, Linux 7.2 (#ifndef MODULE there) */
void flush_tlb_mm_range(struct mm_struct *mm, unsigned long start,
			unsigned long end, unsigned int stride_shift,
			bool freed_tables);

#endif /* _KHUGEPAGED_RS_INTERNAL_H */
