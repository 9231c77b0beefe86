#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A legacy patient monitor for the bridge's tests: python-hl7's MLLP client (Debian's
python3-hl7, hl7.client.MLLPClient) sending ORU^R01 results as an old monitor would, one
message at a time, each sent again until it is answered AA.

  legacy_device.py stream HOST PORT COUNT EXPECTED PROGRESS
      COUNT messages of 1 to 4 OBX each (MDC and LOINC codes, UCUM and MDC units), each OBX
      with a time of its own; every OBX is written to EXPECTED as one JSON line
      {"control_id", "mdc_code", "mantissa", "exponent", "unit", "time_ms"} once its message is
      answered AA; PROGRESS holds the number of messages answered so far. A connection that
      breaks or an answer that does not come within 10 s is retried, reconnecting, for up to
      120 s. Any answer but AA fails the run.
  legacy_device.py bad HOST PORT RESULTS [SECONDS]
      one good message, sent twice (as when its ACK is lost), then the bad ones (not HL7, a
      value that is not a number, an unknown code, an unknown unit, too long, not an ORU), then
      a good one again, then a low-limit alarm (an MDC event OBX, OBX-8 PH); each answer's MSA-1, MSA-2 and ERR-3 go to RESULTS as
      JSON lines {"case", "msa1", "msa2", "err3"}. Each message is tried for up to SECONDS
      (default 30).
  legacy_device.py check EXPECTED OUT SOURCE
      whether the gateway's output OUT (one JSON object per delivered message) holds every OBX
      of EXPECTED exactly once, with its code, value, unit and time, from the legacy device
      SOURCE, and nothing else; prints what differs and exits 1 if anything does.
"""
import json
import os
import socket
import sys
import time

import hl7
import hl7.client

BASE_S = 1796472000  # 2026-12-05T12:00:00Z: each message's time is BASE_S + its number

# (OBX-3, OBX-6, medwire code, UCUM unit, values as (text, mantissa, exponent))
KINDS = [
    ("150456^MDC_PULS_OXIM_SAT_O2^MDC", "262688^MDC_DIM_PERCENT^MDC", 150456, "%",
     [("97", 97, 0), ("95.5", 955, -1)]),
    ("149530^MDC_PULS_OXIM_PULS_RATE^MDC", "/min^/min^UCUM", 149530, "/min",
     [("72", 72, 0), ("68", 68, 0)]),
    ("8310-5^Body temperature^LN", "Cel^Cel^UCUM", 150364, "Cel",
     [("36.6", 366, -1), ("37.25", 3725, -2)]),
    ("9279-1^Respiratory rate^LN", "/min^/min^UCUM", 151562, "/min",
     [("16", 16, 0), ("18", 18, 0)]),
]


def dtm(t_s):
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(t_s)) + "+0000"


def message(i, obx_list, control_id=None):
    cid = control_id or "MSG%06d" % i
    t = dtm(BASE_S + i)
    segs = [
        "MSH|^~\\&|ACME-MON^ACME|ICU4|MEDWIRE|HOSP|%s||ORU^R01^ORU_R01|%s|P|2.6|||AL|NE" % (t, cid),
        "PID|||4711^^^HOSP^MR||Doe^Jane",
        "OBR|1|%s^ACME|%s^ACME|182777000^monitoring of patient^SNOMED-CT|||%s" % (cid, cid, t),
    ]
    for k, (code, unit, value) in enumerate(obx_list, 1):
        segs.append("OBX|%d|NM|%s|1.1.1.%d|%s|%s|||||F|||%s||||BED7-MON^ACME^0123456789ABCDEF^EUI-64"
                    % (k, code, k, value, unit, t))
    return "\r".join(segs) + "\r", cid


def msa(ack):
    parsed = hl7.parse(ack.decode("utf-8").strip("\x0b\x1c\r\n"))
    m = parsed.segment("MSA")
    err3 = ""
    try:
        err3 = str(parsed.segment("ERR")[3])
    except KeyError:
        pass
    return str(m[1]), str(m[2]), err3


class Link:
    """One MLLP connection that is made again whenever it breaks."""

    def __init__(self, host, port):
        self.host, self.port, self.client = host, port, None

    def send(self, text, deadline):
        while True:
            try:
                if self.client is None:
                    self.client = hl7.client.MLLPClient(self.host, self.port)
                    self.client.socket.settimeout(10)
                ack = self.client.send_message(text)
                if not ack:
                    raise ConnectionError("connection closed")
                while not ack.endswith(b"\x1c\r"):  # the rest of a split answer
                    more = self.client.socket.recv(4096)
                    if not more:
                        raise ConnectionError("connection closed")
                    ack += more
                return ack
            except (OSError, ConnectionError):
                if self.client is not None:
                    try:
                        self.client.close()
                    except OSError:
                        pass
                    self.client = None
                if time.time() > deadline:
                    raise
                time.sleep(0.1)


def stream(host, port, count, expected_path, progress_path):
    link = Link(host, int(port))
    with open(expected_path, "w") as expected:
        for i in range(1, int(count) + 1):
            n = 1 + i % 4
            obx, rows = [], []
            for k in range(n):
                code, unit, mdc, ucum, values = KINDS[(i + k) % len(KINDS)]
                text, mant, exp = values[i % 2]
                obx.append((code, unit, text))
                rows.append({"mdc_code": mdc, "mantissa": mant, "exponent": exp, "unit": ucum,
                             "time_ms": (BASE_S + i) * 1000})
            text, cid = message(i, obx)
            ack = link.send(text, time.time() + 120)
            code, ctl, _ = msa(ack)
            if code != "AA" or ctl != cid:
                sys.exit("message %s answered %s for %s" % (cid, code, ctl))
            for r in rows:
                r["control_id"] = cid
                expected.write(json.dumps(r) + "\n")
            expected.flush()
            with open(progress_path + ".tmp", "w") as p:
                p.write("%d\n" % i)
            os.replace(progress_path + ".tmp", progress_path)


def bad(host, port, results_path, seconds="30"):
    good, _ = message(1, [KINDS[0][:2] + ("97",)])
    cases = [
        ("good", good.encode()),
        ("repeat", good.encode()),
        ("not-hl7", b"hello, this is not HL7"),
        ("not-a-number", message(2, [KINDS[0][:2] + ("9x7",)])[0].encode()),
        ("unknown-code", message(3, [("99999-9^Mystery^LN", "%^%^UCUM", "1")])[0].encode()),
        ("unknown-unit", message(4, [(KINDS[0][0], "999999^MDC_DIM_NONE_SUCH^MDC", "1")])[0].encode()),
        ("too-long", message(5, [KINDS[0][:2] + ("97",)] * 60)[0].encode()),
        ("not-oru", message(6, [KINDS[0][:2] + ("97",)])[0].replace("ORU^R01^ORU_R01", "ADT^A01^ADT_A01").encode()),
        ("good-again", message(7, [KINDS[1][:2] + ("72",)])[0].encode()),
        ("alarm", message(8, [("196670^MDC_EVT_LO^MDC", "", "SpO2 low")])[0]
         .replace("|||||F|", "||PH|||F|").replace("|NM|196670", "|ST|196670").encode()),
    ]
    link = Link(host, int(port))
    with open(results_path, "w") as out:
        for name, data in cases:
            ack = link.send(data, time.time() + float(seconds))
            code, ctl, err3 = msa(ack)
            out.write(json.dumps({"case": name, "msa1": code, "msa2": ctl, "err3": err3}) + "\n")


def check(expected_path, out_path, source):
    want = {}
    with open(expected_path) as f:
        for line in f:
            r = json.loads(line)
            want[(r["time_ms"], r["mdc_code"])] = r
    seen, problems = {}, []
    with open(out_path) as f:
        for line in f:
            m = json.loads(line)
            if m.get("type") != "observation":
                continue
            k = (m["time_ms"], m["mdc_code"])
            seen[k] = seen.get(k, 0) + 1
            w = want.get(k)
            if w is None:
                problems.append("not sent: %s" % line.strip())
            elif (m["mantissa"], m["exponent"], m["unit"]) != (w["mantissa"], w["exponent"], w["unit"]):
                problems.append("changed: %s, sent %s" % (line.strip(), w))
            elif m.get("source") != source:
                problems.append("source %r, not %r: %s" % (m.get("source"), source, line.strip()))
    for k, r in want.items():
        if seen.get(k, 0) != 1:
            problems.append("%s OBX %s delivered %d times" % (r["control_id"], r["mdc_code"], seen.get(k, 0)))
    print("%d OBX sent, %d delivered, %d problems" % (len(want), sum(seen.values()), len(problems)))
    for p in problems[:20]:
        print(p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    socket.setdefaulttimeout(10)
    if sys.argv[1] == "stream":
        stream(*sys.argv[2:7])
    elif sys.argv[1] == "check":
        check(*sys.argv[2:5])
    elif sys.argv[1] == "bad":
        bad(*sys.argv[2:6])
    else:
        sys.exit(__doc__)
