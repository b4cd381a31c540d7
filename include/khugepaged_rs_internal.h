/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Declarations of kernel functions that only mm/internal.h declares, copied
 * verbatim from Linux 7.2 (mm/internal.h). They are here so that typeof() in
 * rust/helpers/symbols.c has a declaration to check the resolved pointers
 * against; on a kernel bump, compare them with the new mm/internal.h.
 */
#ifndef _KHUGEPAGED_RS_INTERNAL_H
#define _KHUGEPAGED_RS_INTERNAL_H

#include <linux/mm_types.h>

/* mm/internal.h, Linux 7.2 */
void pmd_install(struct mm_struct *mm, pmd_t *pmd, pgtable_t *pte);
bool folio_isolate_lru(struct folio *folio);
void folio_putback_lru(struct folio *folio);
pmd_t *mm_find_pmd(struct mm_struct *mm, unsigned long address);

#endif /* _KHUGEPAGED_RS_INTERNAL_H */
