#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""arm_symbols.py -- the device archive calls nothing of an operating system.

Reads the undefined symbols of the cross-built libmedwire.a (arm-none-eabi-nm -u) and fails,
naming each one, on any POSIX I/O, socket, file, stdio output, pthread, clock/time or libcoap
logging symbol: a microcontroller with newlib-nano and no OS has none of them (docs/porting.md).
What remains allowed is the C library's memory and string functions, snprintf, and the
codec/crypto functions of libcoap, wolfCrypt and nanopb.

  arm_symbols.py ARCHIVE [NM]   check an archive (NM default arm-none-eabi-nm); prints the list
  arm_symbols.py --list FILE    check a list of names, one a line (nm -u output also accepted)
  arm_symbols.py --self-test    show that a forbidden symbol is caught (the check can fail)
"""
import subprocess
import sys
import tempfile

# Exact names.
FORBIDDEN = {
    # sockets and descriptors
    "socket", "bind", "connect", "listen", "accept", "recv", "recvfrom", "recvmsg", "recvmmsg",
    "send", "sendto", "sendmsg", "sendmmsg", "poll", "select", "epoll_wait", "getaddrinfo",
    "freeaddrinfo", "gethostbyname", "inet_pton", "inet_ntop", "setsockopt", "getsockname",
    "fcntl", "ioctl",
    # files
    "open", "openat", "read", "write", "close", "lseek", "fsync", "fdatasync", "unlink",
    "rename", "mkdir", "stat", "fstat", "lstat", "access", "opendir", "readdir", "ftruncate",
    "mmap", "munmap",
    # stdio streams and output
    "fopen", "fdopen", "fclose", "fread", "fwrite", "fflush", "fgets", "fputs", "fputc",
    "fprintf", "vfprintf", "printf", "vprintf", "puts", "putchar", "perror", "ferror", "feof",
    "fseek", "ftell", "fileno", "stdin", "stdout", "stderr", "_impure_ptr", "__stack_chk_fail",
    # time and clocks
    "clock_gettime", "gettimeofday", "time", "nanosleep", "usleep", "sleep", "strftime",
    "localtime", "localtime_r", "gmtime", "gmtime_r", "mktime",
    # processes and environment
    "getenv", "getpid", "fork", "exit", "abort", "signal", "sigaction", "syslog",
    # libcoap's logging (coap_debug.c: stdio, strftime, a 2 KB buffer)
    "coap_log_impl", "coap_set_log_level", "coap_get_log_level", "coap_set_log_handler",
    "coap_show_pdu", "coap_package_name", "coap_package_version", "coap_startup",
}
# Prefixes.
FORBIDDEN_PREFIXES = ("pthread_", "sem_", "coap_debug", "coap_log", "coap_dtls_", "coap_socket",
                      "coap_io_", "__errno_location", "__isoc99_", "__printf_chk",
                      "__fprintf_chk", "__snprintf_chk", "__vsnprintf_chk", "__memcpy_chk")


def names(text):
    """Symbol names from nm -u output (' U name', 'file.o:' headers) or a plain list."""
    out = set()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.endswith(":"):
            continue
        parts = line.split()
        out.add(parts[-1].split("@")[0])
    return out


def forbidden(symbols):
    return sorted(s for s in symbols if s in FORBIDDEN or s.startswith(FORBIDDEN_PREFIXES))


def check(symbols, show=True):
    bad = forbidden(symbols)
    if show:
        print("undefined symbols of the ARM archive, outside it (%d):" % len(symbols))
        print("  " + " ".join(sorted(symbols)))
    for s in bad if show else []:
        print("arm_symbols: forbidden on a device without an OS: %s" % s, file=sys.stderr)
    return 1 if bad else 0


def self_test():
    ok = {"memcpy", "snprintf", "wc_AesGcmEncrypt", "coap_opt_parse", "pb_encode"}
    if check(ok, show=False) != 0:
        print("arm_symbols self-test: a clean list was refused", file=sys.stderr)
        return 1
    for extra in ("fopen", "pthread_mutex_lock", "coap_log_impl", "clock_gettime", "sendto"):
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
            f.write("client.c.obj:\n" + "".join("         U %s\n" % s for s in ok | {extra}))
            f.flush()
            with open(f.name) as r:
                if check(names(r.read()), show=False) == 0:
                    print("arm_symbols self-test: %s was not caught" % extra, file=sys.stderr)
                    return 1
    print("arm_symbols self-test: forbidden symbols are caught")
    return 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    if len(argv) == 3 and argv[1] == "--list":
        with open(argv[2]) as f:
            return check(names(f.read()))
    if len(argv) in (2, 3):
        nm = argv[2] if len(argv) == 3 else "arm-none-eabi-nm"
        text = subprocess.run([nm, "-u", argv[1]], check=True, capture_output=True,
                              text=True).stdout
        defined = subprocess.run([nm, "-g", "--defined-only", argv[1]], check=True,
                                 capture_output=True, text=True).stdout
        # What one object takes from another is no dependency of the archive's.
        return check(names(text) - names(defined))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
