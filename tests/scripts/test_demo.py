#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""test_demo.py -- scripts/demo.sh with the programs of this build: it shows a low-SpO2 alarm
from each of its three devices and leaves nothing behind, neither in the repository (the
gateway's store) nor in the temporary folder it works in.

Usage: test_demo.py SOURCE_DIR BIN_DIR
"""
import os
import subprocess
import sys
import tempfile


def main():
    src, bindir = sys.argv[1], sys.argv[2]
    stray = os.path.join(src, "medwire-gateway.db")
    before = os.stat(stray).st_mtime_ns if os.path.exists(stray) else None
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, MW_DEMO_BIN=bindir, TMPDIR=tmp)
        r = subprocess.run(["bash", os.path.join(src, "scripts", "demo.sh")], env=env,
                           capture_output=True, text=True, timeout=120)
        left = os.listdir(tmp)
    problems = []
    if r.returncode != 0:
        problems.append(f"demo.sh exited {r.returncode}")
    alarms = [l for l in r.stdout.splitlines() if '"type":"alarm"' in l]
    devices = {d for d in ("pulseox-1", "pulseox-2", "pulseox-3")
               for l in alarms if f'"device":"{d}"' in l and '"text":"SpO2 low: 88 %"' in l}
    if len(devices) != 3:
        problems.append(f"expected a low-SpO2 alarm from each of 3 devices, got {sorted(devices)}")
    after = os.stat(stray).st_mtime_ns if os.path.exists(stray) else None
    if after != before:
        problems.append(f"demo.sh wrote {stray}")
    if left:
        problems.append(f"demo.sh left {left} in its temporary folder")
    if problems:
        print("\n".join(problems))
        print(f"--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}")
        return 1
    print(f"demo: {len(alarms)} alarms shown, nothing left behind")
    return 0


if __name__ == "__main__":
    sys.exit(main())
