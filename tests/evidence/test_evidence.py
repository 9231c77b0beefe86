#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""test_evidence.py -- scripts/evidence.py on a small made-up tree: a passing run gives PASS for
every requirement and exit 0; each way evidence can be missing or wrong gives exit 1 and names
the problem. Standard library only.

    test_evidence.py SOURCE_DIR
"""

import os
import subprocess
import sys
import tempfile
import time

REQS = """# x
<!-- requirements:begin -->
| id | source | requirement | how |
| --- | --- | --- | --- |
| MDR-17.2 | MDR | software | code |
| MDS2-TXIG | MDS2 | integrity | AEAD \\| records |
<!-- requirements:end -->
"""

TEST_C = """#include <criterion/criterion.h>
/* @req MDR-17.2 */
Test(s, a) {}

/* @req MDS2-TXIG */
/* @req MDR-17.2 */
Test(s,
     b, .timeout = 1) {}
"""

CMAKE = """# @req MDR-17.2
add_test(NAME test_elf COMMAND true)
"""


def report(cases):
    body = "".join(f'<testcase name="{n}" status="{st}"></testcase>' for n, st in cases)
    return (f'<?xml version="1.0"?><testsuites><testsuite name="s">{body}'
            "</testsuite></testsuites>")


def junit(status):
    return f'<testsuite><testcase name="test_elf" status="{status}"/></testsuite>'


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def run(script, root, *extra):
    r = subprocess.run([sys.executable, script, "--source", root, "--build",
                        os.path.join(root, "build"), *extra], capture_output=True, text=True,
                       check=False)
    return r.returncode, r.stdout + r.stderr


def main():
    script = os.path.join(os.path.abspath(sys.argv[1]), "scripts", "evidence.py")
    failures = []

    def case(name, tweak, want_rc, want_text):
        with tempfile.TemporaryDirectory() as root:
            files = {
                "docs/regulatory.md": REQS,
                "tests/x/test_x.c": TEST_C,
                "tests/x/CMakeLists.txt": CMAKE,
                "build/test-reports/test_x.xml": report([("a", "PASSED"), ("b", "PASSED")]),
                "build/test-reports/ctest-junit.xml": junit("run"),
            }
            tweak(files)
            for rel, text in files.items():
                if text is not None:
                    write(os.path.join(root, rel), text)
            exe = os.path.join(root, "build", "tests", "test_x")
            if "stale" in name:
                write(exe, "")
                later = time.time() + 10
                os.utime(exe, (later, later))
            rc, out = run(script, root)
            matrix = os.path.join(root, "build", "evidence", "regulatory-matrix.md")
            if rc != want_rc or want_text not in out + (
                    open(matrix, encoding="utf-8").read() if os.path.exists(matrix) else ""):
                failures.append(f"{name}: exit {rc} (want {want_rc}), wanted {want_text!r} in:\n"
                                f"{out}")

    def set_(key, value):
        return lambda f: f.__setitem__(key, value)

    case("all pass", lambda f: None, 0, "2/2 requirements shown by passing tests")
    case("a test failed", set_("build/test-reports/test_x.xml",
                               report([("a", "PASSED"), ("b", "FAILED")])), 1, "s::b")
    case("a test skipped", set_("build/test-reports/test_x.xml",
                                report([("a", "PASSED"), ("b", "SKIPPED")])), 1, "NOT RUN")
    case("a test missing from the report", set_("build/test-reports/test_x.xml",
                                                 report([("a", "PASSED")])), 1, "did not run")
    case("no reports at all", lambda f: (f.__setitem__("build/test-reports/test_x.xml", None),
                                         f.__setitem__("build/test-reports/ctest-junit.xml",
                                                       None)), 1, "did not run")
    case("ctest test failed", set_("build/test-reports/ctest-junit.xml",
                                   '<testsuite><testcase name="test_elf" status="fail">'
                                   "<failure/></testcase></testsuite>"), 1, "ctest:test_elf")
    case("a stale report", lambda f: None, 1, "older than its executable")
    case("a requirement without a test", set_("tests/x/test_x.c", TEST_C.split("/* @req MDS2")[0]),
         1, "MDS2-TXIG has no test")
    case("an unknown id", set_("tests/x/CMakeLists.txt", "# @req MDR-99\nadd_test(NAME test_elf"
                               " COMMAND true)\n"), 1, "unknown requirement MDR-99")
    case("a tag not above a test", set_("tests/x/test_x.c", TEST_C.replace(
        "Test(s, a)", "static int helper;\nTest(s, a)")), 1, "not directly above a Test(")
    case("a malformed tag", set_("tests/x/test_x.c", "/* @req: MDR-17.2 */\n" + TEST_C), 1,
         "malformed @req tag")
    for f in failures:
        print(f"test_evidence: {f}", file=sys.stderr)
    print(f"test_evidence: {11 - len(failures)}/11 cases as expected")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
