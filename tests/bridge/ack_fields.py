#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Reads one HL7 v2 acknowledgement with python-hl7 (hl7.parse) and prints its fields.

  ack_fields.py FILE
      prints NAME=VALUE lines (values unescaped as python-hl7 unescapes them) for MSH-3, MSH-5,
      MSH-9, MSH-10, MSH-11, MSH-12, MSA-1, MSA-2 and, when there is an ERR segment, ERR-2,
      ERR-3, ERR-4 and ERR-8 (else the line "ERR="); exit 1 when python-hl7 cannot parse it or a
      required field (MSH-9, MSH-10, MSH-12, MSA-1) is empty.
"""
import sys

import hl7


def field(msg, seg, n):
    try:
        return msg.unescape(str(seg[n]))
    except IndexError:
        return ""


def main():
    with open(sys.argv[1], encoding="utf-8", newline="") as fh:
        text = fh.read()
    try:
        msg = hl7.parse(text)
        msh = msg.segment("MSH")
        msa = msg.segment("MSA")
    except Exception as e:  # python-hl7 raises several kinds; any means "not HL7"
        print(f"parse failed: {e!r}")
        return 1
    out = {f"MSH-{n}": field(msg, msh, n) for n in (3, 5, 9, 10, 11, 12)}
    out["MSA-1"] = field(msg, msa, 1)
    out["MSA-2"] = field(msg, msa, 2)
    try:
        err = msg.segment("ERR")
    except KeyError:
        err = None
    for name, value in out.items():
        print(f"{name}={value}")
    if err is None:
        print("ERR=")
    else:
        for n in (2, 3, 4, 8):
            print(f"ERR-{n}={field(msg, err, n)}")
    for name in ("MSH-9", "MSH-10", "MSH-12", "MSA-1"):
        if not out[name]:
            print(f"{name} is empty")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
