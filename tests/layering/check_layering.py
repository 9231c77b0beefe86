#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""check_layering.py -- every #include under src/ keeps to the layer graph (docs/design.md).

A layer may include its own headers, the public headers (medwire/...) and the headers of the
layers it is allowed to use; a dependency's headers only where that dependency is confined;
headers beyond the C standard library only in the POSIX port. Exit status 1 names each include
that crosses the graph, with the file and line.

  check_layering.py SRC_DIR      check the tree
  check_layering.py --self-test  show that a wrong include is caught (the check can fail)
"""
import os
import re
import sys
import tempfile

# Layer -> the layers whose headers it may include (its own always).
USES = {
    "core": set(),
    "port/posix": {"core"},
    # The no-OS port: wolfSSL's user_settings.h and the two socket headers libcoap's headers
    # include, on the include path of cross builds only (cmake/cross-deps.cmake).
    "port/none": set(),
    "dtls": {"core"},
    "coap": {"core"},
    "session": {"core"},
    "queue": {"core", "session"},
    "client": {"core", "session", "coap", "dtls", "queue", "port/posix"},
    "gateway": {"core", "session", "coap", "dtls", "port/posix"},
}

# Headers of a dependency (a prefix or a name) -> the files or folders that may include them.
CONFINED = [
    ("wolfssl/", ["src/dtls/", "src/queue/aead.c"]),   # TLS, and AES-GCM for records at rest
    ("coap3/", ["src/coap/"]),
    ("sqlite3.h", ["src/gateway/store.c"]),
    ("libpq-fe.h", ["src/gateway/store_pg.c"]),
    ("pb_", ["src/session/", "src/queue/"]),           # nanopb, and its generated code
    ("medwire.pb.h", ["src/session/", "src/queue/"]),
]

C_STANDARD = {
    "assert.h", "complex.h", "ctype.h", "errno.h", "fenv.h", "float.h", "inttypes.h",
    "iso646.h", "limits.h", "locale.h", "math.h", "setjmp.h", "signal.h", "stdalign.h",
    "stdarg.h", "stdatomic.h", "stdbool.h", "stddef.h", "stdint.h", "stdio.h", "stdlib.h",
    "stdnoreturn.h", "string.h", "tgmath.h", "threads.h", "time.h", "uchar.h", "wchar.h",
    "wctype.h",
}

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def layer_of(rel):
    """The layer of a path relative to the repository ('src/port/posix/udp.c' -> 'port/posix')."""
    parts = rel.split("/")[1:-1]
    for n in (2, 1):
        name = "/".join(parts[:n])
        if name in USES:
            return name
    return None


def allowed(rel, header):
    layer = layer_of(rel)
    for prefix, where in CONFINED:
        if header.startswith(prefix):
            return any(rel == w or (w.endswith("/") and rel.startswith(w)) for w in where)
    if header.startswith("medwire/"):
        return True
    target = header.rsplit("/", 1)[0] if "/" in header else None
    if target in USES:
        return target == layer or target in USES[layer]
    if header in C_STANDARD:
        return True
    # Anything else is the operating system's (pthread.h, unistd.h, sys/...): the port's alone.
    return layer in ("port/posix", "port/none")


def check(root):
    problems = []
    src = os.path.join(root, "src")
    for dirpath, _, files in os.walk(src):
        for f in sorted(files):
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            if layer_of(rel) is None:
                problems.append(f"{rel}: in no layer; add its folder to USES in {sys.argv[0]}")
                continue
            with open(path, encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    m = INCLUDE.match(line)
                    if m and not allowed(rel, m.group(2)):
                        problems.append(f"{rel}:{n}: includes {m.group(2)}, which layer "
                                        f"'{layer_of(rel)}' may not use (docs/design.md, layers)")
    return problems


def self_test():
    probes = [
        ("src/coap/exchange.c", "#include <wolfssl/ssl.h>\n"),
        ("src/coap/exchange.c", '#include "dtls/dtls.h"\n'),
        ("src/core/fhir.c", "#include <pthread.h>\n"),
        ("src/client/client.c", "#include <sqlite3.h>\n"),
        ("src/session/codec.c", '#include "queue/queue.h"\n'),
        ("src/queue/queue.c", "#include <wolfssl/wolfcrypt/aes.h>\n"),
        ("src/queue/record.c", "#include <wolfssl/options.h>\n"),
    ]
    clean = [("src/coap/exchange.c", '#include "coap/coap.h"\n#include <string.h>\n'),
             ("src/port/posix/udp.c", "#include <sys/socket.h>\n"),
             ("src/client/client.c", '#include "dtls/dtls.h"\n'),
             ("src/queue/aead.c", "#include <wolfssl/wolfcrypt/aes.h>\n")]
    failed = False
    for cases, want in ((probes, True), (clean, False)):
        for rel, text in cases:
            with tempfile.TemporaryDirectory() as d:
                os.makedirs(os.path.join(d, os.path.dirname(rel)))
                with open(os.path.join(d, rel), "w", encoding="utf-8") as fh:
                    fh.write(text)
                got = bool(check(d))
                if got != want:
                    print(f"self-test: {rel} with {text.strip()!r}: "
                          f"{'not caught' if want else 'refused wrongly'}")
                    failed = True
    return 1 if failed else 0


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "--self-test":
        return self_test()
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    problems = check(sys.argv[1])
    for p in problems:
        print(p)
    if problems:
        print(f"layering: {len(problems)} include(s) cross the layer graph")
        return 1
    print("layering: every include under src/ keeps to the layer graph")
    return 0


if __name__ == "__main__":
    sys.exit(main())
