/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers shared by the khugepaged_rs selftests. */
#ifndef KRS_TEST_H
#define KRS_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define KRS_DEBUGFS "/sys/kernel/debug/khugepaged_rs"
#define KRS_MODNAME "khugepaged_rs"

/* Path of khugepaged_rs.ko ($KHUGEPAGED_RS_KO, ., /krs, /lib/modules); NULL if none. */
const char *krs_module_path(void);
bool krs_module_loaded(void);
/* finit_module() with @params; 0 or -errno. */
int krs_load(const char *params);
/* delete_module(); 0 or -errno. */
int krs_unload(void);
/* Load unless already loaded; 0 or -errno. */
int krs_ensure_loaded(void);
/* Read a whole file into @buf (NUL-terminated); bytes read or -errno. */
ssize_t krs_read_file(const char *path, char *buf, size_t size);
/* Read the kernel log (klogctl) into @buf; bytes or -errno. */
ssize_t krs_read_kmsg(char *buf, size_t size);
/* Run @fn(arg) in a child with uid/gid 65534; returns the child's exit code. */
int krs_as_nobody(int (*fn)(void *), void *arg);

#endif
