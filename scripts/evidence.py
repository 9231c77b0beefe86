#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""evidence.py -- fill the regulatory traceability matrix with the results of the last test run.

    scripts/evidence.py [--source DIR] [--build DIR] [--out DIR]   # after the test run
    scripts/evidence.py --check-tags [--source DIR]                 # tags only, no results

Reads three things and writes DIR/regulatory-matrix.md and DIR/regulatory-matrix.json (default
DIR: BUILD/evidence):

1. the requirements: the table between the `requirements:begin` and `requirements:end` markers
   of docs/regulatory.md (id, source, requirement, how medwire meets it);
2. the tags in the tests: a comment line `/* @req ID ID ... */` directly above a Criterion
   `Test(suite, name` names that test `suite::name`; a line `# @req ID ...` directly above an
   `add_test(NAME name` or `mw_add_test(name` in a tests/ CMakeLists.txt names the whole ctest
   test `ctest:name`. Several tag lines may stack; nothing else may come between them and
   the test;
3. the results of the last run: one Criterion XML report per test executable
   (BUILD/test-reports/EXE.xml, written by --xml, see cmake/MedwireHelpers.cmake) and ctest's
   JUnit report (BUILD/test-reports/ctest-junit.xml, ctest --output-junit). A report older
   than its executable is stale and counts as not run.

Exit status 1, after writing the matrix, when a requirement has no tagged test, a tag names an
unknown requirement or sits anywhere but directly above a test, a tagged test failed or did
not run (skipped counts as not run), or docs/SECURITY-MODEL.md cites a test (`suite::name`,
`ctest:name`) that does not exist. Standard library only.
"""

import argparse
import datetime
import glob
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

BEGIN = "<!-- requirements:begin -->"
END = "<!-- requirements:end -->"
ID_RE = re.compile(r"^[A-Z][A-Za-z0-9]*(-[A-Za-z0-9.]+)+$")
C_TAG = re.compile(r"^\s*/\*\s*@req((?:\s+\S+)+?)\s*\*/\s*$")
CMAKE_TAG = re.compile(r"^\s*#\s*@req((?:\s+\S+)+)\s*$")
C_TEST = re.compile(r"^\s*Test\(\s*(\w+)\s*,\s*(\w+)")  # on the joined lines
CMAKE_TEST = re.compile(r"^\s*(?:add_test\(\s*NAME\s+([\w.\-]+)|mw_add_test\(\s*([\w.\-]+))")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def load_requirements(doc_path, problems):
    text = read(doc_path)
    if BEGIN not in text or END not in text:
        problems.append(f"{doc_path}: no {BEGIN} ... {END} table")
        return {}
    reqs = {}
    for line in text.split(BEGIN, 1)[1].split(END, 1)[0].splitlines():
        # Cells split on unescaped pipes; "\\|" is a pipe inside a cell.
        cells = [c.strip().replace("\\|", "|")
                 for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if len(cells) < 4 or not ID_RE.match(cells[0].strip("`")):
            continue
        rid = cells[0].strip("`")
        if rid in reqs:
            problems.append(f"{doc_path}: requirement {rid} listed twice")
        reqs[rid] = {"id": rid, "source": cells[1], "requirement": cells[2],
                     "feature": cells[3], "order": len(reqs)}
    if not reqs:
        problems.append(f"{doc_path}: the requirements table is empty")
    return reqs


def scan_tags(source, problems):
    """[(test_id, [req ids], 'file:line')] from the tests' tag comments."""
    found = []
    files = sorted(glob.glob(os.path.join(source, "tests", "**", "*.c"), recursive=True))
    files += sorted(glob.glob(os.path.join(source, "tests", "**", "CMakeLists.txt"),
                              recursive=True))
    for path in files:
        rel = os.path.relpath(path, source)
        is_c = path.endswith(".c")
        tag_re, test_re = (C_TAG, C_TEST) if is_c else (CMAKE_TAG, CMAKE_TEST)
        lines = read(path).splitlines()
        pending, pending_line = [], 0
        for i, line in enumerate(lines, 1):
            m = tag_re.match(line)
            if m:
                if not pending:
                    pending_line = i
                pending += m.group(1).split()
                continue
            if "@req" in line:
                problems.append(f"{rel}:{i}: malformed @req tag (expected "
                                + ("'/* @req ID ... */'" if is_c else "'# @req ID ...'")
                                + " alone on its line)")
            if not pending:
                continue
            # A Criterion test's name may be on the line after "Test(suite,".
            t = test_re.match(" ".join(lines[i - 1:i + 2]) if is_c else line)
            if t is None:
                problems.append(f"{rel}:{pending_line}: @req tag not directly above a "
                                + ("Test(" if is_c else "add_test(NAME / mw_add_test("))
            elif is_c:
                found.append((f"{t.group(1)}::{t.group(2)}", pending, f"{rel}:{i}"))
            else:
                found.append((f"ctest:{t.group(1) or t.group(2)}", pending, f"{rel}:{i}"))
            pending = []
        if pending:
            problems.append(f"{rel}:{pending_line}: @req tag at the end of the file")
    return found


def check_doc_references(source, doc, problems):
    """Every `suite::name` and `ctest:name` a document cites must exist in tests/ or fuzz/."""
    path = os.path.join(source, doc)
    if not os.path.exists(path):
        return
    known = set()
    for f in glob.glob(os.path.join(source, "tests", "**", "*.c"), recursive=True):
        text = read(f)
        known.update(f"{a}::{b}" for a, b in re.findall(r"^\s*Test\(\s*(\w+)\s*,\s*(\w+)",
                                                          text, re.M))
    for f in glob.glob(os.path.join(source, "**", "CMakeLists.txt"), recursive=True):
        text = read(f)
        known.update(f"ctest:{n}" for n in re.findall(r"(?:add_test\(\s*NAME|mw_add_test\()\s*"
                                                      r"([\w.\-]+)", text))
    # The fuzz corpus replays are added in a loop: ctest:TARGET_replay for each fuzz/fuzz_*.c.
    known.update(f"ctest:{os.path.basename(f)[:-2]}_replay"
                 for f in glob.glob(os.path.join(source, "fuzz", "fuzz_*.c"))
                 if not f.endswith("fuzz_support.c"))
    for i, line in enumerate(read(path).splitlines(), 1):
        for ref in re.findall(r"`((?:\w+::\w+)|(?:ctest:[\w.\-]+))`", line):
            if ref not in known and ref not in ("suite::name", "ctest:name"):
                problems.append(f"{doc}:{i}: cites {ref}, which is not a test in tests/")


def load_results(build, problems):
    """test id -> {status, exe, report} from the Criterion and ctest reports of the last run."""
    results = {}
    rdir = os.path.join(build, "test-reports")
    for path in sorted(glob.glob(os.path.join(rdir, "*.xml"))):
        name = os.path.basename(path)[:-4]
        try:
            root = ET.parse(path).getroot()
        except (ET.ParseError, OSError) as e:
            problems.append(f"{path}: unreadable report ({e})")
            continue
        mtime = os.path.getmtime(path)
        if name == "ctest-junit":
            for tc in root.iter("testcase"):
                status = tc.get("status", "")
                if tc.find("failure") is not None or tc.find("error") is not None:
                    verdict = "FAIL"
                elif status == "run":
                    verdict = "PASS"
                else:
                    verdict = "NOT RUN"
                results[f"ctest:{tc.get('name')}"] = {"status": verdict, "exe": tc.get("name"),
                                                      "report": path}
            continue
        exe = os.path.join(build, "tests", name)
        stale = os.path.exists(exe) and os.path.getmtime(exe) > mtime
        for suite in root.iter("testsuite"):
            for tc in suite.iter("testcase"):
                status = tc.get("status", "")
                verdict = {"PASSED": "PASS", "FAILED": "FAIL", "ERRORED": "FAIL"}.get(
                    status, "NOT RUN")
                if stale:
                    verdict = "NOT RUN"
                key = f"{suite.get('name')}::{tc.get('name')}"
                if key in results and results[key]["exe"] != name:
                    problems.append(f"test {key} is in two executables ({results[key]['exe']} "
                                    f"and {name}): rename one")
                results[key] = {"status": verdict, "exe": name, "report": path,
                                "stale": stale}
    return results


def git(source, *args):
    r = subprocess.run(["git", "-C", source, *args], capture_output=True, text=True, check=False)
    return r.stdout.strip() if r.returncode == 0 else None


def md_escape(s):
    return s.replace("|", "\\|")


def write_outputs(out, reqs, tags, results, problems, meta):
    os.makedirs(out, exist_ok=True)
    by_req = {r: [] for r in reqs}
    for test_id, ids, where in tags:
        for r in ids:
            if r in by_req:
                by_req[r].append((test_id, where))
    rows = []
    for rid in sorted(reqs, key=lambda r: reqs[r]["order"]):
        tests = []
        for test_id, where in sorted(set(by_req[rid])):
            res = results.get(test_id) if results is not None else None
            status = res["status"] if res else ("NOT RUN" if results is not None else "—")
            tests.append({"test": test_id, "where": where, "status": status,
                          "executable": res["exe"] if res else None})
        if not tests:
            verdict = "NO TEST"
        elif results is None:
            verdict = "TAGGED"
        elif all(t["status"] == "PASS" for t in tests):
            verdict = "PASS"
        else:
            verdict = "FAIL"
        rows.append({**{k: v for k, v in reqs[rid].items() if k != "order"},
                     "tests": tests, "verdict": verdict})

    doc = {"meta": meta, "requirements": rows, "problems": problems}
    with open(os.path.join(out, "regulatory-matrix.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")

    n_ok = sum(1 for r in rows if r["verdict"] == "PASS")
    lines = [
        "# medwire regulatory traceability matrix",
        "",
        f"- commit: `{meta['commit']}`" + (" **with uncommitted changes**" if meta["dirty"]
                                           else ""),
        f"- generated: {meta['generated']} by `scripts/evidence.py` from the test reports in "
        f"`{meta['reports']}` (how: docs/regulatory.md)",
        f"- requirements: {len(rows)}; shown by passing tests: {n_ok}; problems: {len(problems)}",
        f"- tagged tests: {meta['tagged_tests']}; test results read: {meta['results_read']}",
        "",
        "## Summary",
        "",
        "| requirement | source | verdict | tests passed |",
        "| --- | --- | --- | --- |",
    ]
    for r in rows:
        passed = sum(1 for t in r["tests"] if t["status"] == "PASS")
        lines.append(f"| {r['id']} | {md_escape(r['source'])} | **{r['verdict']}** | "
                     f"{passed}/{len(r['tests'])} |")
    lines += ["", "## Requirements, features and tests", ""]
    for r in rows:
        lines += [f"### {r['id']} — {r['verdict']}", "",
                  f"*{md_escape(r['source'])}*: {r['requirement']}", "",
                  f"How medwire meets it: {r['feature']}", ""]
        if r["tests"]:
            lines += ["| test | result | executable | tagged at |", "| --- | --- | --- | --- |"]
            for t in r["tests"]:
                lines.append(f"| `{t['test']}` | {t['status']} | {t['executable'] or '—'} | "
                             f"{t['where']} |")
        else:
            lines.append("No test carries this requirement's id.")
        lines.append("")
    lines += ["## Problems", ""]
    lines += [f"- {p}" for p in problems] or ["None."]
    lines.append("")
    with open(os.path.join(out, "regulatory-matrix.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--source", default=os.path.dirname(here))
    ap.add_argument("--build", default=None, help="build directory (default: SOURCE/build)")
    ap.add_argument("--out", default=None, help="output directory (default: BUILD/evidence)")
    ap.add_argument("--check-tags", action="store_true",
                    help="check the requirements and tags only; read no results, write nothing")
    args = ap.parse_args()
    source = os.path.abspath(args.source)
    build = os.path.abspath(args.build or os.path.join(source, "build"))
    out = os.path.abspath(args.out or os.path.join(build, "evidence"))

    problems = []
    reqs = load_requirements(os.path.join(source, "docs", "regulatory.md"), problems)
    tags = scan_tags(source, problems)
    for test_id, ids, where in tags:
        for r in ids:
            if r not in reqs:
                problems.append(f"{where}: {test_id} is tagged with unknown requirement {r}")
    check_doc_references(source, os.path.join("docs", "SECURITY-MODEL.md"), problems)
    tagged = {r for _, ids, _ in tags for r in ids}
    for r in reqs:
        if r not in tagged:
            problems.append(f"requirement {r} has no test: tag one (docs/regulatory.md)")

    if args.check_tags:
        for p in problems:
            print(f"evidence: {p}", file=sys.stderr, flush=True)
        print(f"evidence: {len(reqs)} requirements, {len(tags)} tagged tests, "
              f"{len(problems)} problems")
        return 1 if problems else 0

    results = load_results(build, problems)
    for test_id, _, where in tags:
        res = results.get(test_id)
        if res is None:
            problems.append(f"{test_id} ({where}) did not run: no result in the reports")
        elif res["status"] != "PASS":
            problems.append(f"{test_id} ({where}): {res['status']}"
                            + (" (its report is older than its executable)"
                               if res.get("stale") else ""))
    commit = git(source, "rev-parse", "HEAD") or "unknown"
    dirty = git(source, "status", "--porcelain", "--untracked-files=no")
    meta = {
        "commit": commit,
        "dirty": bool(dirty),
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reports": os.path.relpath(os.path.join(build, "test-reports"), source),
        "tagged_tests": len(tags),
        "results_read": len(results),
    }
    rows = write_outputs(out, reqs, tags, results, problems, meta)
    for p in problems:
        print(f"evidence: {p}", file=sys.stderr, flush=True)
    n_ok = sum(1 for r in rows if r["verdict"] == "PASS")
    print(f"evidence: {os.path.join(out, 'regulatory-matrix.md')}: {n_ok}/{len(rows)} "
          f"requirements shown by passing tests, {len(problems)} problems, commit {commit[:12]}"
          + ("-dirty" if dirty else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
