/* SPDX-License-Identifier: Apache-2.0 */
/* medwire-pki.c -- make the CA, device and gateway certificates of medwire's certificate profile.
 */

/*
 * The command line: 'ca', 'issue', 'revoke' and 'crl', their options and their help. What
 * they make is described where it is made: the certificate profile of protocol v1 (this
 * program is its reference) in cert.c, the CRL profile in crl.c, and the state a CA
 * directory keeps in ca_index.c.
 */

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/version.h>
#include <wolfssl/wolfcrypt/settings.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/wc_port.h>

#include "core/wipe.h"

#include "ca_index.h"
#include "cert.h"
#include "civil_time.h"
#include "crl.h"
#include "crl_reason.h"
#include "csr.h"
#include "diag.h"
#include "files.h"

#ifndef MW_VERSION
#define MW_VERSION "unknown"
#endif

#define EXIT_USAGE 2

typedef struct {
    const char *name; /* "--out" */
    const char **value;
    bool *flag; /* set instead of value for options without an argument */
} opt_spec;

static const char usage_text[] =
    "usage: " PKI_PROG " ca --out DIR [--name CN] [--not-before DATE] [--not-after DATE]"
    " [--force]\n"
    "       " PKI_PROG " issue (--ca DIR | --self-signed) --role device|gateway --id NAME\n"
    "                   --out DIR [--not-before DATE] [--not-after DATE] [--force]\n"
    "       " PKI_PROG " issue --ca DIR --role device|gateway --csr FILE [--id NAME]\n"
    "                   --out DIR [--not-before DATE] [--not-after DATE] [--force]\n"
    "       " PKI_PROG " csr --key KEY-OR-URI --id NAME --out FILE [--force]\n"
    "       " PKI_PROG " revoke --ca DIR --id NAME [--reason REASON] [--next-update-days N]\n"
    "       " PKI_PROG " revoke --ca DIR --serial HEX [--id NAME] [--reason REASON]\n"
    "                   [--next-update-days N]\n"
    "       " PKI_PROG " crl --ca DIR [--next-update-days N]\n"
    "       " PKI_PROG " --version | -h | --help\n";

static const char ca_help[] =
    "\n"
    "ca: write DIR/ca.crt and DIR/ca.key, a CA that signs device and gateway certificates.\n"
    "  --out DIR          directory to write to; created with mode 0700 if missing\n"
    "  --name CN          the CA's common name (default \"medwire CA\"); 1-64 printable ASCII\n"
    "  --not-before DATE  YYYY-MM-DD, valid from 00:00:00Z that day (default: now - 1 hour)\n"
    "  --not-after DATE   YYYY-MM-DD, valid until 23:59:59Z that day (default: now + 20 years)\n"
    "  --force            replace DIR/ca.crt and DIR/ca.key if they exist\n";

static const char issue_help[] =
    "\n"
    "issue: write DIR/NAME.crt and DIR/NAME.key for one device or gateway.\n"
    "  --ca DIR           sign with DIR/ca.crt and DIR/ca.key (made by '" PKI_PROG " ca')\n"
    "  --self-signed      sign the certificate with its own key instead (for tests: a\n"
    "                     gateway must refuse it)\n"
    "  --role ROLE        device (DTLS client: EKU clientAuth, SAN URI urn:medwire:device:NAME)\n"
    "                     or gateway (DTLS server: EKU serverAuth, SAN dNSName NAME)\n"
    "  --id NAME          device id or gateway name: subject CN and file name;\n"
    "                     [A-Za-z0-9][A-Za-z0-9._-]{0,63}\n"
    "  --out DIR          directory to write to; created with mode 0700 if missing\n"
    "  --not-before DATE  YYYY-MM-DD, valid from 00:00:00Z that day (default: now - 1 hour)\n"
    "  --not-after DATE   YYYY-MM-DD, valid until 23:59:59Z that day (default: now + 5 years)\n"
    "  --force            replace DIR/NAME.crt and DIR/NAME.key if they exist\n"
    "  --count N          issue N certificates at once, named NAME-1 ... NAME-N (1-100000;\n"
    "                     a test fleet in one process instead of N)\n"
    "  --csr FILE         issue for the key of the PKCS#10 request FILE ('" PKI_PROG " csr')\n"
    "                     instead of a new key: only DIR/NAME.crt is written, NAME being the\n"
    "                     request's common name (--id, if given, must equal it). The request\n"
    "                     must verify with its own key, an ECDSA P-256 one, and name exactly\n"
    "                     one valid NAME; nothing else in it is used. Needs --ca.\n"
    "  With --ca, the certificate is first recorded in the CA's index.txt, so that 'revoke'\n"
    "  can find it; the CA directory must be writable.\n";

static const char csr_help[] =
    "\n"
    "csr: write FILE, a PKCS#10 certificate request (PEM) for subject O=medwire, CN=NAME,\n"
    "  signed ecdsa-with-SHA256 by KEY, for a CA to answer with 'issue --csr FILE'.\n"
    "  --key KEY-OR-URI   a PEM P-256 key file, or the RFC 7512 URI of a key in a PKCS#11\n"
    "                     token, which then signs the request in the token; the key never\n"
    "                     leaves it. The token also holds the key's public half (same label\n"
    "                     or id), as key generation in a token makes it. For example\n"
    "                     'pkcs11:token=medwire;object=dev1?module-path=/usr/lib/softhsm/\n"
    "                     libsofthsm2.so&pin-source=/etc/medwire/pin' (also id=%01%02 for\n"
    "                     CKA_ID, pin-value=PIN in place of pin-source)\n"
    "  --id NAME          the device id or gateway name the certificate is to carry;\n"
    "                     [A-Za-z0-9][A-Za-z0-9._-]{0,63}\n"
    "  --out FILE         where to write the request (mode 0644; its folder must exist)\n"
    "  --force            replace FILE if it exists\n";

static const char revoke_help[] =
    "\n"
    "revoke: mark every certificate the CA issued to NAME (or, with --serial, the one with\n"
    "  that serial) as revoked in DIR/index.txt, then write DIR/crl.pem anew, listing every\n"
    "  certificate the CA has ever revoked. Revoking NAME again changes nothing but the CRL's\n"
    "  dates and number.\n"
    "  --ca DIR              the CA directory ('" PKI_PROG " ca --out DIR'; 'issue --ca DIR'\n"
    "                        records each certificate there)\n"
    "  --id NAME             the device id or gateway name that was given to 'issue --id'\n"
    "  --serial HEX          only the certificate with this serial (hex, as index.txt, OpenSSL\n"
    "                        or the gateway's store print it), e.g. the one a renewal\n"
    "                        replaced; with --id, it must be NAME's\n"
    "  --reason REASON       keyCompromise, cessationOfOperation, superseded or\n"
    "                        affiliationChanged (default: none; the CRL entry then carries\n"
    "                        no reasonCode)\n"
    "  --next-update-days N  nextUpdate is now + N days, N from 1 to 365 (default 7); write a\n"
    "                        new CRL before then ('" PKI_PROG " crl'), as verifiers that check\n"
    "                        revocation refuse every certificate of the CA once it is past\n"
    "  --this-update DATE    for tests: pretend it is 00:00:00Z of YYYY-MM-DD, to make a CRL\n"
    "                        that has expired or is not valid yet\n";

static const char crl_help[] =
    "\n"
    "crl: write DIR/crl.pem anew from DIR/index.txt without revoking anything: new thisUpdate,\n"
    "  nextUpdate and cRLNumber. Run it (from cron, say) well before nextUpdate; the first\n"
    "  run after 'ca' makes the empty CRL a gateway needs before anything is revoked.\n"
    "  --ca DIR              the CA directory\n"
    "  --next-update-days N  as for revoke (default 7)\n"
    "  --this-update DATE    as for revoke (for tests)\n";

static const char profile_help[] =
    "\n"
    "Certificate profile: ECDSA P-256 keys, ecdsa-with-SHA256, X.509 v3, 16-byte random\n"
    "serial, subject O=medwire, CN=NAME. CA: basicConstraints CA:TRUE, pathlen:0 (critical),\n"
    "keyUsage keyCertSign,cRLSign. Device and gateway: CA:FALSE, keyUsage digitalSignature,\n"
    "SKI, AKI.\n"
    "Keys are SEC1 PEM (\"EC PRIVATE KEY\") with mode 0600; certificates PEM with mode 0644.\n"
    "Files are replaced atomically; existing ones are kept unless --force is given.\n"
    "CRL: X.509 v2, ecdsa-with-SHA256, issuer and authorityKeyIdentifier of the CA, cRLNumber,\n"
    "reasonCode when given; PEM \"X509 CRL\" with mode 0644. wolfCrypt cannot make CRLs: this\n"
    "program encodes the DER itself and signs it with wolfCrypt's ECDSA. DIR/index.txt and\n"
    "DIR/crlnumber have the formats of 'openssl ca'.\n"
    "\n"
    "Exit status: 0 success, 1 failure, 2 usage error.\n";

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs(PKI_PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nsee '" PKI_PROG " --help'\n", stderr);
    return EXIT_USAGE;
}

/* --- command line ------------------------------------------------------------------------- */

static int parse_opts(int argc, char **argv, const opt_spec *specs, size_t nspecs, bool *help)
{
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            *help = true;
            return EXIT_SUCCESS;
        }
        if (strncmp(arg, "--", 2) != 0)
            return usage_error("unexpected argument '%s'", arg);
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        const opt_spec *s = NULL;
        for (size_t k = 0; k < nspecs; k++) {
            if (strlen(specs[k].name) == len && strncmp(specs[k].name, arg, len) == 0)
                s = &specs[k];
        }
        if (s == NULL)
            return usage_error("unknown option '%.*s'", (int)len, arg);
        if (s->flag) {
            if (eq)
                return usage_error("%s takes no value", s->name);
            *s->flag = true;
            continue;
        }
        const char *val = NULL;
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0 &&
                   strcmp(argv[i + 1], "-h") != 0) {
            /* "--out --force" is a forgotten value, not a directory named "--force";
             * --out=--force still reaches one. */
            val = argv[++i];
        }
        if (val == NULL || val[0] == '\0')
            return usage_error("%s needs a value", s->name);
        if (*s->value != NULL)
            return usage_error("%s given more than once", s->name);
        *s->value = val;
    }
    return EXIT_SUCCESS;
}

static bool valid_ca_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PKI_NAME_MAX_LEN || s[0] == ' ' || s[n - 1] == ' ')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e)
            return false;
    }
    return true;
}

/* Resolves the validity period: explicit dates win, defaults start an hour back so a verifier
 * whose clock is a little behind ours does not reject a fresh certificate. */
static int resolve_validity(const char *nb_arg, const char *na_arg, int default_years, utc_time *nb,
                            utc_time *na)
{
    time_t now = time(NULL);
    if (nb_arg) {
        if (!pki_parse_date(nb_arg, false, nb))
            return usage_error("--not-before '%s' is not a date YYYY-MM-DD", nb_arg);
    } else {
        *nb = pki_from_epoch(now - 3600);
    }
    if (na_arg) {
        if (!pki_parse_date(na_arg, true, na))
            return usage_error("--not-after '%s' is not a date YYYY-MM-DD", na_arg);
    } else {
        *na = pki_from_epoch(now);
        na->year += default_years;
        if (na->mon == 2 && na->day == 29 && !pki_leap_year(na->year))
            na->day = 28;
    }
    if (pki_time_cmp(nb, na) > 0) {
        return usage_error("the not-before date %04d-%02d-%02d (%s) is after the not-after date "
                           "%04d-%02d-%02d (%s); give both --not-before and --not-after",
                           nb->year, nb->mon, nb->day, nb_arg ? "--not-before" : "default",
                           na->year, na->mon, na->day, na_arg ? "--not-after" : "default");
    }
    return EXIT_SUCCESS;
}

/* Shared tail of 'ca' and 'issue': a new key, its certificate, and OUT/BASE.{key,crt}. A NULL
 * signer means self-signed; a non-NULL record_ca is the CA directory whose index.txt records
 * the certificate. */
static int generate(cert_request *req, ecc_key *signer, const char *record_ca, const char *out,
                    const char *base, bool force)
{
    WC_RNG rng;
    ecc_key key;
    unsigned char der[PKI_CERT_DER_CAP];
    int der_len = 0, rc;

    int ret = wc_InitRng(&rng);
    if (ret != 0)
        return pki_wolf_fail("cannot start the random generator", ret);
    ret = wc_ecc_init(&key);
    if (ret != 0) {
        wc_FreeRng(&rng);
        return pki_wolf_fail("cannot initialise a key", ret);
    }
    rc = pki_make_key(&rng, &key);
    if (rc == EXIT_SUCCESS && signer != NULL) {
        ret = wc_ecc_set_rng(signer, &rng);
        if (ret != 0)
            rc = pki_wolf_fail("cannot attach the random generator to the CA key", ret);
    }
    if (rc == EXIT_SUCCESS) {
        /* The keys live in this frame only: a copy of the request carries them. */
        cert_request with_keys = *req;
        with_keys.subject_key = &key;
        with_keys.signer_key = signer ? signer : &key;
        rc = pki_make_cert(&rng, &with_keys, der, sizeof(der), &der_len);
        /* What pki_make_cert filled in (the serial) goes back; the key pointers do not. */
        with_keys.subject_key = NULL;
        with_keys.signer_key = NULL;
        *req = with_keys;
    }
    if (rc == EXIT_SUCCESS && record_ca != NULL)
        rc = pki_record_issued(record_ca, req);
    if (rc == EXIT_SUCCESS)
        rc = pki_make_dirs(out);
    if (rc == EXIT_SUCCESS)
        rc = pki_write_key(out, base, &key, force);
    if (rc == EXIT_SUCCESS)
        rc = pki_write_cert(out, base, der, der_len, force);
    if (rc == EXIT_SUCCESS)
        printf("wrote %s/%s.crt and %s/%s.key\n", out, base, out, base);

    wc_ecc_free(&key);
    mwi_wipe(&key, sizeof(key));
    wc_FreeRng(&rng);
    return rc;
}

/* --- commands ----------------------------------------------------------------------------- */

/* 'issue --csr': the certificate of the profile for the key and name of a request; no key is
 * made and none written. */
static int issue_for_csr(const char *ca, const char *csr, const char *id, role_t role,
                         const char *out, const char *nb, const char *na, bool force)
{
    char cn[PKI_NAME_MAX_LEN + 1], path[4096];
    cert_request req = {.role = role};
    int rc = resolve_validity(nb, na, 5, &req.not_before, &req.not_after);
    if (rc != EXIT_SUCCESS)
        return rc;
    ecc_key subject, ca_key;
    unsigned char ca_der[PKI_CERT_DER_CAP], der[PKI_CERT_DER_CAP];
    int der_len = 0;
    WC_RNG rng;
    int ret = wc_InitRng(&rng);
    if (ret != 0)
        return pki_wolf_fail("cannot start the random generator", ret);
    if (wc_ecc_init(&subject) != 0 || wc_ecc_init(&ca_key) != 0) {
        wc_FreeRng(&rng);
        return pki_fail("out of memory");
    }
    rc = pki_read_csr(csr, &subject, cn);
    if (rc == EXIT_SUCCESS && id != NULL && strcmp(id, cn) != 0)
        rc = pki_fail("the request %s asks for '%s', not for --id '%s'; give the name it asks "
                      "for, or a request for that name",
                      csr, cn, id);
    req.cn = cn;
    if (rc == EXIT_SUCCESS)
        rc = pki_load_ca(ca, ca_der, &req, &ca_key);
    if (rc == EXIT_SUCCESS && strcmp(cn, "ca") == 0 && pki_same_dir(ca, out))
        rc = pki_fail("a certificate named ca in the CA's own directory would replace the CA; "
                      "choose another --out");
    if (rc == EXIT_SUCCESS && !force) {
        if (!pki_path_join(path, sizeof(path), out, "", cn, ".crt"))
            rc = pki_fail("--out path too long: %s", out);
        else
            rc = pki_refuse_existing(path);
    }
    if (rc == EXIT_SUCCESS && (ret = wc_ecc_set_rng(&ca_key, &rng)) != 0)
        rc = pki_wolf_fail("cannot attach the random generator to the CA key", ret);
    if (rc == EXIT_SUCCESS) {
        req.subject_key = &subject;
        req.signer_key = &ca_key;
        rc = pki_make_cert(&rng, &req, der, sizeof(der), &der_len);
        req.subject_key = NULL;
        req.signer_key = NULL;
    }
    if (rc == EXIT_SUCCESS)
        rc = pki_record_issued(ca, &req);
    if (rc == EXIT_SUCCESS)
        rc = pki_make_dirs(out);
    if (rc == EXIT_SUCCESS)
        rc = pki_write_cert(out, cn, der, der_len, force);
    if (rc == EXIT_SUCCESS)
        printf("wrote %s/%s.crt for the key of %s\n", out, cn, csr);
    wc_ecc_free(&subject);
    wc_ecc_free(&ca_key);
    mwi_wipe(&ca_key, sizeof(ca_key));
    wc_FreeRng(&rng);
    return rc;
}

static int cmd_csr(int argc, char **argv)
{
    const char *key = NULL, *id = NULL, *out = NULL;
    bool force = false, help = false;
    const opt_spec specs[] = {
        {"--key", &key, NULL},
        {"--id", &id, NULL},
        {"--out", &out, NULL},
        {"--force", NULL, &force},
    };
    int rc = parse_opts(argc, argv, specs, sizeof(specs) / sizeof(specs[0]), &help);
    if (rc != EXIT_SUCCESS)
        return rc;
    if (help) {
        fputs(usage_text, stdout);
        fputs(csr_help, stdout);
        return EXIT_SUCCESS;
    }
    if (key == NULL)
        return usage_error("csr: missing --key KEY-OR-URI");
    if (id == NULL)
        return usage_error("csr: missing --id NAME");
    if (!pki_valid_id(id)) {
        return usage_error("--id '%s' is not allowed: use 1-64 characters from A-Z a-z 0-9 . _ "
                           "-, starting with a letter or digit",
                           id);
    }
    if (out == NULL)
        return usage_error("csr: missing --out FILE");
    if (!force && pki_refuse_existing(out) != EXIT_SUCCESS)
        return EXIT_FAILURE;
    return pki_make_csr(key, id, out, force);
}

static int check_outputs(const char *out, const char *name, bool force)
{
    char path[4096];
    if (force)
        return EXIT_SUCCESS;
    static const char *const suffixes[2] = {".key", ".crt"};
    for (int i = 0; i < 2; i++) {
        if (!pki_path_join(path, sizeof(path), out, "", name, suffixes[i]))
            return pki_fail("--out path too long: %s", out);
        int rc = pki_refuse_existing(path);
        if (rc != EXIT_SUCCESS)
            return rc;
    }
    return EXIT_SUCCESS;
}

static int cmd_ca(int argc, char **argv)
{
    const char *out = NULL, *name = NULL, *nb = NULL, *na = NULL;
    bool force = false, help = false;
    const opt_spec specs[] = {
        {"--out", &out, NULL},      {"--name", &name, NULL},   {"--not-before", &nb, NULL},
        {"--not-after", &na, NULL}, {"--force", NULL, &force},
    };
    int rc = parse_opts(argc, argv, specs, sizeof(specs) / sizeof(specs[0]), &help);
    if (rc != EXIT_SUCCESS)
        return rc;
    if (help) {
        fputs(usage_text, stdout);
        fputs(ca_help, stdout);
        fputs(profile_help, stdout);
        return EXIT_SUCCESS;
    }
    if (out == NULL)
        return usage_error("ca: missing --out DIR");
    if (name == NULL)
        name = "medwire CA";
    if (!valid_ca_name(name))
        return usage_error("--name must be 1-64 printable ASCII characters without leading or "
                           "trailing spaces");
    cert_request req = {.role = ROLE_CA, .cn = name};
    rc = resolve_validity(nb, na, 20, &req.not_before, &req.not_after);
    if (rc != EXIT_SUCCESS)
        return rc;
    rc = check_outputs(out, "ca", force);
    if (rc != EXIT_SUCCESS)
        return rc;

    /* The files are named ca.*, whatever the CN, so 'issue --ca DIR' finds them. */
    return generate(&req, NULL, NULL, out, "ca", force);
}

static int cmd_issue(int argc, char **argv)
{
    const char *ca = NULL, *role_arg = NULL, *id = NULL, *out = NULL, *nb = NULL, *na = NULL;
    const char *count_arg = NULL, *csr = NULL;
    bool self_signed = false, force = false, help = false;
    const opt_spec specs[] = {
        {"--ca", &ca, NULL},           {"--self-signed", NULL, &self_signed},
        {"--role", &role_arg, NULL},   {"--id", &id, NULL},
        {"--out", &out, NULL},         {"--not-before", &nb, NULL},
        {"--not-after", &na, NULL},    {"--force", NULL, &force},
        {"--count", &count_arg, NULL}, {"--csr", &csr, NULL},
    };
    int rc = parse_opts(argc, argv, specs, sizeof(specs) / sizeof(specs[0]), &help);
    if (rc != EXIT_SUCCESS)
        return rc;
    if (help) {
        fputs(usage_text, stdout);
        fputs(issue_help, stdout);
        fputs(profile_help, stdout);
        return EXIT_SUCCESS;
    }
    if (ca == NULL && !self_signed)
        return usage_error("issue: missing --ca DIR (or --self-signed)");
    if (ca != NULL && self_signed)
        return usage_error("issue: --ca and --self-signed exclude each other");
    if (role_arg == NULL)
        return usage_error("issue: missing --role device|gateway");
    cert_request req = {0};
    if (strcmp(role_arg, "device") == 0)
        req.role = ROLE_DEVICE;
    else if (strcmp(role_arg, "gateway") == 0)
        req.role = ROLE_GATEWAY;
    else
        return usage_error("--role must be device or gateway, not '%s'", role_arg);
    if (csr != NULL) {
        if (ca == NULL)
            return usage_error("issue: --csr needs --ca DIR: a request is answered by a CA");
        if (count_arg != NULL)
            return usage_error("issue: --csr and --count exclude each other");
        if (out == NULL)
            return usage_error("issue: missing --out DIR");
        return issue_for_csr(ca, csr, id, req.role, out, nb, na, force);
    }
    if (id == NULL)
        return usage_error("issue: missing --id NAME");
    if (!pki_valid_id(id)) {
        return usage_error("--id '%s' is not allowed: use 1-64 characters from A-Z a-z 0-9 . _ "
                           "-, starting with a letter or digit",
                           id);
    }
    if (out == NULL)
        return usage_error("issue: missing --out DIR");
    long count = 0; /* 0: one certificate named exactly NAME */
    if (count_arg != NULL) {
        char *end = NULL;
        errno = 0;
        count = strtol(count_arg, &end, 10);
        if (errno != 0 || *end != '\0' || count_arg[0] < '0' || count_arg[0] > '9' ||
            count < 1 || count > 100000)
            return usage_error("--count must be a whole number from 1 to 100000, not '%s'",
                               count_arg);
        if (strlen(id) + 7 > 64)
            return usage_error("--id '%s' leaves no room for the '-N' suffix of --count (64 "
                               "characters in all)",
                               id);
    }
    req.cn = id;
    rc = resolve_validity(nb, na, 5, &req.not_before, &req.not_after);
    if (rc != EXIT_SUCCESS)
        return rc;

    unsigned char ca_der[PKI_CERT_DER_CAP];
    ecc_key ca_key;
    int ret = wc_ecc_init(&ca_key);
    if (ret != 0)
        return pki_wolf_fail("cannot initialise a key", ret);
    if (ca != NULL) {
        rc = pki_load_ca(ca, ca_der, &req, &ca_key);
    }
    if (rc == EXIT_SUCCESS && ca != NULL && strcmp(id, "ca") == 0 && pki_same_dir(ca, out))
        rc = pki_fail(
            "--id ca in the CA's own directory would replace the CA; choose another --out");
    if (count == 0) {
        if (rc == EXIT_SUCCESS)
            rc = check_outputs(out, id, force);
        if (rc == EXIT_SUCCESS)
            rc = generate(&req, ca != NULL ? &ca_key : NULL, ca, out, id, force);
    }
    for (long i = 1; i <= count && rc == EXIT_SUCCESS; i++) {
        char name[72];
        snprintf(name, sizeof name, "%s-%ld", id, i);
        cert_request one = req;
        one.cn = name;
        rc = check_outputs(out, name, force);
        if (rc == EXIT_SUCCESS)
            rc = generate(&one, ca != NULL ? &ca_key : NULL, ca, out, name, force);
    }
    wc_ecc_free(&ca_key);
    mwi_wipe(&ca_key, sizeof(ca_key));
    return rc;
}

/* The options 'revoke' and 'crl' share: when the CRL is made and how long it is valid. */
static int resolve_crl_times(const char *days_arg, const char *this_update_arg, int *days,
                             time_t *now)
{
    *days = 7;
    if (days_arg != NULL) {
        char *end;
        errno = 0;
        long v = strtol(days_arg, &end, 10);
        if (errno != 0 || *end != '\0' || days_arg[0] < '0' || days_arg[0] > '9' || v < 1 ||
            v > 365)
            return usage_error("--next-update-days must be a whole number of days from 1 to 365, "
                               "not '%s'",
                               days_arg);
        *days = (int)v;
    }
    *now = time(NULL);
    if (this_update_arg != NULL) {
        utc_time t;
        if (!pki_parse_date(this_update_arg, false, &t))
            return usage_error("--this-update '%s' is not a date YYYY-MM-DD", this_update_arg);
        *now = pki_epoch_of(&t);
    }
    return EXIT_SUCCESS;
}

/* Says which names the index knows, so a mistyped --id is quick to fix. */
static void list_names(const char *dir, const ca_index *idx)
{
    if (idx->n == 0) {
        fprintf(stderr,
                "  %s/index.txt records no certificate yet: 'issue --ca %s' records each one it "
                "issues\n  (a certificate issued before its CA recorded them cannot be revoked "
                "by name)\n",
                dir, dir);
        return;
    }
    /* At most 20 names, each once: enough to spot a typo without flooding the terminal. */
    char shown[20][PKI_NAME_MAX_LEN + 1];
    size_t n_shown = 0;
    bool more = false;
    fprintf(stderr, "  certificates recorded in %s/index.txt are issued to:", dir);
    for (size_t i = 0; i < idx->n; i++) {
        char cn[PKI_NAME_MAX_LEN + 1];
        pki_subject_cn(idx->e[i].subject, cn, sizeof(cn));
        bool seen = false;
        for (size_t k = 0; k < n_shown && !seen; k++)
            seen = strcmp(cn, shown[k]) == 0;
        if (seen)
            continue;
        if (n_shown == sizeof(shown) / sizeof(shown[0])) {
            more = true;
            break;
        }
        memcpy(shown[n_shown++], cn, sizeof(cn));
        fprintf(stderr, " %s", cn);
    }
    if (more)
        fprintf(stderr, " (and more: see the file)");
    fputc('\n', stderr);
}

/* Loads the CA, checks its key, and takes its lock: the common start of 'revoke' and 'crl'. */
static int open_ca(const char *dir, unsigned char *der, cert_request *req, ecc_key *key, int *lock)
{
    int rc = pki_load_ca(dir, der, req, key);
    if (rc == EXIT_SUCCESS)
        rc = pki_lock_ca(dir, lock);
    return rc;
}

/* A serial as text: 1 to 40 hex digits (RFC 5280: at most 20 octets). */
static bool serial_text_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 40)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* The same serial, whatever the case of its hex digits and its leading zeros. */
static bool same_serial(const char *a, const char *b)
{
    while (*a == '0' && a[1] != '\0')
        a++;
    while (*b == '0' && b[1] != '\0')
        b++;
    return strcasecmp(a, b) == 0;
}

static int cmd_revoke(int argc, char **argv)
{
    const char *ca = NULL, *id = NULL, *serial = NULL, *reason_arg = NULL, *days_arg = NULL,
               *tu_arg = NULL;
    bool help = false;
    const opt_spec specs[] = {
        {"--ca", &ca, NULL},
        {"--id", &id, NULL},
        {"--serial", &serial, NULL},
        {"--reason", &reason_arg, NULL},
        {"--next-update-days", &days_arg, NULL},
        {"--this-update", &tu_arg, NULL},
    };
    int rc = parse_opts(argc, argv, specs, sizeof(specs) / sizeof(specs[0]), &help);
    if (rc != EXIT_SUCCESS)
        return rc;
    if (help) {
        fputs(usage_text, stdout);
        fputs(revoke_help, stdout);
        fputs(profile_help, stdout);
        return EXIT_SUCCESS;
    }
    if (ca == NULL)
        return usage_error("revoke: missing --ca DIR");
    if (id == NULL && serial == NULL)
        return usage_error("revoke: missing --id NAME or --serial HEX");
    if (serial != NULL && !serial_text_valid(serial))
        return usage_error("--serial '%s' is not a serial: 1-40 hex digits, as index.txt or "
                           "'openssl x509 -serial' print it",
                           serial);
    if (id != NULL && !pki_valid_id(id)) {
        return usage_error("--id '%s' is not allowed: use 1-64 characters from A-Z a-z 0-9 . _ "
                           "-, starting with a letter or digit",
                           id);
    }
    int reason = -1;
    if (reason_arg != NULL) {
        reason = pki_reason_code(reason_arg, true);
        if (reason < 0)
            return usage_error("--reason must be keyCompromise, cessationOfOperation, superseded "
                               "or affiliationChanged, not '%s'",
                               reason_arg);
    }
    int days = 0;
    time_t now = 0;
    rc = resolve_crl_times(days_arg, tu_arg, &days, &now);
    if (rc != EXIT_SUCCESS)
        return rc;

    /* The revocation field of index.txt: DATE or DATE,REASON, shared by every line we mark. */
    char revoked_text[64], when[16];
    utc_time now_utc = pki_from_epoch(now);
    if (!pki_time_text(&now_utc, when))
        return pki_fail("cannot encode the revocation date");
    snprintf(revoked_text, sizeof(revoked_text), "%s%s%s", when, reason_arg ? "," : "",
             reason_arg ? reason_arg : "");

    unsigned char ca_der[PKI_CERT_DER_CAP];
    cert_request req = {0};
    ecc_key key;
    int lock = -1;
    ca_index idx = {0};
    int ret = wc_ecc_init(&key);
    if (ret != 0)
        return pki_wolf_fail("cannot initialise a key", ret);
    rc = open_ca(ca, ca_der, &req, &key, &lock);
    if (rc == EXIT_SUCCESS)
        rc = pki_index_load(ca, &idx);
    size_t found = 0, newly = 0;
    if (rc == EXIT_SUCCESS) {
        for (size_t i = 0; i < idx.n; i++) {
            char cn[PKI_NAME_MAX_LEN + 1];
            index_entry *e = &idx.e[i];
            pki_subject_cn(e->subject, cn, sizeof(cn));
            if (serial != NULL ? !same_serial(e->serial, serial) : strcmp(cn, id) != 0)
                continue;
            if (id != NULL && strcmp(cn, id) != 0) {
                rc = pki_fail("the certificate with serial %s was issued to '%s', not to '%s'; "
                              "nothing was revoked",
                              e->serial, cn, id);
                break;
            }
            found++;
            if (e->status == 'R') {
                utc_time at;
                int why;
                char at_text[32];
                if (!pki_parse_revoked_field(e->revoked, &at, &why))
                    continue; /* pki_index_load checked it */
                pki_format_time(&at, at_text, sizeof(at_text));
                fprintf(stderr,
                        PKI_PROG ": note: %s (serial %s) was already revoked on %s%s%s; left "
                                 "as it was\n",
                        cn, e->serial, at_text, why >= 0 ? ", reason " : "",
                        why >= 0 ? strchr(e->revoked, ',') + 1 : "");
                continue;
            }
            /* A device re-issued with --force has several certificates: revoking the device
             * revokes them all, expired ones too (E), since a clock can be set back. */
            e->status = 'R';
            e->revoked = revoked_text;
            newly++;
            printf("revoked %s: serial %s\n", cn, e->serial);
        }
        if (rc == EXIT_SUCCESS && found == 0 && serial != NULL) {
            rc = pki_fail("no certificate with serial %s is recorded in %s/index.txt; nothing "
                          "was revoked",
                          serial, ca);
        } else if (rc == EXIT_SUCCESS && found == 0) {
            rc = pki_fail("no certificate issued to '%s' is recorded in %s/index.txt; nothing was "
                          "revoked",
                          id, ca);
            list_names(ca, &idx);
        }
    }
    if (rc == EXIT_SUCCESS && newly > 0)
        rc = pki_index_save(ca, &idx);
    if (rc == EXIT_SUCCESS)
        rc = pki_write_crl(ca, &req, &key, &idx, now, days);
    pki_index_free(&idx);
    pki_unlock_ca(lock);
    wc_ecc_free(&key);
    mwi_wipe(&key, sizeof(key));
    return rc;
}

static int cmd_crl(int argc, char **argv)
{
    const char *ca = NULL, *days_arg = NULL, *tu_arg = NULL;
    bool help = false;
    const opt_spec specs[] = {
        {"--ca", &ca, NULL},
        {"--next-update-days", &days_arg, NULL},
        {"--this-update", &tu_arg, NULL},
    };
    int rc = parse_opts(argc, argv, specs, sizeof(specs) / sizeof(specs[0]), &help);
    if (rc != EXIT_SUCCESS)
        return rc;
    if (help) {
        fputs(usage_text, stdout);
        fputs(crl_help, stdout);
        fputs(profile_help, stdout);
        return EXIT_SUCCESS;
    }
    if (ca == NULL)
        return usage_error("crl: missing --ca DIR");
    int days = 0;
    time_t now = 0;
    rc = resolve_crl_times(days_arg, tu_arg, &days, &now);
    if (rc != EXIT_SUCCESS)
        return rc;

    unsigned char ca_der[PKI_CERT_DER_CAP];
    cert_request req = {0};
    ecc_key key;
    int lock = -1;
    ca_index idx = {0};
    int ret = wc_ecc_init(&key);
    if (ret != 0)
        return pki_wolf_fail("cannot initialise a key", ret);
    rc = open_ca(ca, ca_der, &req, &key, &lock);
    if (rc == EXIT_SUCCESS)
        rc = pki_index_load(ca, &idx);
    if (rc == EXIT_SUCCESS)
        rc = pki_write_crl(ca, &req, &key, &idx, now, days);
    pki_index_free(&idx);
    pki_unlock_ca(lock);
    wc_ecc_free(&key);
    mwi_wipe(&key, sizeof(key));
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("missing command (ca, issue, csr, revoke or crl)");
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        fputs(usage_text, stdout);
        fputs(ca_help, stdout);
        fputs(issue_help, stdout);
        fputs(csr_help, stdout);
        fputs(revoke_help, stdout);
        fputs(crl_help, stdout);
        fputs(profile_help, stdout);
        return EXIT_SUCCESS;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("%s %s (wolfSSL %s)\n", PKI_PROG, MW_VERSION, LIBWOLFSSL_VERSION_STRING);
        return EXIT_SUCCESS;
    }
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } commands[] = {{"ca", cmd_ca},
                    {"issue", cmd_issue},
                    {"csr", cmd_csr},
                    {"revoke", cmd_revoke},
                    {"crl", cmd_crl}};
    int (*run)(int, char **) = NULL;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(cmd, commands[i].name) == 0)
            run = commands[i].run;
    }
    if (run == NULL)
        return usage_error("unknown command '%s' (expected ca, issue, csr, revoke or crl)", cmd);

    int ret = wolfCrypt_Init();
    if (ret != 0)
        return pki_wolf_fail("cannot initialise wolfCrypt", ret);
    int rc = run(argc - 2, argv + 2);
    /* Frees the fixed-point ECC caches this build keeps (FP_ECC). */
    wolfCrypt_Cleanup();
    fflush(stdout);
    return rc;
}
