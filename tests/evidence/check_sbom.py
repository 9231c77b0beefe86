#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""check_sbom.py -- check medwire.spdx.json against the fields SPDX 2.3 requires, and against
dpkg: every required package present at the installed version, with its purl.

    check_sbom.py FILE [--require DEBIAN_PACKAGE ...] [--artifact NAME ...] [--self-test]

Standard library only, no network. Exit 0 when the document passes, 1 with one line per
problem otherwise.
"""

import argparse
import functools
import json
import re
import subprocess
import sys

ID_RE = re.compile(r"^SPDXRef-[A-Za-z0-9.\-]+$")
CREATED_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
CREATOR_RE = re.compile(r"^(Tool|Organization|Person): \S")
SUPPLIER_RE = re.compile(r"^(NOASSERTION|(Organization|Person): \S.*)$")
PURL_DEB_RE = re.compile(r"^pkg:deb/debian/([a-z0-9][a-z0-9+.\-]*)@([^?#]+)\?arch=([a-z0-9]+)")
RELATIONSHIP_TYPES = {"DESCRIBES", "DEPENDS_ON", "DYNAMIC_LINK", "STATIC_LINK", "CONTAINS",
                      "BUILD_TOOL_OF", "DEV_DEPENDENCY_OF", "RUNTIME_DEPENDENCY_OF"}
PACKAGE_REQUIRED = ("name", "SPDXID", "downloadLocation")
# Not required by SPDX 2.3 for a package, but an SBOM for a notified body or the FDA is of no use
# without them (NTIA minimum elements: supplier, name, version, unique id, relationships).
PACKAGE_EXPECTED = ("versionInfo", "supplier", "licenseConcluded", "licenseDeclared",
                    "copyrightText", "externalRefs")


@functools.lru_cache(maxsize=None)
def installed_version(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True,
                       text=True, check=False)
    return r.stdout.strip() if r.returncode == 0 else None


def unquote(s):
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), s)


def check(doc, require, artifacts):
    bad = []
    for key, want in (("spdxVersion", "SPDX-2.3"), ("dataLicense", "CC0-1.0"),
                      ("SPDXID", "SPDXRef-DOCUMENT")):
        if doc.get(key) != want:
            bad.append(f"{key} is {doc.get(key)!r}, must be {want!r}")
    if not isinstance(doc.get("name"), str) or not doc["name"]:
        bad.append("document name missing")
    ns = doc.get("documentNamespace", "")
    if not re.match(r"^[a-z][a-z0-9+.\-]*://\S+$", ns) or "#" in ns:
        bad.append(f"documentNamespace {ns!r} is not an absolute URI without '#'")
    ci = doc.get("creationInfo") or {}
    if not CREATED_RE.match(ci.get("created", "")):
        bad.append(f"creationInfo.created {ci.get('created')!r} is not YYYY-MM-DDThh:mm:ssZ")
    creators = ci.get("creators") or []
    if not creators or not all(isinstance(c, str) and CREATOR_RE.match(c) for c in creators):
        bad.append(f"creationInfo.creators {creators!r}: need 'Tool: ', 'Organization: ' or "
                   "'Person: ' entries")

    pkgs = doc.get("packages") or []
    if not pkgs:
        bad.append("no packages")
    ids = {"SPDXRef-DOCUMENT"}
    by_name = {}
    for p in pkgs:
        label = p.get("name", "?")
        for f in PACKAGE_REQUIRED + PACKAGE_EXPECTED:
            if f not in p or p[f] in ("", None, []):
                bad.append(f"package {label}: {f} missing")
        if not ID_RE.match(p.get("SPDXID", "")):
            bad.append(f"package {label}: SPDXID {p.get('SPDXID')!r} is malformed")
        elif p["SPDXID"] in ids:
            bad.append(f"package {label}: SPDXID {p['SPDXID']} is not unique")
        ids.add(p.get("SPDXID"))
        if not SUPPLIER_RE.match(p.get("supplier", "")):
            bad.append(f"package {label}: supplier {p.get('supplier')!r} is malformed")
        if p.get("filesAnalyzed", True) is not False:
            bad.append(f"package {label}: filesAnalyzed must be false (no file list is given)")
        if "packageVerificationCode" in p and p.get("filesAnalyzed") is False:
            bad.append(f"package {label}: packageVerificationCode without files")
        for c in p.get("checksums", []):
            if c.get("algorithm") == "SHA256" and not re.match(r"^[0-9a-f]{64}$",
                                                               c.get("checksumValue", "")):
                bad.append(f"package {label}: malformed SHA256 checksum")
        purls = [r for r in p.get("externalRefs", []) if r.get("referenceType") == "purl"]
        for r in purls:
            if r.get("referenceCategory") not in ("PACKAGE-MANAGER", "PACKAGE_MANAGER"):
                bad.append(f"package {label}: purl reference category "
                           f"{r.get('referenceCategory')!r}")
            if not r.get("referenceLocator", "").startswith("pkg:"):
                bad.append(f"package {label}: purl {r.get('referenceLocator')!r} is malformed")
        by_name[label] = (p, purls)

    rels = doc.get("relationships") or []
    described = set()
    edges = {}
    for r in rels:
        a, t, b = r.get("spdxElementId"), r.get("relationshipType"), r.get("relatedSpdxElement")
        if t not in RELATIONSHIP_TYPES:
            bad.append(f"relationship type {t!r} unexpected")
        if a not in ids or b not in ids:
            bad.append(f"relationship {a} {t} {b} names an element that does not exist")
        if a == "SPDXRef-DOCUMENT" and t == "DESCRIBES":
            described.add(b)
        edges.setdefault(a, set()).add(b)
    if not described:
        bad.append("the document DESCRIBES nothing")
    # Every package is reachable from what the document describes.
    seen, todo = set(), list(described)
    while todo:
        e = todo.pop()
        if e not in seen:
            seen.add(e)
            todo.extend(edges.get(e, ()))
    for p in pkgs:
        if p.get("SPDXID") not in seen:
            bad.append(f"package {p.get('name')} is not reachable from a described element")

    for name in artifacts:
        if name not in by_name:
            bad.append(f"artifact {name} missing")
        elif by_name[name][0]["SPDXID"] not in described:
            bad.append(f"artifact {name} is not DESCRIBED by the document")
    # Every Debian package, required or found, is at the version installed here.
    for name, (p, purls) in by_name.items():
        if name in require:
            continue
        for r in purls:
            m = PURL_DEB_RE.match(r.get("referenceLocator", ""))
            if m:
                want = installed_version(name)
                if want is None or p.get("versionInfo") != want:
                    bad.append(f"package {name}: version {p.get('versionInfo')} but dpkg has "
                               f"{want}")
    for pkg in require:
        if pkg not in by_name:
            bad.append(f"required package {pkg} missing")
            continue
        p, purls = by_name[pkg]
        want = installed_version(pkg)
        if want is None:
            bad.append(f"required package {pkg} is not installed (dpkg-query)")
        elif p.get("versionInfo") != want:
            bad.append(f"package {pkg}: version {p.get('versionInfo')} but dpkg has {want}")
        m = [PURL_DEB_RE.match(r.get("referenceLocator", "")) for r in purls]
        m = [x for x in m if x]
        if not m:
            bad.append(f"package {pkg}: no pkg:deb/debian/NAME@VERSION?arch=ARCH purl")
        elif m[0].group(1) != pkg or (want and unquote(m[0].group(2)) != want.split(":")[-1]):
            bad.append(f"package {pkg}: purl {m[0].group(0)} does not name {pkg}@{want}")
        if not edges_into(rels, p["SPDXID"]):
            bad.append(f"package {pkg}: nothing links it")
    return bad


def edges_into(rels, spdxid):
    return [r for r in rels if r.get("relatedSpdxElement") == spdxid
            and r.get("relationshipType") in ("DYNAMIC_LINK", "STATIC_LINK", "DEPENDS_ON")]


def self_test(doc, require, artifacts):
    """Each mutation of a good document must be caught: the checker is not a no-op."""
    import copy

    def pkg(d, name):
        return next(p for p in d["packages"] if p["name"] == name)

    mutations = {
        "no spdxVersion": lambda d: d.pop("spdxVersion"),
        "SPDX 2.2": lambda d: d.update(spdxVersion="SPDX-2.2"),
        "wrong data licence": lambda d: d.update(dataLicense="MIT"),
        "namespace with #": lambda d: d.update(documentNamespace=d["documentNamespace"] + "#x"),
        "bad creation time": lambda d: d["creationInfo"].update(created="yesterday"),
        "no creators": lambda d: d["creationInfo"].update(creators=[]),
        "duplicate SPDXID": lambda d: d["packages"][1].update(SPDXID=d["packages"][0]["SPDXID"]),
        "dangling relationship": lambda d: d["relationships"].append(
            {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
             "relatedSpdxElement": "SPDXRef-nothing"}),
        "nothing described": lambda d: d.update(relationships=[
            r for r in d["relationships"] if r["relationshipType"] != "DESCRIBES"]),
        "wrong wolfSSL version": lambda d: pkg(d, "libwolfssl35").update(versionInfo="5.5.4"),
        "wolfSSL missing": lambda d: d.update(packages=[
            p for p in d["packages"] if p["name"] != "libwolfssl35"]),
        "no purl": lambda d: pkg(d, "libcoap3").update(externalRefs=[]),
        "no licence": lambda d: pkg(d, "libsqlite3-0").pop("licenseDeclared"),
    }
    bad = []
    for what, mutate in mutations.items():
        d = copy.deepcopy(doc)
        mutate(d)
        if not check(d, require, artifacts):
            bad.append(f"self-test: the checker accepted a document with {what}")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file")
    ap.add_argument("--require", action="append", default=[])
    ap.add_argument("--artifact", action="append", default=[])
    ap.add_argument("--self-test", action="store_true",
                    help="also check that broken variants of the document are refused")
    args = ap.parse_args()
    try:
        with open(args.file, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print(f"check_sbom: {args.file}: {e}", file=sys.stderr)
        return 1
    bad = check(doc, args.require, args.artifact)
    if not bad and args.self_test:
        bad = self_test(doc, args.require, args.artifact)
    for b in bad:
        print(f"check_sbom: {args.file}: {b}", file=sys.stderr)
    if bad:
        return 1
    print(f"check_sbom: {args.file}: SPDX 2.3, {len(doc['packages'])} packages, "
          f"{len(doc['relationships'])} relationships: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
