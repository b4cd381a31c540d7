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

/* The module's version: MODULE_VERSION() and the debugfs status file. */
#define KRS_VERSION "0.1.0"

/*
 * One kernel function 7.2 does not export, resolved through kallsyms at load.
 * @slot points at a C function pointer typed with typeof() of the kernel's
 * own declaration (rust/helpers/symbols.c), so a signature change in a newer
 * kernel is a compile error, not a silent ABI mismatch.
 */
struct krs_symbol {
	const char *name;
	void **slot;
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

#endif /* _KHUGEPAGED_RS_H */
