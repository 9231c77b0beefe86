#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A hospital's MLLP listener for the HL7 tests, built on python-hl7 (hl7.mllp, hl7.parse).

  mllp_peer.py --port-file F --ids F --errors F [--port N]
      listens on 127.0.0.1 (port 0: the system picks; the test restarts it on the port it had),
      writes the port to the port file once listening, parses every message, appends the
      control id of each medwire message in it (each OBR-3; a frame may carry several) to the
      ids file, answers AA, or AE when the message does not parse or lacks
      MSH-9, MSH-12 or an OBX with OBX-3, OBX-4, OBX-11 and OBX-18 (then one line in the
      errors file says why). With --reject-seq SEQ --rejected F it answers AE to the frames
      holding a message whose control id ends in -SEQ, and writes their MSH-10 to F instead. With --fields F it also
      appends, per message accepted, one tab-separated line: its id, then the patient and bed
      as python-hl7 reads them (unescaped components; empty when absent) in the order of
      PATIENT_FIELDS. With --tls-cert F --tls-key F --tls-ca F it serves MLLP over TLS and asks
      every client for a certificate chaining to the CA (--clients F: each one's CN).
  mllp_peer.py --check FILE
      parses one message from FILE the same way and prints its fields; exit 1 if it fails.
"""
import argparse
import asyncio
import os
import ssl
import sys

import hl7
import hl7.mllp


def check(text):
    """The message's control id and fields, or raises ValueError saying what is wrong."""
    msg = hl7.parse(text)
    msh = msg.segment("MSH")
    fields = {
        "MSH-9": str(msh[9]),
        "MSH-10": str(msh[10]),
        "MSH-11": str(msh[11]),
        "MSH-12": str(msh[12]),
        "MSH-21": str(msh[21]) if len(msh) > 21 else "",
    }
    for name in ("MSH-9", "MSH-10", "MSH-12"):
        if not fields[name]:
            raise ValueError(f"{name} is empty")
    obx = msg.segment("OBX")
    for n in (2, 3, 4, 5, 6, 11, 14, 18):
        fields[f"OBX-{n}"] = str(obx[n]) if len(obx) > n else ""
    for n in (3, 4, 11, 18):
        if not fields[f"OBX-{n}"]:
            raise ValueError(f"OBX-{n} is empty")
    obr = msg.segment("OBR")
    fields["OBR-4"] = str(obr[4])
    fields["OBR-7"] = str(obr[7])
    fields["PV1-2"] = str(msg.segment("PV1")[2])
    return fields


# The components of PID and PV1 that carry a device's patient association.
PATIENT_FIELDS = (
    ("PID-3.1", "PID.F3.R1.C1"),  # patient identifier
    ("PID-3.5", "PID.F3.R1.C5"),  # identifier type code
    ("PID-5.1", "PID.F5.R1.C1"),  # family name
    ("PID-5.2", "PID.F5.R1.C2"),  # given name
    ("PV1-2", "PV1.F2"),  # patient class
    ("PV1-3.1", "PV1.F3.R1.C1"),  # point of care
    ("PV1-3.2", "PV1.F3.R1.C2"),  # room
    ("PV1-3.3", "PV1.F3.R1.C3"),  # bed
)


def component(msg, path):
    """One component as python-hl7 reads it, unescaped; "" when the message does not have it."""
    try:
        return str(msg[path])
    except (IndexError, KeyError):
        return ""


def patient(text):
    """The PATIENT_FIELDS of a message, by name."""
    msg = hl7.parse(text)
    return {name: component(msg, path) for name, path in PATIENT_FIELDS}


def message_ids(text):
    """The medwire messages a frame carries: the control id in each OBR-3 (filler order number,
    "ID^MEDWIRE"); a gateway merges several of a device's messages into one ORU^R01, one OBR
    group each. A frame without an OBR counts as one message, named by its MSH-10."""
    msg = hl7.parse(text)
    ids = [str(obr[3]).split("^")[0] for obr in msg.segments("OBR")] if "OBR" in text else []
    return ids or [str(msg.segment("MSH")[10])]


class Rejected(Exception):
    """A message refused on purpose (--reject-seq)."""


def append(path, line):
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


async def serve(args):
    async def on_client(reader, writer):
        cert = writer.get_extra_info("peercert")
        if cert and args.clients:
            subject = dict(x[0] for x in cert.get("subject", ()))
            append(args.clients, subject.get("commonName", ""))
        try:
            while not writer.is_closing():
                block = await reader.readblock()
                text = block.decode("utf-8", "replace")
                try:
                    fields = check(text)
                    ids = message_ids(text)
                    code = "AA"
                    if args.reject_seq and any(i.endswith("-" + args.reject_seq) for i in ids):
                        append(args.rejected, fields["MSH-10"])
                        code = "AE"
                        raise Rejected()
                    # recorded before the answer: a resend after a lost answer shows as a repeat
                    if args.frames:
                        append(args.frames, f"{fields['MSH-10']}\t{len(ids)}")
                    for one in ids:
                        if args.fields:
                            got = patient(text)
                            values = [one] + [got[name] for name, _ in PATIENT_FIELDS]
                            append(args.fields, "\t".join(v.replace("\t", " ") for v in values))
                        append(args.ids, one)
                except Rejected:
                    pass
                except Exception as exc:  # any parse failure is the sender's error
                    code = "AE"
                    append(args.errors, f"{type(exc).__name__}: {exc}: {text!r}")
                try:
                    ack = hl7.parse(text).create_ack(code, application="PEER")
                    answer = str(ack)
                except Exception:
                    answer = "MSH|^~\\&|PEER||||||ACK|0|P|2.6\rMSA|AE|"
                writer.writeblock(answer.encode("utf-8"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    tls = None
    if args.tls_cert:
        # mllps: Python's TLS (OpenSSL) in front of the same listener, asking every client for a
        # certificate that chains to --tls-ca; each client's subject goes to --clients.
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=args.tls_ca)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        tls.verify_mode = ssl.CERT_REQUIRED
    server = await hl7.mllp.start_hl7_server(on_client, "127.0.0.1", args.port, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(f"{port}\n")
    os.replace(tmp, args.port_file)
    print(port, flush=True)
    async with server:
        await server.serve_forever()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--check")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--ids")
    p.add_argument("--errors")
    p.add_argument("--reject-seq", help="answer AE to every message whose MSH-10 ends in -SEQ")
    p.add_argument("--rejected", help="the MSH-10 of each message refused so")
    p.add_argument("--fields", help="MSH-10 and the patient fields of each message accepted")
    p.add_argument("--frames", help="per frame accepted: its MSH-10 and how many messages")
    p.add_argument("--tls-cert", help="serve MLLP over TLS with this PEM certificate (mllps)")
    p.add_argument("--tls-key", help="its PEM key")
    p.add_argument("--tls-ca", help="the CA every client's certificate must chain to")
    p.add_argument("--clients", help="with --tls-cert: the CN of each client, one a connection")
    args = p.parse_args()
    if args.check:
        with open(args.check, encoding="utf-8", newline="") as fh:
            text = fh.read()
        try:
            fields = check(text)
        except Exception as exc:
            print(f"does not parse: {type(exc).__name__}: {exc}")
            return 1
        fields.update(patient(text))
        fields["IDS"] = ",".join(message_ids(text))
        for k, v in fields.items():
            print(f"{k}={v}")
        return 0
    if not (args.port_file and args.ids and args.errors):
        p.error("--port-file, --ids and --errors are needed to serve")
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
