#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Fingerprints of the upstream code khugepaged_rs mirrors.

    drift.py fingerprint SRCDIR LIST        one "NAME FINGERPRINT" line per
                                            entry of LIST ("-" if absent)
    drift.py compare LIST FINGERPRINTS RELEASE BASE SRCDIR
                                            what changed in SRCDIR (RELEASE)
                                            since BASE's recorded fingerprints
    drift.py record LIST FINGERPRINTS RELEASE SRCDIR
                                            (re)write RELEASE's fingerprints

LIST (tools/drift/functions) names, one a line, "FILE NAME MIRROR...": the
file of the kernel source that defines NAME and where the module mirrors
it. NAME is a function or static inline (its definition, with its body),
a struct or enum, a trace event (TRACE_EVENT/DEFINE_EVENT), a system call
(SYSCALL_DEFINEn) or a #define; the first definition in FILE counts (a
config's stub after #else does not). The fingerprint is the first 16 hex
digits of the SHA-256 of the definition with comments removed and
whitespace normalised (a run of blanks is one space, and none is kept next
to punctuation): reformatting and comments do not change it, any change to
the code does.
"""

import hashlib
import os
import re
import sys

IDENT = re.compile(r"[A-Za-z0-9_]")


def strip_comments(text):
    """Comments replaced by spaces (newlines kept), strings left alone."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"' or c == "'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def match_close(text, i, open_c, close_c):
    """Index just past the bracket closing the one at text[i]."""
    depth = 0
    while i < len(text):
        if text[i] == open_c:
            depth += 1
        elif text[i] == close_c:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def extract(text, name):
    """The first definition of name in text (comments already removed)."""
    n = re.escape(name)
    # A function or static inline: its declarator starts a line.
    for m in re.finditer(r"(?m)^[A-Za-z_][^;{}#]*?\b" + n + r"\s*\(", text):
        close = match_close(text, m.end() - 1, "(", ")")
        if close < 0:
            continue
        # Annotations may follow: __releases(&lock), __must_hold(...).
        rest = re.match(r"[^;{}]*?(\{|;)", text[close:])
        if rest and rest.group(1) == "{":
            body = close + rest.end() - 1
            end = match_close(text, body, "{", "}")
            if end > 0:
                return text[m.start():end]
    # A system call.
    m = re.search(r"(?m)^SYSCALL_DEFINE\d\(\s*" + n + r"\s*,", text)
    if m:
        close = match_close(text, m.end() - len(m.group(0)) + m.group(0).index("("), "(", ")")
        body = text.find("{", close)
        end = match_close(text, body, "{", "}")
        if body >= 0 and end > 0:
            return text[m.start():end]
    # A trace event or its class.
    m = re.search(r"(?m)^(TRACE_EVENT|DECLARE_EVENT_CLASS)\(\s*" + n + r"\s*,"
                  r"|^DEFINE_EVENT\(\s*\w+\s*,\s*" + n + r"\s*,", text)
    if m:
        end = match_close(text, m.start() + m.group(0).index("("), "(", ")")
        if end > 0:
            return text[m.start():end]
    # A struct or enum.
    m = re.search(r"(?m)^(struct|enum|union)\s+" + n + r"\s*\{", text)
    if m:
        end = match_close(text, m.end() - 1, "{", "}")
        if end > 0:
            return text[m.start():end]
    # A macro, with its continuation lines.
    m = re.search(r"(?m)^#\s*define\s+" + n + r"\b(.*\\\n)*.*", text)
    if m:
        return m.group(0)
    return None


def normalise(code):
    code = re.sub(r"\s+", " ", code).strip()
    out = []
    for i, c in enumerate(code):
        if c == " ":
            before, after = code[i - 1], code[i + 1]
            if not (IDENT.match(before) and IDENT.match(after)):
                continue
        out.append(c)
    return "".join(out)


def fingerprint(code):
    return hashlib.sha256(normalise(code).encode()).hexdigest()[:16]


def read_list(path):
    entries = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if not line:
                continue
            if len(line) < 2:
                sys.exit(f"{path}: bad line {' '.join(line)}")
            entries.append((line[0], line[1], line[2:]))
    names = [e[1] for e in entries]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        sys.exit(f"{path}: listed twice: {', '.join(dup)}")
    return entries


def fingerprints_of(src, entries):
    cache, out = {}, {}
    for file, name, _ in entries:
        if file not in cache:
            try:
                with open(os.path.join(src, file), encoding="utf-8", errors="replace") as f:
                    cache[file] = strip_comments(f.read())
            except FileNotFoundError:
                cache[file] = None
        code = extract(cache[file], name) if cache[file] is not None else None
        out[name] = fingerprint(code) if code else "-"
    return out


def read_recorded(path):
    rec = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.split("#", 1)[0].split()
                if len(line) == 3:
                    rec.setdefault(line[0], {})[line[1]] = line[2]
    return rec


def write_recorded(path, rec, header):
    with open(path, "w", encoding="utf-8") as f:
        f.write(header)
        for release in rec:
            f.write(f"\n# {release}\n")
            width = max(len(n) for n in rec[release])
            for name, fp in rec[release].items():
                f.write(f"{release} {name:<{width}} {fp}\n")


HEADER = """\
# The fingerprints of the upstream code khugepaged_rs mirrors
# (tools/drift/functions), per verified kernel: "RELEASE NAME FINGERPRINT",
# "-" where that kernel has no such definition. Written by
# `make drift KVER=<release> RECORD=1` (tools/drift/drift.py) once the
# module has been checked against that kernel's source; `make drift`
# compares a kernel's source with them. Do not edit by hand.
"""


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd = argv[1]
    if cmd == "fingerprint" and len(argv) == 4:
        for name, fp in fingerprints_of(argv[2], read_list(argv[3])).items():
            print(name, fp)
        return 0
    if cmd == "record" and len(argv) == 6:
        lst, fps, release, src = argv[2:]
        entries = read_list(lst)
        now = fingerprints_of(src, entries)
        rec = read_recorded(fps)
        rec[release] = now
        write_recorded(fps, rec, HEADER)
        absent = [n for n, fp in now.items() if fp == "-"]
        print(f"recorded {len(now)} fingerprints of {release}"
              + (f" ({len(absent)} absent: {', '.join(absent)})" if absent else ""))
        return 0
    if cmd == "compare" and len(argv) == 7:
        lst, fps, release, base, src = argv[2:]
        entries = read_list(lst)
        rec = read_recorded(fps)
        if base not in rec:
            sys.exit(f"no fingerprints recorded for {base} in {fps} "
                     f"(recorded: {', '.join(rec) or 'none'})")
        now = fingerprints_of(src, entries)
        changed = unchanged = 0
        for file, name, mirror in entries:
            old, new = rec[base].get(name), now[name]
            where = f"{file}; mirrored in {', '.join(mirror)}" if mirror else file
            if old is None:
                what = "new entry (no fingerprint of it recorded for the base)"
            elif old == new:
                unchanged += 1
                continue
            elif old == "-":
                what = "added"
            elif new == "-":
                what = "gone (removed, renamed or moved out of the file)"
            else:
                what = "changed"
            changed += 1
            print(f"{name}\t{what}\t({where})")
        print(f"# {changed} of {len(entries)} changed in {release} since {base}, "
              f"{unchanged} unchanged", file=sys.stderr)
        return 0
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
