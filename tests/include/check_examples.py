#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""check_examples.py -- compiles every @code example of the public headers and every ```c block
of the README with -Wall -Wextra -Werror, as a user who copies one would.

Each example is compiled alone: its #include lines and static functions at file scope, the rest
as the body of a function whose parameters are the few names examples take as given (a client,
a message, a configuration, a key, bytes, a flag). Usage:
    check_examples.py --cc CC --include DIR HEADER... [--readme README.md]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

PRELUDE = """#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <medwire/medwire.h>
"""

# What an example may use without declaring it, as it would come from the code around it.
CONTEXT = [
    ("mw_client_t *", "client"),
    ("const mw_message_t *", "msg"),
    ("mw_client_config_t", "cfg"),
    ("const uint8_t *", "vendor_key"),
    ("const uint8_t *", "bytes"),
    ("size_t", "len"),
    ("volatile int", "running"),
]

STATIC_FN = re.compile(r"^static\s[^=;]*?\b(\w+)\s*\(")


def header_examples(path):
    """Yields (line, text) for each @code ... @endcode block of a header's comments."""
    lines = open(path, encoding="utf-8").read().split("\n")
    block, start = None, 0
    for i, line in enumerate(lines, 1):
        body = re.sub(r"^\s*\*( |$)", "", line)
        if "@code" in line:
            block, start = [], i + 1
        elif "@endcode" in line and block is not None:
            yield start, "\n".join(block)
            block = None
        elif block is not None:
            block.append(body)


def readme_examples(path):
    """Yields (line, text) for each ```c block of a Markdown file."""
    lines = open(path, encoding="utf-8").read().split("\n")
    block, start = None, 0
    for i, line in enumerate(lines, 1):
        if block is None and line.strip() == "```c":
            block, start = [], i + 1
        elif block is not None and line.strip() == "```":
            yield start, "\n".join(block)
            block = None
        elif block is not None:
            block.append(line)


def wrap(example):
    """A translation unit: file-scope parts first, then the statements in a function."""
    top, body, in_fn = [], [], False
    names = []
    for line in example.split("\n"):
        if in_fn:
            top.append(line)
            in_fn = line != "}"
        elif line.startswith("#include"):
            top.append(line)
        elif STATIC_FN.match(line):
            names.append(STATIC_FN.match(line).group(1))
            top.append(line)
            in_fn = not line.rstrip().endswith(";")
        else:
            body.append("    " + line)
    params = ", ".join(f"{t}{'' if t.endswith('*') else ' '}{n}" for t, n in CONTEXT)
    used = "".join(f"    (void){n};\n" for _, n in CONTEXT)
    # Functions of the example are referenced, so that none is "defined but not used".
    used += "".join(f"    (void){n};\n" for n in names)
    return (PRELUDE + "\n".join(top) + f"\n\nvoid mw_example({params});\n"
            f"void mw_example({params})\n{{\n{used}    {{\n" + "\n".join(body) + "\n    }\n}\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cc", required=True)
    ap.add_argument("--include", required=True)
    ap.add_argument("--readme")
    ap.add_argument("headers", nargs="+")
    a = ap.parse_args()
    examples = []
    for h in a.headers:
        examples += [(h, line, text) for line, text in header_examples(h)]
    if a.readme:
        examples += [(a.readme, line, text) for line, text in readme_examples(a.readme)]
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for n, (path, line, text) in enumerate(examples):
            src = os.path.join(tmp, f"example{n}.c")
            with open(src, "w", encoding="utf-8") as f:
                f.write(wrap(text))
            cmd = [a.cc, "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror",
                   "-I", a.include, "-c", src, "-o", os.path.join(tmp, f"example{n}.o")]
            r = subprocess.run(cmd, capture_output=True, text=True)
            where = f"{os.path.basename(path)}:{line}"
            if r.returncode != 0:
                failed += 1
                print(f"FAIL {where}: the example does not compile with -Wall -Wextra -Werror\n"
                      f"{r.stderr}\n--- as compiled:\n{wrap(text)}")
            else:
                print(f"ok   {where}")
    print(f"{len(examples)} examples, {failed} failed")
    if not examples:
        print("no example found: the extraction is broken")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
