#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""sbom.py -- write an SPDX 2.3 JSON SBOM of medwire's built artifacts and every Debian package
they link, with the versions dpkg says are installed.

Run by the CMake target `sbom` (cmake/sbom.cmake); standard library only, no network.

    sbom.py --out FILE --version V [--commit SHA | --source-dir DIR] [--license EXPR]
            --artifact NAME=PATH[,static=DEP[+DEP...]] ...

Each artifact is a shipped ELF file (libmedwire.so, the programs). Its dynamic dependencies are
read from the file itself (readelf -d: DT_NEEDED), resolved with the loader cache (ldconfig -p)
and followed transitively; each library file is attributed to its Debian package with
`dpkg-query -S`, and the package's version, architecture and source with `dpkg-query -W`.
So a library added to a target_link_libraries() appears here without editing anything.
Static dependencies are invisible in an ELF file, so cmake/sbom.cmake names them: DEP is
another artifact's NAME, or the path of a static library (*.a) that dpkg attributes to a
package (libprotobuf-nanopb.a: libnanopb-dev).

Relationships: the document DESCRIBES each artifact; an artifact or package DYNAMIC_LINKs
the packages whose libraries it needs, and STATIC_LINKs what cmake says it links statically.
Licences: licenseDeclared is the Debian copyright file's licence for "Files: *" (DEP-5),
mapped to an SPDX expression, with a short list of overrides for packages whose copyright file
is not machine-readable; licenseConcluded is NOASSERTION (nobody concluded anything).
"""

import argparse
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import uuid

# Debian DEP-5 short names -> SPDX identifiers (https://spdx.org/licenses/).
DEP5_TO_SPDX = {
    "apache-2.0": "Apache-2.0",
    "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "expat": "MIT",
    "mit": "MIT",
    "zlib": "Zlib",
    "isc": "ISC",
    "gpl-2": "GPL-2.0-only",
    "gpl-2+": "GPL-2.0-or-later",
    "gpl-3": "GPL-3.0-only",
    "gpl-3+": "GPL-3.0-or-later",
    "lgpl-2.1": "LGPL-2.1-only",
    "lgpl-2.1+": "LGPL-2.1-or-later",
    "lgpl-3": "LGPL-3.0-only",
    "lgpl-3+": "LGPL-3.0-or-later",
    "mpl-2.0": "MPL-2.0",
}

# Source packages whose copyright file is not DEP-5, or whose "Files: *" licence has no SPDX
# identifier of its own. Each is the upstream licence of the library code that is linked.
LICENSE_OVERRIDES = {
    "glibc": "LGPL-2.1-or-later",  # GNU C Library (copyright file is free text)
    "sqlite3": "blessing",  # SQLite's public-domain dedication ("The author disclaims...")
    "gcc-12": "GPL-3.0-or-later WITH GCC-exception-3.1",  # libgcc_s
}


def run(cmd):
    return subprocess.run(cmd, check=False, capture_output=True, text=True)


def needed(path):
    """The DT_NEEDED sonames of an ELF file."""
    r = run(["readelf", "-dW", path])
    if r.returncode != 0:
        sys.exit(f"sbom: readelf cannot read {path}: {r.stderr.strip()}")
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", r.stdout)


def loader_cache():
    """soname -> path for this machine's word size, from ldconfig -p."""
    out = {}
    for exe in ("/sbin/ldconfig", "/usr/sbin/ldconfig", "ldconfig"):
        r = run([exe, "-p"])
        if r.returncode == 0:
            break
    else:
        sys.exit("sbom: ldconfig -p failed")
    for line in r.stdout.splitlines():
        m = re.match(r"\s*(\S+) \(([^)]*)\) => (\S+)", line)
        # Prefer the 64-bit entry (x86-64, AArch64, ...) when a multilib system lists several.
        if m and (m.group(1) not in out or "64" in m.group(2)):
            out[m.group(1)] = m.group(3)
    return out


def aliases(path):
    """The names dpkg may know a file by: as given, resolved, and its /usr-merge twin."""
    cands = [path, os.path.realpath(path)]
    for p in list(cands):
        if p.startswith("/usr/lib/"):
            cands.append(p[4:])
        elif p.startswith("/lib/"):
            cands.append("/usr" + p)
    return list(dict.fromkeys(cands))


def owners(paths):
    """{path: package name:arch} for the files, in one dpkg-query call (it is slow to start)."""
    cands = {c: p for p in paths for c in aliases(p)}
    r = run(["dpkg-query", "-S", *cands])  # exits 1 when some alias is unknown: expected
    out = {}
    for line in r.stdout.splitlines():
        pkg, _, f = line.partition(": ")
        f = f.strip()
        if f in cands and "diversion" not in pkg:
            out.setdefault(cands[f], pkg.split(",")[0].strip())
    for p in paths:
        if p not in out:
            sys.exit(f"sbom: no Debian package owns {p}")
    return out


def pkg_infos(keys):
    """{name:arch: info} from one dpkg-query -W call."""
    fmt = ("${binary:Package}\t${Package}\t${Version}\t${Architecture}\t${source:Package}\t"
           "${source:Version}\t${Homepage}\n")
    r = run(["dpkg-query", "-W", "-f", fmt, *keys])
    out = {}
    for line in r.stdout.splitlines():
        key, name, version, arch, src, src_version, homepage = line.split("\t")
        info = {"name": name, "version": version, "arch": arch, "source": src or name,
                "source_version": src_version or version, "homepage": homepage.strip()}
        out[key] = info
        out.setdefault(f"{name}:{arch}", info)
        out.setdefault(name, info)
    for k in keys:
        if k not in out:
            sys.exit(f"sbom: dpkg-query knows no installed package {k}")
    return out


def declared_license(info):
    if info["source"] in LICENSE_OVERRIDES:
        return LICENSE_OVERRIDES[info["source"]]
    path = f"/usr/share/doc/{info['name']}/copyright"
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return "NOASSERTION"
    if not text.startswith("Format:"):
        return "NOASSERTION"
    for para in re.split(r"\n\s*\n", text):
        # Field values: the first line, plus continuation lines for Files (a list of globs).
        # A License field's continuation lines are the licence text, not its name.
        fields = {}
        key = None
        for line in para.splitlines():
            if line[:1] in (" ", "\t"):
                if key == "files":
                    fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, val = line.partition(":")
                key = key.strip().lower()
                fields[key] = val.strip()
        if "*" not in fields.get("files", "").split() or not fields.get("license"):
            continue
        parts = []
        for word in fields["license"].split():
            if word.lower() in ("or", "and"):
                parts.append(word.upper())
                continue
            spdx = DEP5_TO_SPDX.get(word.lower())
            if spdx is None:
                return "NOASSERTION"
            parts.append(spdx)
        return " ".join(parts)
    return "NOASSERTION"


def purl(info):
    """pkg:deb/debian/NAME@VERSION?arch=ARCH (an epoch goes to the epoch qualifier)."""
    version = info["version"]
    quals = [f"arch={info['arch']}"]
    if ":" in version:
        epoch, version = version.split(":", 1)
        quals.append(f"epoch={epoch}")
    enc = re.sub(r"[^A-Za-z0-9.\-_~]", lambda m: "%%%02X" % ord(m.group(0)), version)
    return f"pkg:deb/debian/{info['name']}@{enc}?" + "&".join(quals)


def spdx_id(prefix, name):
    return "SPDXRef-" + prefix + "-" + re.sub(r"[^A-Za-z0-9.\-]", "-", name)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--commit", help="the source's git commit (default: asked of git)")
    ap.add_argument("--source-dir", default=".", help="the git work tree (default: .)")
    ap.add_argument("--license", default="Apache-2.0")
    ap.add_argument("--artifact", action="append", required=True,
                    help="NAME=PATH[,static=DEP+DEP...]")
    args = ap.parse_args()

    artifacts = []
    for a in args.artifact:
        head, _, opts = a.partition(",")
        name, _, path = head.partition("=")
        statics = []
        if opts.startswith("static="):
            statics = [s for s in opts[len("static="):].split("+") if s]
        if not os.path.isfile(path):
            sys.exit(f"sbom: artifact {name}: {path} does not exist (build it first)")
        artifacts.append({"name": name, "path": path, "static": statics})

    if args.commit is None:
        r = run(["git", "-C", args.source_dir, "rev-parse", "HEAD"])
        args.commit = r.stdout.strip() if r.returncode == 0 else "unknown"
        if r.returncode == 0 and run(["git", "-C", args.source_dir, "diff", "--quiet",
                                      "HEAD"]).returncode != 0:
            args.commit += "-dirty"

    # The ELF graph first (readelf and the loader cache are fast), then dpkg twice in all.
    cache = loader_cache()
    edges = []  # (from: artifact name or library path, kind, to: library path or artifact name)
    seen = set()

    def walk(node, elf):
        for soname in needed(elf):
            path = cache.get(soname)
            if path is None:
                sys.exit(f"sbom: {elf} needs {soname}, which the loader cache does not know")
            edges.append((node, "DYNAMIC_LINK", path))
            if path not in seen:
                seen.add(path)
                walk(path, path)

    names = {a["name"] for a in artifacts}
    for a in artifacts:
        walk(a["name"], a["path"])
        for dep in a["static"]:
            edges.append((a["name"], "STATIC_LINK", dep))
    files = sorted({n for e in edges for n in (e[0], e[2]) if n not in names})
    owner = owners(files)
    infos = pkg_infos(sorted(set(owner.values())))
    packages = {}  # name -> info
    for f in files:
        info = infos[owner[f]]
        packages[info["name"]] = info

    art_ids = {a["name"]: spdx_id("Artifact", a["name"]) for a in artifacts}

    def node_id(n):
        if n in art_ids:
            return art_ids[n]
        return spdx_id("Package-deb", infos[owner[n]]["name"])

    rels = set()
    for f, kind, t in edges:
        a, b = node_id(f), node_id(t)
        if a != b:  # a library needing another of its own package
            rels.add((a, kind, b))
    for a in artifacts:
        a["id"] = art_ids[a["name"]]

    dirty = args.commit.endswith("-dirty")
    doc_pkgs = []
    for a in artifacts:
        doc_pkgs.append({
            "name": a["name"],
            "SPDXID": a["id"],
            "versionInfo": args.version,
            "supplier": "NOASSERTION",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "packageFileName": os.path.basename(a["path"]),
            "checksums": [{"algorithm": "SHA256", "checksumValue": sha256(a["path"])}],
            "licenseConcluded": args.license,
            "licenseDeclared": args.license,
            "copyrightText": "NOASSERTION",
            "sourceInfo": f"built from medwire git commit {args.commit}"
                          + (" (with uncommitted changes)" if dirty else ""),
            "primaryPackagePurpose": "LIBRARY" if a["path"].endswith(".so") or ".so." in a["path"]
                                     else "APPLICATION",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": f"pkg:generic/{a['name']}@{args.version}",
            }],
        })
    for name in sorted(packages):
        info = packages[name]
        entry = {
            "name": info["name"],
            "SPDXID": spdx_id("Package-deb", name),
            "versionInfo": info["version"],
            "supplier": "Organization: Debian",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": declared_license(info),
            "copyrightText": "NOASSERTION",
            "sourceInfo": f"Debian source package {info['source']} {info['source_version']}",
            "primaryPackagePurpose": "LIBRARY",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl(info),
            }],
        }
        if info["homepage"]:
            entry["homepage"] = info["homepage"]
        doc_pkgs.append(entry)

    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": a["id"]} for a in artifacts]
    for f, t, to in sorted(rels):
        relationships.append({"spdxElementId": f, "relationshipType": t, "relatedSpdxElement": to})

    # Reproducible: the namespace is derived from the content, the time from SOURCE_DATE_EPOCH.
    digest = hashlib.sha256(json.dumps([doc_pkgs, relationships], sort_keys=True).encode())
    namespace = "https://spdx.org/spdxdocs/medwire-%s-%s" % (
        args.version, uuid.UUID(bytes=digest.digest()[:16]))
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = (datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch
           else datetime.datetime.now(datetime.timezone.utc))
    doc = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"medwire-{args.version}",
        "documentNamespace": namespace,
        "creationInfo": {
            "created": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "creators": ["Tool: medwire-scripts/sbom.py", "Organization: medwire"],
            "comment": "Dependencies as installed on the build machine (dpkg), found from the "
                       "built ELF files' DT_NEEDED entries, transitively.",
        },
        "packages": doc_pkgs,
        "relationships": relationships,
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, args.out)
    print(f"sbom: {args.out}: {len(artifacts)} artifacts, {len(packages)} Debian packages, "
          f"{len(relationships)} relationships")


if __name__ == "__main__":
    main()
