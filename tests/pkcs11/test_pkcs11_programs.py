#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""test_pkcs11_programs.py -- a device whose key lives in a SoftHSM2 token, end to end with the
real programs: the key is generated in the token (sensitive, never extractable), medwire-pki
makes a request signed in the token and a CA answers it, and medwire-device delivers
observations to a real medwire-gateway with the key given as an RFC 7512 URI. A wrong PIN, a
missing object and a certificate for another key are refused at start, in sentences that never
hold the PIN; the token tool cannot read the key out.

The token, its PINs and every credential are made here, in a temporary folder, and deleted.
Exit 0 passed, 1 failed, 77 skipped (softhsm2 or pkcs11-tool missing: scripts/deps.sh installs
them).

Usage: test_pkcs11_programs.py BIN_DIR
"""
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

MODULES = ["/usr/lib/softhsm/libsofthsm2.so",
           "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
           "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"]
TOKEN = "medwire-test"
STEP_S = 30  # no single program may run longer than this


class Failed(Exception):
    pass


def run(argv, env, timeout=STEP_S):
    """Runs a program to its end (bounded in time); returns (exit code, stdout + stderr)."""
    try:
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Failed(f"{os.path.basename(argv[0])} did not finish in {timeout} s: {argv[1:]}")
    return r.returncode, r.stdout + r.stderr


def must(argv, env, timeout=STEP_S):
    code, out = run(argv, env, timeout)
    if code != 0:
        raise Failed(f"{' '.join(argv)} exited {code}:\n{out}")
    return out


def main():
    bindir = sys.argv[1]
    module = next((m for m in MODULES if os.path.exists(m)), None)
    softhsm, p11tool = shutil.which("softhsm2-util"), shutil.which("pkcs11-tool")
    if module is None or softhsm is None or p11tool is None:
        print("SKIP: softhsm2 (libsofthsm2.so, softhsm2-util) and opensc (pkcs11-tool) are "
              "needed; scripts/deps.sh installs them")
        return 77
    pki, gateway, device = (os.path.join(bindir, p) for p in
                            ("medwire-pki", "medwire-gateway", "medwire-device"))
    # PINs of this run only: a token made here, deleted at the end.
    pin = str(secrets.randbelow(10**8)).zfill(8)
    so_pin = str(secrets.randbelow(10**8)).zfill(8)
    wrong_pin = str((int(pin) + 1) % 10**8).zfill(8)
    with tempfile.TemporaryDirectory(prefix="mw-pkcs11-") as tmp:
        os.makedirs(os.path.join(tmp, "tokens"))
        conf = os.path.join(tmp, "softhsm2.conf")
        with open(conf, "w") as f:
            f.write(f"directories.tokendir = {tmp}/tokens\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
        env = dict(os.environ, SOFTHSM2_CONF=conf)
        gateways = []
        try:
            scenario(tmp, env, module, softhsm, p11tool, pki, gateway, device, pin, so_pin,
                     wrong_pin, gateways)
        except Failed as e:
            print(f"FAIL: {e}")
            return 1
        finally:
            for gw in gateways:
                gw.terminate()
                try:
                    gw.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    gw.kill()
                    gw.wait()
    return 0


def refused_value(module, conf_env, pin, label):
    """Asks the token itself, through PKCS#11, for the private key's value (CKA_VALUE): it must
    answer CKR_ATTRIBUTE_SENSITIVE, and the key must say CKA_SENSITIVE and not CKA_EXTRACTABLE.
    Run in a child process: the module reads SOFTHSM2_CONF once, and C_Finalize must not be
    missed if a check fails."""
    code = _VALUE_CHECK.format(module=module, pin=pin, label=label)
    r = subprocess.run([sys.executable, "-c", code], env=conf_env, capture_output=True,
                       text=True, timeout=STEP_S, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise Failed(f"the token gave out the private key, or could not be asked:\n"
                     f"{r.stdout}{r.stderr}")


# The direct PKCS#11 calls of refused_value (the module exports its C_ functions).
_VALUE_CHECK = """
import ctypes, sys
U = ctypes.c_ulong
class Attr(ctypes.Structure):
    _fields_ = [("type", U), ("value", ctypes.c_void_p), ("len", U)]
lib = ctypes.CDLL({module!r})
assert lib.C_Initialize(None) == 0
n = U(0)
assert lib.C_GetSlotList(1, None, ctypes.byref(n)) == 0
slots = (U * n.value)()
assert lib.C_GetSlotList(1, slots, ctypes.byref(n)) == 0
pin, label = {pin!r}.encode(), {label!r}
for slot in slots:
    h = U(0)
    if lib.C_OpenSession(slot, 4, None, None, ctypes.byref(h)) != 0:
        continue
    if lib.C_Login(h, 1, pin, U(len(pin))) != 0:
        lib.C_CloseSession(h)
        continue
    cls = U(3)
    find = (Attr * 2)(Attr(0, ctypes.cast(ctypes.byref(cls), ctypes.c_void_p), ctypes.sizeof(cls)),
                      Attr(3, ctypes.cast(ctypes.c_char_p(label), ctypes.c_void_p), len(label)))
    obj, count = U(0), U(0)
    assert lib.C_FindObjectsInit(h, find, 2) == 0
    assert lib.C_FindObjects(h, ctypes.byref(obj), 1, ctypes.byref(count)) == 0
    lib.C_FindObjectsFinal(h)
    assert count.value == 1, "no private key object"
    buf = ctypes.create_string_buffer(256)
    value = (Attr * 1)(Attr(0x11, ctypes.cast(buf, ctypes.c_void_p), 256))
    rv = lib.C_GetAttributeValue(h, obj, value, 1)
    if rv != 0x11:
        print("C_GetAttributeValue(CKA_VALUE) returned 0x%x, length %d" % (rv, value[0].len))
        sys.exit(1)
    flags = (ctypes.c_ubyte * 2)()
    attrs = (Attr * 2)(Attr(0x103, ctypes.cast(ctypes.byref(flags, 0), ctypes.c_void_p), 1),
                       Attr(0x162, ctypes.cast(ctypes.byref(flags, 1), ctypes.c_void_p), 1))
    assert lib.C_GetAttributeValue(h, obj, attrs, 2) == 0
    if flags[0] != 1 or flags[1] != 0:
        print("CKA_SENSITIVE %d, CKA_EXTRACTABLE %d" % (flags[0], flags[1]))
        sys.exit(1)
    lib.C_Logout(h)
    lib.C_CloseSession(h)
    lib.C_Finalize(None)
    sys.exit(0)
print("no token accepted the PIN")
sys.exit(1)
"""


def tool(p11tool, module, *args):
    return [p11tool, "--module", module, "--token-label", TOKEN, *args]


def scenario(tmp, env, module, softhsm, p11tool, pki, gateway, device, pin, so_pin, wrong_pin,
             gateways):
    path = lambda *p: os.path.join(tmp, *p)  # noqa: E731
    must([softhsm, "--init-token", "--free", "--label", TOKEN, "--so-pin", so_pin, "--pin", pin],
         env)
    # The key pair is made inside the token; pkcs11-tool marks the private key sensitive and
    # not extractable, which the listing shows and reading it out must confirm.
    must(tool(p11tool, module, "--login", "--pin", pin, "--keypairgen", "--key-type",
              "EC:prime256v1", "--label", "dev1", "--id", "01", "--usage-sign", "--sensitive"), env)
    listing = must(tool(p11tool, module, "--login", "--pin", pin, "--list-objects",
                        "--type", "privkey"), env)
    if "never extractable" not in listing or "sensitive" not in listing:
        raise Failed(f"the private key is not sensitive and non-extractable:\n{listing}")
    code, out = run(tool(p11tool, module, "--login", "--pin", pin, "--read-object", "--type",
                         "privkey", "--label", "dev1", "--output-file", path("stolen.der")), env)
    if os.path.exists(path("stolen.der")) and os.path.getsize(path("stolen.der")) > 0:
        raise Failed(f"pkcs11-tool read the private key out of the token:\n{out}")
    refused_value(module, conf_env=env, pin=pin, label=b"dev1")
    print("the key was generated in the token and cannot be read out of it")

    pin_file = path("pin")
    fd = os.open(pin_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (pin + "\n").encode())
    os.close(fd)
    uri = f"pkcs11:token={TOKEN};object=dev1?module-path={module}&pin-source={pin_file}"

    must([pki, "ca", "--out", path("ca")], env)
    must([pki, "issue", "--ca", path("ca"), "--role", "gateway", "--id", "gateway", "--out",
          tmp], env)
    must([pki, "issue", "--ca", path("ca"), "--role", "device", "--id", "other", "--out", tmp],
         env)
    out = must([pki, "csr", "--key", uri, "--id", "dev1", "--out", path("dev1.csr")], env)
    if "signed in the token" not in out:
        raise Failed(f"csr did not say it signed in the token: {out}")
    must([pki, "issue", "--ca", path("ca"), "--role", "device", "--csr", path("dev1.csr"),
          "--out", tmp], env)
    if os.path.exists(path("dev1.key")):
        raise Failed("issue --csr wrote a key file")
    print("the request was signed in the token and the CA issued dev1.crt for it")

    gw, addr, out_file = start_gateway(tmp, env, gateway, "gateway", path("gateway.key"))
    gateways.append(gw)

    def dev(key, cert="dev1.crt", count="6", to=addr, name="gateway"):
        return run([device, "--gateway", to, "--gateway-name", name, "--ca",
                    path("ca", "ca.crt"), "--cert", path(cert), "--key", key, "--count", count,
                    "--give-up-s", "15"], env)

    # By label with a PIN file, then by id with the PIN in the URI: 6 + 2 observations.
    code, out = dev(uri)
    if code != 0:
        raise Failed(f"the device with its key in the token failed ({code}):\n{out}")
    by_id = f"pkcs11:token={TOKEN};id=%01?module-path={module}&pin-value={pin}"
    code, out2 = dev(by_id, count="2")
    if code != 0:
        raise Failed(f"the device naming its key by id failed ({code}):\n{out2}")
    want = 8
    got = count_observations(out_file, "dev1", want)
    if got != want:
        raise Failed(f"the gateway wrote {got} observations from dev1, not {want}")
    print(f"the gateway received {want} observations from dev1, whose key never left the token")

    refusals = [
        (f"pkcs11:token={TOKEN};object=dev1?module-path={module}&pin-value={wrong_pin}",
         "dev1.crt", "the PIN is wrong"),
        (f"pkcs11:token={TOKEN};object=nokey?module-path={module}&pin-source={pin_file}",
         "dev1.crt", "the token has no such private key"),
        (uri, "other.crt", "does not match the certificate"),
        (f"pkcs11:token=absent;object=dev1?module-path={module}&pin-source={pin_file}",
         "dev1.crt", "no token labelled 'absent'"),
    ]
    for key, cert, words in refusals:
        started = time.monotonic()
        code, out = dev(key, cert, "1")
        if code == 0 or words not in out:
            raise Failed(f"with {cert} and {key.split('?')[0]}: exit {code}, not refused with "
                         f"'{words}':\n{out}")
        if time.monotonic() - started > 10:
            raise Failed(f"refusing '{words}' took more than 10 s: it must happen at start")
        for secret in (pin, wrong_pin, so_pin):
            if secret in out:
                raise Failed(f"a PIN appears in the device's message:\n{out}")
        print(f"refused at start: {out.strip().splitlines()[-1]}")
    for secret in (pin, so_pin):
        if secret in out + out2:
            raise Failed("a PIN appears in the device's output")

    # Renewal with the key in the token: the new key is made in the token, its request signed
    # there, sent over dev1's session (EST) by medwire-device, and the certificate the gateway
    # issues opens a session with the new token key.
    gw3, addr3, out3_file = start_gateway(tmp, env, gateway, "gateway", path("gateway.key"),
                                          ("--est-ca", path("ca")), "gateway-est")
    gateways.append(gw3)
    must(tool(p11tool, module, "--login", "--pin", pin, "--keypairgen", "--key-type",
              "EC:prime256v1", "--label", "dev1-next", "--id", "03", "--usage-sign",
              "--sensitive"), env)
    uri_next = f"pkcs11:token={TOKEN};object=dev1-next?module-path={module}&pin-source={pin_file}"
    must([pki, "csr", "--key", uri_next, "--id", "dev1", "--out", path("dev1-next.csr")], env)
    must(["openssl", "req", "-verify", "-noout", "-in", path("dev1-next.csr")], env)
    code, out = run([device, "--gateway", addr3, "--gateway-name", "gateway", "--ca",
                     path("ca", "ca.crt"), "--cert", path("dev1.crt"), "--key", uri, "--count",
                     "1", "--give-up-s", "15", "--renew-csr", path("dev1-next.csr"),
                     "--renew-cert", path("dev1-next.crt")], env)
    if code != 0 or not os.path.exists(path("dev1-next.crt")):
        raise Failed(f"the renewal over the session with token keys failed ({code}):\n{out}")
    must(["openssl", "verify", "-CAfile", path("ca", "ca.crt"), "-purpose", "sslclient",
          path("dev1-next.crt")], env)
    code, out = dev(uri_next, "dev1-next.crt", "2", addr3)
    if code != 0 or count_observations(out3_file, "dev1", 3) != 3:
        raise Failed(f"the renewed certificate with the new token key did not deliver:\n{out}")
    code, out = dev(uri, "dev1-next.crt", "1", addr3)
    if code == 0 or "does not match the certificate" not in out:
        raise Failed(f"the renewed certificate is not bound to the new key alone:\n{out}")
    refused_value(module, conf_env=env, pin=pin, label=b"dev1-next")
    print("dev1 renewed over its session with a new key made in the token, and delivered with it")

    # A gateway's key can live in a token too: its own pair, request and certificate; here with
    # the PIN in the URI, which its log must not show, at start or when SIGHUP reloads it.
    uri_gw = f"pkcs11:token={TOKEN};object=gw1?module-path={module}&pin-value={pin}"
    must(tool(p11tool, module, "--login", "--pin", pin, "--keypairgen", "--key-type",
              "EC:prime256v1", "--label", "gw1", "--id", "02", "--usage-sign", "--sensitive"), env)
    must([pki, "csr", "--key", uri_gw, "--id", "gw1", "--out", path("gw1.csr")], env)
    must([pki, "issue", "--ca", path("ca"), "--role", "gateway", "--csr", path("gw1.csr"),
          "--out", tmp], env)
    gw2, addr2, out2_file = start_gateway(tmp, env, gateway, "gw1", uri_gw)
    gateways.append(gw2)
    code, out = dev(path("other.key"), "other.crt", "3", addr2, "gw1")
    if code != 0:
        raise Failed(f"a device could not deliver to a gateway whose key is in the token:\n{out}")
    if count_observations(out2_file, "other", 3) != 3:
        raise Failed("the gateway with its key in the token did not write the 3 observations")
    gw2.send_signal(signal.SIGHUP)  # a second context on the token while the first lives
    deadline = time.monotonic() + 10
    err_path = path("gw1.err")
    while "credentials_reloaded" not in open(err_path).read():
        if time.monotonic() > deadline:
            raise Failed(f"gw1 did not reload its credentials:\n{open(err_path).read()}")
        time.sleep(0.05)
    code, out = dev(path("other.key"), "other.crt", "2", addr2, "gw1")
    if code != 0 or count_observations(out2_file, "other", 5) != 5:
        raise Failed(f"after reloading its token key the gateway did not serve the device:\n{out}")
    log = open(err_path).read()
    if pin in log:
        raise Failed(f"the gateway's log shows the PIN:\n{log}")
    print("a gateway whose key is in the token received 5 observations, before and after SIGHUP")


def count_observations(out_file, device, want):
    """Observations from @device in the gateway's output, waiting up to 10 s for @want."""
    lines = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(out_file) as f:
            lines = [l for l in f if f'"device":"{device}"' in l and '"type":"observation"' in l]
        if len(lines) >= want:
            break
        time.sleep(0.1)
    return len(lines)


def start_gateway(tmp, env, gateway, name, key, extra=(), tag=None):
    """Starts medwire-gateway NAME with @key and the options @extra, its files named by @tag (or
    NAME); returns (process, "127.0.0.1:PORT", output file)."""
    tag = tag or name
    port_file, out_file = (os.path.join(tmp, f"{tag}.{x}") for x in ("port", "jsonl"))
    err_path = os.path.join(tmp, f"{tag}.err")
    with open(err_path, "w") as err:
        gw = subprocess.Popen([gateway, "--listen", "127.0.0.1:0", "--ca",
                               os.path.join(tmp, "ca", "ca.crt"), "--cert",
                               os.path.join(tmp, f"{name}.crt"), "--key", key, "--out", out_file,
                               "--store", os.path.join(tmp, f"{tag}.db"), "--port-file",
                               port_file, *extra], env=env, stdout=err, stderr=err,
                              stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not (os.path.exists(port_file) and os.path.getsize(port_file)):
        if time.monotonic() > deadline or gw.poll() is not None:
            gw.kill()
            gw.wait()
            with open(err_path) as f:
                raise Failed(f"gateway {name} did not start:\n{f.read()}")
        time.sleep(0.05)
    with open(port_file) as f:
        return gw, f"127.0.0.1:{f.read().strip()}", out_file


if __name__ == "__main__":
    sys.exit(main())
