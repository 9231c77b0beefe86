#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""linked_size.py MAP -- the bytes of code and constants (.text*, .rodata*) a GNU ld map file
gives each object of libmedwire.a, as rows "| file | bytes |" and their total. Used by
scripts/footprint.sh on the bare-metal example linked with --gc-sections: what a firmware that
opens a client, sends and polls keeps of medwire, rather than every function of the archive.

linked_size.py --total MAP WORD... -- one number: those bytes of every object whose name holds
one of the WORDs (such as "libmw_bare_metal.a(", or ".ltrans" for what a -flto link made)."""
import collections
import re
import sys

total = sys.argv[1] == "--total"
args = sys.argv[2:] if total else sys.argv[1:]
words = args[1:]
text = open(args[0], encoding="utf-8").read()
text = text[text.index("Linker script and memory map"):]
# An input section: its name, then (on the same line or the next) address, size and object.
row = re.compile(r"^ (\.(?:text|rodata)\S*)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)$", re.M)
if total:
    print(sum(int(m.group(3), 16) for m in row.finditer(text) if any(w in m.group(4) for w in words)))
    sys.exit(0)
sizes = collections.Counter()
for m in row.finditer(text):
    obj = m.group(4)
    if "libmedwire.a(" not in obj:
        continue
    name = obj.split("(", 1)[1].rstrip(")")
    sizes[re.sub(r"\.obj$|\.o$", "", name)] += int(m.group(3), 16)
for name, n in sorted(sizes.items(), key=lambda kv: -kv[1]):
    print(f"| {name} | {n} |")
print(f"| **total kept of libmedwire.a** | {sum(sizes.values())} |")
