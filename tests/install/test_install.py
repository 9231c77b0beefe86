#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""test_install.py -- the installed SDK is usable from another project: `cmake --install` of
this build into a temporary prefix, then tests/install/consumer (a device program) built from
that prefix alone, with find_package(medwire) (shared and static) and with pkg-config, and each
build run against the installed medwire-gateway with credentials made now by the installed
medwire-pki. The gateway must have written the three observations of every run.

Usage: test_install.py --cmake CMAKE --cc CC --build BUILD_DIR --source SOURCE_DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

DEADLINE_S = 60  # each build or run step
RUNS = ("cmake", "cmake-static", "pkg-config")


class Failure(Exception):
    pass


def run(cmd, env=None, cwd=None, what=None):
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=DEADLINE_S)
    if r.returncode != 0:
        raise Failure(f"{what or cmd[0]} failed (exit {r.returncode}): {' '.join(cmd)}\n"
                      f"--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}")
    return r.stdout


def check_layout(prefix, libdir):
    """What the package promises to put where."""
    want = ["include/medwire/medwire.h", "include/medwire/client.h", "include/medwire/gateway.h",
            f"{libdir}/libmedwire.a", f"{libdir}/libmedwire.so", f"{libdir}/libmedwire-posix.a",
            f"{libdir}/libmedwire-gateway.a", f"{libdir}/libmedwire-gateway.so",
            f"{libdir}/cmake/medwire/medwireConfig.cmake",
            f"{libdir}/cmake/medwire/medwireConfigVersion.cmake",
            f"{libdir}/pkgconfig/medwire.pc", f"{libdir}/pkgconfig/medwire-gateway.pc",
            "bin/medwire-gateway", "bin/medwire-device", "bin/medwire-pki"]
    missing = [w for w in want if not os.path.exists(os.path.join(prefix, w))]
    if missing:
        raise Failure(f"not installed: {', '.join(missing)}")
    # Every public header of the source tree is installed.
    src_headers = sorted(os.listdir(os.path.join(ARGS.source, "include", "medwire")))
    inst_headers = sorted(os.listdir(os.path.join(prefix, "include", "medwire")))
    if src_headers != inst_headers:
        raise Failure(f"installed headers {inst_headers} differ from include/medwire {src_headers}")


def build_consumers(prefix, libdir, work):
    """The consumer three ways; returns {run name: (executable, extra environment)}."""
    src = os.path.join(ARGS.source, "tests", "install", "consumer")
    env = dict(os.environ, CC=ARGS.cc)
    env.pop("CMAKE_PREFIX_PATH", None)
    bdir = os.path.join(work, "consumer-cmake")
    # No package registry: only the prefix may provide medwire.
    run([ARGS.cmake, "-S", src, "-B", bdir, f"-DCMAKE_PREFIX_PATH={prefix}",
         "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF", "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
        env=env, what="configuring the consumer with find_package(medwire)")
    run([ARGS.cmake, "--build", bdir], env=env, what="building the consumer with CMake")

    pc_env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, libdir, "pkgconfig"))
    flags = run(["pkg-config", "--cflags", "--libs", "medwire"], env=pc_env,
                what="pkg-config --cflags --libs medwire").split()
    if any(ARGS.source in f or ARGS.build in f for f in flags):
        raise Failure(f"pkg-config flags point into the source or build tree: {flags}")
    exe_pc = os.path.join(work, "consumer-pc")
    run([ARGS.cc, "-Wall", "-Wextra", "-Werror", os.path.join(src, "main.c"), "-o", exe_pc]
        + flags, env=pc_env, what="cc main.c $(pkg-config --cflags --libs medwire)")
    # A plain cc link has no run path: the loader is told where the prefix's libraries are.
    return {
        "cmake": (os.path.join(bdir, "consumer"), {}),
        "cmake-static": (os.path.join(bdir, "consumer_static"), {}),
        "pkg-config": (exe_pc, {"LD_LIBRARY_PATH": os.path.join(prefix, libdir)}),
    }


def wait_port(path, deadline):
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                port = f.read().strip()
            if port:
                return port
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise Failure("medwire-gateway did not write its port file within 10 s")


def observations(out_file, device):
    """The mantissas of the observations the gateway wrote for DEVICE."""
    found = []
    with open(out_file) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            m = json.loads(line)
            if m.get("device") == device and m.get("type") == "observation":
                found.append(m.get("mantissa"))
    return sorted(found)


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--cmake", required=True)
    ap.add_argument("--cc", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--libdir", default="lib")
    ARGS = ap.parse_args()
    ARGS.build = os.path.realpath(ARGS.build)
    ARGS.source = os.path.realpath(ARGS.source)

    work = tempfile.mkdtemp(prefix="medwire-install.")
    gw = None
    try:
        prefix = os.path.join(work, "prefix")
        run([ARGS.cmake, "--install", ARGS.build, "--prefix", prefix], what="cmake --install")
        check_layout(prefix, ARGS.libdir)
        exes = build_consumers(prefix, ARGS.libdir, work)

        bindir = os.path.join(prefix, "bin")
        pki = os.path.join(work, "pki")
        run([os.path.join(bindir, "medwire-pki"), "ca", "--out", os.path.join(pki, "ca")])
        run([os.path.join(bindir, "medwire-pki"), "issue", "--ca", os.path.join(pki, "ca"),
             "--role", "gateway", "--id", "gateway", "--out", pki])
        for name in RUNS:
            run([os.path.join(bindir, "medwire-pki"), "issue", "--ca", os.path.join(pki, "ca"),
                 "--role", "device", "--id", f"consumer-{name}", "--out", pki])

        out_file = os.path.join(work, "messages.jsonl")
        port_file = os.path.join(work, "port")
        gw_err = open(os.path.join(work, "gateway.err"), "w")
        gw = subprocess.Popen(
            [os.path.join(bindir, "medwire-gateway"), "--listen", "127.0.0.1:0",
             "--ca", os.path.join(pki, "ca", "ca.crt"), "--cert", os.path.join(pki, "gateway.crt"),
             "--key", os.path.join(pki, "gateway.key"), "--out", out_file,
             "--store", os.path.join(work, "gateway.db"), "--port-file", port_file],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=gw_err)
        port = wait_port(port_file, time.monotonic() + 10)

        for name in RUNS:
            exe, extra = exes[name]
            dev = f"consumer-{name}"
            env = dict(os.environ, **extra)
            print(run([exe, f"127.0.0.1:{port}", os.path.join(pki, "ca", "ca.crt"),
                       os.path.join(pki, f"{dev}.crt"), os.path.join(pki, f"{dev}.key")],
                      env=env, what=f"the {name} consumer").strip(), f"({name})")
        # The gateway writes what it acknowledged before it acknowledges it.
        problems = []
        for name in RUNS:
            got = observations(out_file, f"consumer-{name}")
            if got != [95, 96, 97]:
                problems.append(f"{name}: the gateway wrote observations {got}, not [95, 96, 97]")
        if problems:
            raise Failure("\n".join(problems))
        print(f"install: {len(RUNS)} consumers built from {prefix} delivered 3 observations each")
        return 0
    except (Failure, subprocess.TimeoutExpired) as e:
        print(f"FAIL: {e}", file=sys.stderr)
        err = os.path.join(work, "gateway.err")
        if os.path.exists(err):
            with open(err) as f:
                print(f"--- medwire-gateway stderr\n{f.read()}", file=sys.stderr)
        return 1
    finally:
        if gw is not None:
            gw.terminate()
            try:
                gw.wait(timeout=10)
            except subprocess.TimeoutExpired:
                gw.kill()
                gw.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
