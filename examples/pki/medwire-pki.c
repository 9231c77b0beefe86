/* SPDX-License-Identifier: Apache-2.0 */
/* medwire-pki.c -- make the CA, device and gateway certificates of medwire's certificate profile.
 */

/*
 * The certificate profile of protocol v1 (this program is its reference):
 *
 *  - Keys ECDSA P-256; signatures ecdsa-with-SHA256; X.509 v3 (RFC 7925 section 4.4.2).
 *  - Serial: 16 random bytes, top bit clear and first byte non-zero, so the INTEGER is
 *    positive and always 16 octets (RFC 5280 4.1.2.2 allows up to 20).
 *  - Subject: O=medwire, CN=NAME. NAME is [A-Za-z0-9][A-Za-z0-9._-]{0,63}: it is also a file
 *    name and a DNS name, so no '/', no leading '.' or '-', and at most ub-common-name (64).
 *  - CA: basicConstraints CA:TRUE (critical), keyUsage keyCertSign|cRLSign, SKI.
 *    Default validity now - 1 hour to now + 20 years.
 *  - Device: basicConstraints CA:FALSE, keyUsage digitalSignature, EKU clientAuth only, SKI,
 *    AKI of the CA, subjectAltName URI urn:medwire:device:NAME.
 *  - Gateway: as a device but EKU serverAuth only and subjectAltName dNSName=NAME, so that a
 *    device's name check works on the SAN as RFC 6125 6.4.4 wants.
 *    Default leaf validity now - 1 hour to now + 5 years.
 *  - Explicit dates run from 00:00:00Z of --not-before to 23:59:59Z of --not-after, as
 *    UTCTime for 1950-2049 and GeneralizedTime otherwise (RFC 5280 4.1.2.5).
 *  - Private keys: SEC1 PEM "EC PRIVATE KEY", mode 0600. Certificates: PEM, mode 0644.
 *    Every file is written to a temporary name, fsynced and renamed, so a crash never
 *    leaves half a key under the real name.
 *
 * The CRL profile (RFC 5280 section 5; 'revoke' and 'crl' write it to CADIR/crl.pem):
 *
 *  - CertificateList v2, signed ecdsa-with-SHA256 by the CA's P-256 key; PEM "X509 CRL",
 *    mode 0644. Issuer: the CA certificate's subject Name, copied byte for byte from its DER
 *    (verifiers match CRL and certificate issuers on the encoding).
 *  - thisUpdate: now. nextUpdate: now + --next-update-days (default 7). Time encoding as for
 *    certificates (5.1.2.4, 5.1.2.5).
 *  - revokedCertificates: every certificate ever revoked in CADIR/index.txt, expired ones
 *    included, each with its serial, its revocationDate and, when a reason was given, a
 *    non-critical reasonCode (5.3.1); absent altogether while nothing is revoked (5.1.2.6).
 *  - crlExtensions, both non-critical: authorityKeyIdentifier = the CA certificate's
 *    subjectKeyIdentifier (5.2.1, and how wolfSSL finds the CRL's signer), and cRLNumber
 *    (5.2.3), one more than the last for every CRL this CA writes.
 *
 * How the CRL is made: hand-built DER, signed with wolfCrypt ECDSA. wolfCrypt 5.5.4 parses
 * and verifies CRLs but has no CRL encoder, and medwire takes on no second crypto library
 * for this one structure (OpenSSL serves only as the tests' independent check). So this
 * program encodes the TBSCertList itself, hashes it with SHA-256 (wc_Sha256Hash), signs the
 * hash with the CA key (wc_ecc_sign_hash, an ECDSA-Sig-Value), and wraps TBS,
 * AlgorithmIdentifier and signature BIT STRING into the CertificateList. 'openssl crl
 * -CAfile', 'openssl verify -crl_check' and wolfSSL's CRL checks accept the result
 * (tests/pki and tests/dtls).
 *
 * State kept in the CA directory, in the formats of 'openssl ca' so that either tool can
 * read them: index.txt (one line per issued certificate: status V or R, notAfter,
 * revocationDate[,reason], serial in hex, "unknown", subject), and crlnumber (the next
 * cRLNumber, in hex). 'issue --ca' records a certificate there before writing it out, so no
 * certificate exists that 'revoke' cannot find. Updates hold an fcntl lock on CADIR/.lock
 * and replace the files atomically.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/version.h>
#include <wolfssl/wolfcrypt/settings.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/wc_port.h>

#ifndef MW_VERSION
#define MW_VERSION "unknown"
#endif

#define PROG         "medwire-pki"
#define EXIT_USAGE   2
#define NAME_MAX_LEN 64 /* RFC 5280 ub-common-name */
#define SERIAL_LEN   16
#define CERT_DER_CAP 4096
#define PEM_CAP      8192
#define KEY_DER_CAP  512

#if !defined(WOLFSSL_CERT_GEN) || !defined(WOLFSSL_CERT_EXT) || !defined(WOLFSSL_ALT_NAMES) ||     \
    !defined(HAVE_ECC)
#error "medwire-pki needs a wolfSSL built with certgen, certext, altnames and ECC"
#endif

typedef enum { ROLE_CA, ROLE_DEVICE, ROLE_GATEWAY } role_t;

typedef struct {
    int year, mon, day, hour, min, sec;
} utc_time;

typedef struct {
    const char *name; /* "--out" */
    const char **value;
    bool *flag; /* set instead of value for options without an argument */
} opt_spec;

typedef struct {
    role_t role;
    const char *cn;
    utc_time not_before, not_after;
    ecc_key *subject_key;
    ecc_key *signer_key;
    const unsigned char *ca_der; /* NULL when self-signed */
    int ca_der_len;
    unsigned char ca_subject[sizeof(((Cert *)0)->issRaw)]; /* RDNs, NUL-terminated */
    unsigned char serial[SERIAL_LEN];                      /* set by make_cert */
} cert_request;

static const char usage_text[] =
    "usage: " PROG " ca --out DIR [--name CN] [--not-before DATE] [--not-after DATE] [--force]\n"
    "       " PROG " issue (--ca DIR | --self-signed) --role device|gateway --id NAME\n"
    "                   --out DIR [--not-before DATE] [--not-after DATE] [--force]\n"
    "       " PROG " revoke --ca DIR --id NAME [--reason REASON] [--next-update-days N]\n"
    "       " PROG " crl --ca DIR [--next-update-days N]\n"
    "       " PROG " --version | -h | --help\n";

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
    "  --ca DIR           sign with DIR/ca.crt and DIR/ca.key (made by '" PROG " ca')\n"
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
    "  With --ca, the certificate is first recorded in the CA's index.txt, so that 'revoke'\n"
    "  can find it; the CA directory must be writable.\n";

static const char revoke_help[] =
    "\n"
    "revoke: mark every certificate the CA issued to NAME as revoked in DIR/index.txt, then\n"
    "  write DIR/crl.pem anew, listing every certificate the CA has ever revoked. Revoking\n"
    "  NAME again changes nothing but the CRL's dates and number.\n"
    "  --ca DIR              the CA directory ('" PROG " ca --out DIR'; 'issue --ca DIR'\n"
    "                        records each certificate there)\n"
    "  --id NAME             the device id or gateway name that was given to 'issue --id'\n"
    "  --reason REASON       keyCompromise, cessationOfOperation, superseded or\n"
    "                        affiliationChanged (default: none; the CRL entry then carries\n"
    "                        no reasonCode)\n"
    "  --next-update-days N  nextUpdate is now + N days, N from 1 to 365 (default 7); write a\n"
    "                        new CRL before then ('" PROG " crl'), as verifiers that check\n"
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
    "serial, subject O=medwire, CN=NAME. CA: basicConstraints CA:TRUE (critical), keyUsage\n"
    "keyCertSign,cRLSign. Device and gateway: CA:FALSE, keyUsage digitalSignature, SKI, AKI.\n"
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
    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nsee '" PROG " --help'\n", stderr);
    return EXIT_USAGE;
}

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
    va_list ap;
    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_FAILURE;
}

static int wolf_fail(const char *what, int err)
{
    return fail("%s: %s (wolfCrypt error %d)", what, wc_GetErrorString(err), err);
}

/* The compiler may drop a memset before free; secrets must not outlive their use. */
static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
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

/* NAME becomes a file name, a CN and a DNS name: the set keeps it safe as all three. */
static bool valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return false;
    }
    return true;
}

static bool valid_ca_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN || s[0] == ' ' || s[n - 1] == ' ')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e)
            return false;
    }
    return true;
}

static bool leap_year(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap_year(y) ? 29 : days[m - 1];
}

static bool parse_date(const char *s, bool end_of_day, utc_time *out)
{
    int v[3] = {0, 0, 0};
    static const int widths[3] = {4, 2, 2};
    const char *p = s;
    for (int f = 0; f < 3; f++) {
        for (int k = 0; k < widths[f]; k++, p++) {
            if (*p < '0' || *p > '9')
                return false;
            v[f] = v[f] * 10 + (*p - '0');
        }
        if (*p != (f < 2 ? '-' : '\0'))
            return false;
        p++;
    }
    if (v[0] < 1 || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > days_in_month(v[0], v[1]))
        return false;
    *out =
        (utc_time){v[0], v[1], v[2], end_of_day ? 23 : 0, end_of_day ? 59 : 0, end_of_day ? 59 : 0};
    return true;
}

static int time_cmp(const utc_time *a, const utc_time *b)
{
    const int x[6] = {a->year, a->mon, a->day, a->hour, a->min, a->sec};
    const int y[6] = {b->year, b->mon, b->day, b->hour, b->min, b->sec};
    for (int i = 0; i < 6; i++) {
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    }
    return 0;
}

static utc_time from_epoch(time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    return (utc_time){tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                      tm.tm_hour,        tm.tm_min,     tm.tm_sec};
}

/* Resolves the validity period: explicit dates win, defaults start an hour back so a verifier
 * whose clock is a little behind ours does not reject a fresh certificate. */
static int resolve_validity(const char *nb_arg, const char *na_arg, int default_years, utc_time *nb,
                            utc_time *na)
{
    time_t now = time(NULL);
    if (nb_arg) {
        if (!parse_date(nb_arg, false, nb))
            return usage_error("--not-before '%s' is not a date YYYY-MM-DD", nb_arg);
    } else {
        *nb = from_epoch(now - 3600);
    }
    if (na_arg) {
        if (!parse_date(na_arg, true, na))
            return usage_error("--not-after '%s' is not a date YYYY-MM-DD", na_arg);
    } else {
        *na = from_epoch(now);
        na->year += default_years;
        if (na->mon == 2 && na->day == 29 && !leap_year(na->year))
            na->day = 28;
    }
    if (time_cmp(nb, na) > 0) {
        return usage_error("the not-before date %04d-%02d-%02d (%s) is after the not-after date "
                           "%04d-%02d-%02d (%s); give both --not-before and --not-after",
                           nb->year, nb->mon, nb->day, nb_arg ? "--not-before" : "default",
                           na->year, na->mon, na->day, na_arg ? "--not-after" : "default");
    }
    return EXIT_SUCCESS;
}

/* --- DER pieces wolfCrypt does not build the way the profile needs ------------------------ */

/* RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050 (and before 1950). Returns
 * the encoded length including tag and length, as Cert.beforeDate wants it. */
static int encode_time(const utc_time *t, unsigned char out[CTC_DATE_SIZE])
{
    char text[32];
    bool utc = t->year >= 1950 && t->year <= 2049;
    int n;
    if (utc) {
        n = snprintf(text, sizeof(text), "%02d%02d%02d%02d%02d%02dZ", t->year % 100, t->mon, t->day,
                     t->hour, t->min, t->sec);
    } else {
        n = snprintf(text, sizeof(text), "%04d%02d%02d%02d%02d%02dZ", t->year, t->mon, t->day,
                     t->hour, t->min, t->sec);
    }
    if (n != (utc ? 13 : 15))
        return -1;
    out[0] = utc ? ASN_UTC_TIME : ASN_GENERALIZED_TIME;
    out[1] = (unsigned char)n;
    memcpy(out + 2, text, (size_t)n);
    return n + 2;
}

/* Appends one RelativeDistinguishedName holding a single UTF8String attribute. Every length
 * stays below 128 (values are at most 64 bytes), so short-form lengths suffice. */
static size_t put_rdn(unsigned char *p, unsigned char oid_last, const char *value)
{
    size_t n = strlen(value);
    p[0] = ASN_SET | ASN_CONSTRUCTED;
    p[1] = (unsigned char)(n + 9);
    p[2] = ASN_SEQUENCE | ASN_CONSTRUCTED;
    p[3] = (unsigned char)(n + 7);
    p[4] = ASN_OBJECT_ID;
    p[5] = 3;
    p[6] = 0x55; /* id-at (2.5.4) */
    p[7] = 0x04;
    p[8] = oid_last;
    p[9] = ASN_UTF8STRING;
    p[10] = (unsigned char)n;
    memcpy(p + 11, value, n); /* NOLINT(bugprone-not-null-terminated-result): DER, not a string */
    return n + 11;
}

/*
 * wolfCrypt's CertName fields hold 63 characters, one short of ub-common-name and our NAME
 * grammar, so the subject goes in as raw RDNs (wolfCrypt adds the Name's SEQUENCE around them).
 * wolfCrypt reads that buffer as a C string: it must be NUL-free, which holds because every
 * length is non-zero and names are printable ASCII.
 */
static void set_raw_name(unsigned char *dst, size_t cap, const char *cn)
{
    memset(dst, 0, cap);
    size_t n = put_rdn(dst, 0x0a, "medwire"); /* organizationName */
    (void)put_rdn(dst + n, 0x03, cn);         /* commonName */
}

/* GeneralNames with one name of the given context tag (2: dNSName, 6: URI), RFC 5280 4.2.1.6. */
static int set_alt_name(Cert *cert, unsigned char tag, const char *prefix, const char *name)
{
    size_t plen = strlen(prefix), nlen = strlen(name), len = plen + nlen;
    if (len > 125)
        return BAD_FUNC_ARG;
    cert->altNames[0] = ASN_SEQUENCE | ASN_CONSTRUCTED;
    cert->altNames[1] = (byte)(len + 2);
    cert->altNames[2] = ASN_CONTEXT_SPECIFIC | tag;
    cert->altNames[3] = (byte)len;
    memcpy(cert->altNames + 4, prefix, plen);
    memcpy(cert->altNames + 4 + plen, name, nlen);
    cert->altNamesSz = (int)(len + 4);
    return 0;
}

/* Parses a DER header at p; returns its size and sets *len, or returns 0 if malformed. */
static size_t der_header(const unsigned char *p, size_t avail, size_t *len)
{
    if (avail < 2)
        return 0;
    size_t hl = 2, n = p[1];
    if (n & 0x80) {
        size_t k = n & 0x7f;
        if (k < 1 || k > 2 || avail < 2 + k)
            return 0;
        n = k == 1 ? p[2] : ((size_t)p[2] << 8) | p[3];
        hl = 2 + k;
    }
    if (n > avail - hl)
        return 0;
    *len = n;
    return hl;
}

static size_t der_header_size(size_t len)
{
    return len < 0x80 ? 2 : len < 0x100 ? 3 : 4;
}

static size_t der_put_header(unsigned char *out, unsigned char tag, size_t len)
{
    out[0] = tag;
    if (len < 0x80) {
        out[1] = (unsigned char)len;
        return 2;
    }
    if (len < 0x100) {
        out[1] = 0x81;
        out[2] = (unsigned char)len;
        return 3;
    }
    out[1] = 0x82;
    out[2] = (unsigned char)(len >> 8);
    out[3] = (unsigned char)len;
    return 4;
}

/*
 * RFC 5280 4.2.1.9: a CA certificate's basicConstraints MUST be critical, and wolfCrypt 5.5.4
 * writes it non-critical with no way to ask otherwise. So between wc_MakeCert_ex and
 * wc_SignCert_ex the unsigned TBSCertificate is rebuilt with critical=TRUE inserted after the
 * extension's OID, and every enclosing length grown to match. Returns the new TBS length, or
 * -1 if the TBS is not shaped as wolfCrypt writes it.
 */
static int make_basic_constraints_critical(unsigned char *tbs, int tbs_len, int cap)
{
    static const unsigned char bc_oid[5] = {ASN_OBJECT_ID, 3, 0x55, 0x1d, 0x13};
    static const unsigned char critical[3] = {ASN_BOOLEAN, 1, 0xff};
    size_t len, tbs_hl = der_header(tbs, (size_t)tbs_len, &len);
    if (tbs_hl == 0 || tbs[0] != (ASN_SEQUENCE | ASN_CONSTRUCTED) ||
        tbs_hl + len != (size_t)tbs_len)
        return -1;

    /* Extensions, [3] EXPLICIT, are the TBS's last field. */
    size_t a3 = tbs_hl, a3_len = 0, a3_hl = 0;
    while (a3 < (size_t)tbs_len) {
        a3_hl = der_header(tbs + a3, (size_t)tbs_len - a3, &a3_len);
        if (a3_hl == 0)
            return -1;
        if (tbs[a3] == (ASN_CONTEXT_SPECIFIC | ASN_CONSTRUCTED | 3))
            break;
        a3 += a3_hl + a3_len;
    }
    if (a3 >= (size_t)tbs_len || a3 + a3_hl + a3_len != (size_t)tbs_len)
        return -1;
    size_t exts = a3 + a3_hl, exts_len;
    size_t exts_hl = der_header(tbs + exts, a3_len, &exts_len);
    if (exts_hl == 0 || exts_hl + exts_len != a3_len)
        return -1;

    size_t ext = exts + exts_hl, ext_len = 0, ext_hl = 0;
    size_t end = exts + exts_hl + exts_len;
    for (; ext < end; ext += ext_hl + ext_len) {
        ext_hl = der_header(tbs + ext, end - ext, &ext_len);
        if (ext_hl == 0)
            return -1;
        if (ext_len >= sizeof(bc_oid) && memcmp(tbs + ext + ext_hl, bc_oid, sizeof(bc_oid)) == 0)
            break;
    }
    if (ext >= end)
        return -1;
    size_t after_oid = ext + ext_hl + sizeof(bc_oid);
    if (tbs[after_oid] == ASN_BOOLEAN)
        return tbs_len; /* already marked */

    size_t new_ext = ext_len + sizeof(critical);
    size_t new_exts = exts_len - (ext_hl + ext_len) + der_header_size(new_ext) + new_ext;
    size_t new_a3 = der_header_size(new_exts) + new_exts;
    size_t new_tbs = (a3 - tbs_hl) + der_header_size(new_a3) + new_a3;
    size_t total = der_header_size(new_tbs) + new_tbs;
    unsigned char out[CERT_DER_CAP];
    if (total > sizeof(out) || total > (size_t)cap)
        return -1;

    size_t o = der_put_header(out, ASN_SEQUENCE | ASN_CONSTRUCTED, new_tbs);
    memcpy(out + o, tbs + tbs_hl, a3 - tbs_hl);
    o += a3 - tbs_hl;
    o += der_put_header(out + o, tbs[a3], new_a3);
    o += der_put_header(out + o, tbs[exts], new_exts);
    memcpy(out + o, tbs + exts + exts_hl, ext - (exts + exts_hl));
    o += ext - (exts + exts_hl);
    o += der_put_header(out + o, tbs[ext], new_ext);
    memcpy(out + o, bc_oid, sizeof(bc_oid));
    o += sizeof(bc_oid);
    memcpy(out + o, critical, sizeof(critical));
    o += sizeof(critical);
    memcpy(out + o, tbs + after_oid, end - after_oid);
    o += end - after_oid;
    memcpy(tbs, out, o);
    return (int)o;
}

/* --- files -------------------------------------------------------------------------------- */

static int make_dirs(const char *dir)
{
    char path[4096];
    if (strlen(dir) >= sizeof(path))
        return fail("output directory name is too long: %s", dir);
    memcpy(path, dir, strlen(dir) + 1);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return fail("cannot create directory %s: %s", path, strerror(errno));
        *p = saved;
        if (saved == '\0')
            break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return fail("%s exists and is not a directory; choose another --out", dir);
    return EXIT_SUCCESS;
}

static bool path_join(char *out, size_t cap, const char *dir, const char *prefix, const char *name,
                      const char *suffix)
{
    int n = snprintf(out, cap, "%s/%s%s%s", dir, prefix, name, suffix);
    return n > 0 && (size_t)n < cap;
}

static int refuse_existing(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0)
        return fail("%s already exists; not overwriting it (use --force to replace it)", path);
    if (errno != ENOENT)
        return fail("cannot check %s: %s", path, strerror(errno));
    return EXIT_SUCCESS;
}

/*
 * Writes DIR/.FILE.tmp, fsyncs it and moves it into place, then fsyncs DIR so the rename is
 * durable too: a crash leaves the old file or the new one, never half a key. Without --force
 * the move is link(2), which fails if the target appeared meanwhile instead of replacing it.
 */
static int write_atomic(const char *dir, const char *file, const unsigned char *data, size_t len,
                        mode_t mode, bool force)
{
    char final[4096], tmp[4096];
    if (!path_join(final, sizeof(final), dir, "", file, "") ||
        !path_join(tmp, sizeof(tmp), dir, ".", file, ".tmp"))
        return fail("path too long: %s/%s", dir, file);

    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 && errno == EEXIST) {
        /* Left by a run that crashed; it never became the real file, so it is safe to drop. */
        unlink(tmp);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    }
    if (fd < 0)
        return fail("cannot create %s: %s", tmp, strerror(errno));
    int err = 0;
    if (fchmod(fd, mode) != 0) /* the umask must not loosen or tighten the profile's modes */
        err = errno;
    for (size_t off = 0; err == 0 && off < len;) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            err = errno;
        else
            off += (size_t)w;
    }
    if (err == 0 && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && err == 0)
        err = errno;
    if (err != 0) {
        unlink(tmp);
        return fail("cannot write %s: %s", tmp, strerror(err));
    }

    if (force) {
        if (rename(tmp, final) != 0)
            err = errno;
    } else if (link(tmp, final) != 0) {
        err = errno;
    }
    unlink(tmp);
    if (err == EEXIST)
        return fail("%s already exists; not overwriting it (use --force to replace it)", final);
    if (err != 0)
        return fail("cannot move %s to %s: %s", tmp, final, strerror(err));

    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) != 0)
            err = errno;
        close(dfd);
    }
    if (err != 0)
        return fail("cannot sync directory %s: %s", dir, strerror(err));
    return EXIT_SUCCESS;
}

/* Reads a small file whole; returns its length, or -1 with errno set. */
static long read_small_file(const char *path, unsigned char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    for (;;) {
        if (len == cap) {
            close(fd);
            errno = EFBIG;
            return -1;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    return (long)len;
}

static int write_key(const char *dir, const char *name, ecc_key *key, bool force)
{
    unsigned char der[KEY_DER_CAP], pem[PEM_CAP];
    char file[NAME_MAX_LEN + 8];
    int rc = EXIT_FAILURE;
    snprintf(file, sizeof(file), "%s.key", name);
    int der_len = wc_EccKeyToDer(key, der, sizeof(der));
    if (der_len <= 0) {
        rc = wolf_fail("cannot encode the private key", der_len);
        goto out;
    }
    int pem_len = wc_DerToPem(der, (word32)der_len, pem, sizeof(pem), ECC_PRIVATEKEY_TYPE);
    if (pem_len <= 0) {
        rc = wolf_fail("cannot encode the private key as PEM", pem_len);
        goto out;
    }
    rc = write_atomic(dir, file, pem, (size_t)pem_len, 0600, force);
out:
    wipe(der, sizeof(der));
    wipe(pem, sizeof(pem));
    return rc;
}

static int write_cert(const char *dir, const char *name, const unsigned char *der, int der_len,
                      bool force)
{
    unsigned char pem[PEM_CAP];
    char file[NAME_MAX_LEN + 8];
    snprintf(file, sizeof(file), "%s.crt", name);
    int pem_len = wc_DerToPem(der, (word32)der_len, pem, sizeof(pem), CERT_TYPE);
    if (pem_len <= 0)
        return wolf_fail("cannot encode the certificate as PEM", pem_len);
    return write_atomic(dir, file, pem, (size_t)pem_len, 0644, force);
}

/* --- certificates ------------------------------------------------------------------------- */

static int make_key(WC_RNG *rng, ecc_key *key)
{
    int ret = wc_ecc_make_key_ex(rng, 32, key, ECC_SECP256R1);
    if (ret != 0)
        return wolf_fail("cannot generate a P-256 key", ret);
    /* Timing-resistant ECC (this build's default) blinds signing with the key's own RNG. */
    ret = wc_ecc_set_rng(key, rng);
    if (ret != 0)
        return wolf_fail("cannot attach the random generator to the key", ret);
    return EXIT_SUCCESS;
}

static int set_serial(WC_RNG *rng, Cert *cert)
{
    do {
        int ret = wc_RNG_GenerateBlock(rng, cert->serial, SERIAL_LEN);
        if (ret != 0)
            return wolf_fail("cannot draw a serial number", ret);
        cert->serial[0] &= 0x7f;
    } while (cert->serial[0] == 0); /* a leading zero octet would shorten the DER INTEGER */
    cert->serialSz = SERIAL_LEN;
    return EXIT_SUCCESS;
}

static int make_cert(WC_RNG *rng, cert_request *req, unsigned char *der, int cap, int *out_len)
{
    int rc = EXIT_FAILURE, ret;
    Cert *cert = wc_CertNew(NULL);
    if (cert == NULL)
        return fail("out of memory");

    cert->version = 2; /* X.509 v3 */
    cert->sigType = CTC_SHA256wECDSA;
    cert->keyType = ECC_KEY;
    rc = set_serial(rng, cert);
    if (rc != EXIT_SUCCESS)
        goto out;
    memcpy(req->serial, cert->serial, SERIAL_LEN);

    set_raw_name(cert->sbjRaw, sizeof(cert->sbjRaw), req->cn);
    if (req->ca_der) {
        /* The issuer must equal the CA's subject byte for byte: verifiers match names on
         * their encoding. wc_SetIssuerBuffer re-encodes the name from CertName fields (63
         * characters, UTF8String), so the raw RDNs go in place of what it set. */
        ret = wc_SetIssuerBuffer(cert, req->ca_der, req->ca_der_len);
        if (ret == 0)
            ret = wc_SetAuthKeyIdFromCert(cert, req->ca_der, req->ca_der_len);
        if (ret != 0) {
            rc = wolf_fail("cannot take the issuer from the CA certificate", ret);
            goto out;
        }
        memcpy(cert->issRaw, req->ca_subject, sizeof(cert->issRaw));
    } else {
        memcpy(cert->issRaw, cert->sbjRaw, sizeof(cert->issRaw));
    }

    cert->beforeDateSz = encode_time(&req->not_before, cert->beforeDate);
    cert->afterDateSz = encode_time(&req->not_after, cert->afterDate);
    if (cert->beforeDateSz < 0 || cert->afterDateSz < 0) {
        rc = fail("cannot encode the validity dates");
        goto out;
    }

    ret = wc_SetSubjectKeyIdFromPublicKey_ex(cert, ECC_TYPE, req->subject_key);
    if (ret != 0) {
        rc = wolf_fail("cannot compute the subject key identifier", ret);
        goto out;
    }

    if (req->role == ROLE_CA) {
        cert->isCA = 1;
        ret = wc_SetKeyUsage(cert, "keyCertSign,cRLSign");
    } else {
        /* Explicit CA:FALSE, so no verifier can mistake a leaf for a CA (RFC 5280 4.2.1.9). */
        cert->isCA = 0;
        cert->basicConstSet = 1;
        ret = wc_SetKeyUsage(cert, "digitalSignature");
        if (ret == 0)
            ret = wc_SetExtKeyUsage(cert, req->role == ROLE_DEVICE ? "clientAuth" : "serverAuth");
        if (ret == 0 && req->role == ROLE_GATEWAY)
            ret = set_alt_name(cert, 2, "", req->cn);
        if (ret == 0 && req->role == ROLE_DEVICE)
            ret = set_alt_name(cert, 6, "urn:medwire:device:", req->cn);
    }
    if (ret != 0) {
        rc = wolf_fail("cannot set the certificate extensions", ret);
        goto out;
    }

    ret = wc_MakeCert_ex(cert, der, (word32)cap, ECC_TYPE, req->subject_key, rng);
    if (ret < 0) {
        rc = wolf_fail("cannot build the certificate", ret);
        goto out;
    }
    int body_len = cert->bodySz;
    if (req->role == ROLE_CA) {
        body_len = make_basic_constraints_critical(der, body_len, cap);
        if (body_len < 0) {
            rc = fail("cannot mark basicConstraints critical: unexpected certificate layout");
            goto out;
        }
    }
    ret = wc_SignCert_ex(body_len, cert->sigType, der, (word32)cap, ECC_TYPE, req->signer_key, rng);
    if (ret < 0) {
        rc = wolf_fail("cannot sign the certificate", ret);
        goto out;
    }
    *out_len = ret;
    rc = EXIT_SUCCESS;
out:
    wc_CertFree(cert);
    return rc;
}

/* The CA's key must be the one its certificate names, or every leaf we sign fails to verify
 * long after this program has exited; check it here, where the user can still act. */
static int check_ca(const char *dir, const unsigned char *der, int der_len, ecc_key *key,
                    unsigned char *subject, size_t subject_cap)
{
    DecodedCert dc;
    unsigned char from_cert[256], from_key[256];
    word32 cert_len = sizeof(from_cert);
    int rc = EXIT_SUCCESS;

    wc_InitDecodedCert(&dc, der, (word32)der_len, NULL);
    int ret = wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL);
    if (ret != 0) {
        rc = fail("cannot parse %s/ca.crt: %s (wolfCrypt error %d)", dir, wc_GetErrorString(ret),
                  ret);
    } else if (!dc.isCA) {
        rc = fail("%s/ca.crt is not a CA certificate; make one with '" PROG " ca --out %s'", dir,
                  dir);
    } else if (wc_ecc_get_curve_id(key->idx) != ECC_SECP256R1) {
        rc = fail("%s/ca.key is not a P-256 key, which the medwire profile requires; make a CA "
                  "with '" PROG " ca --out DIR'",
                  dir);
    } else {
        ret = wc_GetPubKeyDerFromCert(&dc, from_cert, &cert_len);
        int key_len = wc_EccPublicKeyToDer(key, from_key, sizeof(from_key), 1);
        if (ret != 0 || key_len <= 0 || (word32)key_len != cert_len ||
            memcmp(from_cert, from_key, cert_len) != 0) {
            rc =
                fail("%s/ca.key does not belong to %s/ca.crt; restore the matching pair", dir, dir);
        }
    }
    /* subjectRaw is the Name's content, as wolfCrypt wants issRaw; it reads issRaw up to the
     * first NUL, so a name with a zero byte (a CA made by another tool) cannot be carried. */
    if (rc == EXIT_SUCCESS) {
        size_t n = dc.subjectRaw ? (size_t)dc.subjectRawLen : 0;
        if (n == 0 || n >= subject_cap || memchr(dc.subjectRaw, 0, n) != NULL) {
            rc = fail("the subject of %s/ca.crt cannot be used as an issuer name by wolfCrypt; "
                      "make a CA with '" PROG " ca --out DIR'",
                      dir);
        } else {
            memset(subject, 0, subject_cap);
            memcpy(subject, dc.subjectRaw, n);
        }
    }
    wc_FreeDecodedCert(&dc);
    return rc;
}

static int load_ca(const char *dir, unsigned char *der, cert_request *req, ecc_key *key)
{
    char path[4096];
    unsigned char pem[PEM_CAP], key_der[KEY_DER_CAP];
    int rc = EXIT_FAILURE;

    if (!path_join(path, sizeof(path), dir, "", "ca", ".crt"))
        return fail("--ca path too long: %s", dir);
    long n = read_small_file(path, pem, sizeof(pem));
    if (n < 0) {
        return fail("cannot read CA certificate %s: %s (create one with '" PROG " ca --out %s')",
                    path, strerror(errno), dir);
    }
    int der_len = wc_CertPemToDer(pem, (int)n, der, CERT_DER_CAP, CERT_TYPE);
    if (der_len <= 0)
        return fail("%s is not a PEM certificate (wolfCrypt error %d)", path, der_len);
    req->ca_der = der;
    req->ca_der_len = der_len;

    path_join(path, sizeof(path), dir, "", "ca", ".key");
    n = read_small_file(path, pem, sizeof(pem));
    if (n < 0) {
        rc = fail("cannot read CA key %s: %s (create one with '" PROG " ca --out %s')", path,
                  strerror(errno), dir);
        goto out;
    }
    int key_len = wc_KeyPemToDer(pem, (int)n, key_der, sizeof(key_der), NULL);
    word32 idx = 0;
    int ret = key_len > 0 ? wc_EccPrivateKeyDecode(key_der, &idx, key, (word32)key_len) : key_len;
    if (ret != 0) {
        rc = fail("%s is not a PEM EC private key: %s (wolfCrypt error %d)", path,
                  wc_GetErrorString(ret), ret);
        goto out;
    }
    rc = check_ca(dir, der, der_len, key, req->ca_subject, sizeof(req->ca_subject));
out:
    wipe(pem, sizeof(pem));
    wipe(key_der, sizeof(key_der));
    return rc;
}

static bool same_dir(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* --- the CA's record of issued and revoked certificates ----------------------------------- */

/* Growable DER output. The CRL grows with every revocation, so unlike a certificate it has
 * no fixed bound; allocation failure is sticky and checked once at the end. */
typedef struct {
    unsigned char *p;
    size_t len, cap;
    bool failed;
} dbuf;

static void db_put(dbuf *b, const void *src, size_t n)
{
    if (b->failed || n == 0)
        return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                b->failed = true;
                return;
            }
            cap *= 2;
        }
        unsigned char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void db_str(dbuf *b, const char *s)
{
    db_put(b, s, strlen(s));
}

/* One TLV with a definite, minimal length (X.690 10.1: DER). */
static void db_tlv(dbuf *b, unsigned char tag, const void *content, size_t n)
{
    unsigned char h[6];
    size_t hl = 0;
    h[hl++] = tag;
    if (n < 0x80) {
        h[hl++] = (unsigned char)n;
    } else {
        int k = n > 0xffffff ? 4 : n > 0xffff ? 3 : n > 0xff ? 2 : 1;
        if (n > 0xffffffffu) {
            b->failed = true;
            return;
        }
        h[hl++] = (unsigned char)(0x80 | k);
        for (int i = k - 1; i >= 0; i--)
            h[hl++] = (unsigned char)(n >> (8 * i));
    }
    db_put(b, h, hl);
    db_put(b, content, n);
}

static void db_wrap(dbuf *b, unsigned char tag, const dbuf *inner)
{
    if (inner->failed)
        b->failed = true;
    else
        db_tlv(b, tag, inner->p, inner->len);
}

static void db_free(dbuf *b)
{
    free(b->p);
    *b = (dbuf){0};
}

/* A non-negative INTEGER from big-endian magnitude bytes: minimal, with a 0x00 in front when
 * the top bit is set so that it stays positive (X.690 8.3). */
static void db_uint(dbuf *b, const unsigned char *mag, size_t n)
{
    unsigned char v[24];
    while (n > 1 && mag[0] == 0) {
        mag++;
        n--;
    }
    if (n == 0 || n > 21) {
        b->failed = true;
        return;
    }
    size_t k = 0;
    if (mag[0] & 0x80)
        v[k++] = 0;
    memcpy(v + k, mag, n);
    db_tlv(b, ASN_INTEGER, v, k + n);
}

static void db_u64(dbuf *b, uint64_t x)
{
    unsigned char mag[8];
    for (int i = 7; i >= 0; i--, x >>= 8)
        mag[i] = (unsigned char)x;
    db_uint(b, mag, sizeof(mag));
}

static void db_time(dbuf *b, const utc_time *t)
{
    unsigned char enc[CTC_DATE_SIZE];
    int n = encode_time(t, enc);
    if (n < 0)
        b->failed = true;
    else
        db_put(b, enc, (size_t)n);
}

/* ecdsa-with-SHA256 (1.2.840.10045.4.3.2), parameters absent as RFC 5758 3.2 requires. */
static const unsigned char ecdsa_sha256_algid[12] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                                     0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};

/* id-ce (2.5.29) extensions of RFC 5280. */
#define OID_CE_SKI        0x0e
#define OID_CE_CRL_NUMBER 0x14
#define OID_CE_REASON     0x15
#define OID_CE_AKI        0x23

/* A non-critical Extension (critical is DEFAULT FALSE, so DER leaves it out). */
static void db_extension(dbuf *b, unsigned char oid_last, const dbuf *value)
{
    const unsigned char oid[5] = {ASN_OBJECT_ID, 3, 0x55, 0x1d, oid_last};
    dbuf ext = {0};
    db_put(&ext, oid, sizeof(oid));
    db_wrap(&ext, ASN_OCTET_STRING, value);
    db_wrap(b, ASN_SEQUENCE | ASN_CONSTRUCTED, &ext);
    db_free(&ext);
}

/* Reads one TLV of [*pos, end) into tag and content [*start, *start + *len); advances *pos. */
static bool der_next(const unsigned char *buf, size_t end, size_t *pos, unsigned char *tag,
                     size_t *start, size_t *len)
{
    if (*pos >= end)
        return false;
    size_t hl = der_header(buf + *pos, end - *pos, len);
    if (hl == 0)
        return false;
    *tag = buf[*pos];
    *start = *pos + hl;
    *pos = *start + *len;
    return true;
}

/*
 * Finds in the CA certificate what its CRL must repeat: the subject Name as encoded (the
 * CRL's issuer must match certificate issuers byte for byte, RFC 5280 5.1.2.3 and 7.1) and
 * the subjectKeyIdentifier (the CRL's authorityKeyIdentifier, 5.2.1).
 */
static int ca_crl_ids(const char *dir, const unsigned char *der, size_t der_len,
                      const unsigned char **name, size_t *name_len, const unsigned char **ski,
                      size_t *ski_len)
{
    static const unsigned char ski_oid[3] = {0x55, 0x1d, OID_CE_SKI};
    size_t pos = 0, c, n, end;
    unsigned char tag;
    *name = *ski = NULL;
    if (!der_next(der, der_len, &pos, &tag, &c, &n) || tag != (ASN_SEQUENCE | ASN_CONSTRUCTED))
        goto bad;
    pos = c;
    end = c + n;
    if (!der_next(der, end, &pos, &tag, &c, &n) || tag != (ASN_SEQUENCE | ASN_CONSTRUCTED))
        goto bad;
    pos = c;
    end = c + n;
    /* TBSCertificate: [0] version, serial, signature, issuer, validity, subject, spki, ... */
    for (int field = 0; pos < end;) {
        size_t at = pos;
        if (!der_next(der, end, &pos, &tag, &c, &n))
            goto bad;
        if (tag == (ASN_CONTEXT_SPECIFIC | ASN_CONSTRUCTED | 0))
            continue;
        if (field++ == 4) {
            *name = der + at;
            *name_len = pos - at;
        }
        if (tag != (ASN_CONTEXT_SPECIFIC | ASN_CONSTRUCTED | 3))
            continue;
        size_t epos = c, eend = c + n, ec, en;
        if (!der_next(der, eend, &epos, &tag, &ec, &en) || tag != (ASN_SEQUENCE | ASN_CONSTRUCTED))
            goto bad;
        epos = ec;
        eend = ec + en;
        while (epos < eend) {
            size_t xpos, xend, oc, on, vc, vn;
            if (!der_next(der, eend, &epos, &tag, &xpos, &xend))
                goto bad;
            xend += xpos;
            if (!der_next(der, xend, &xpos, &tag, &oc, &on) || tag != ASN_OBJECT_ID)
                goto bad;
            if (on != sizeof(ski_oid) || memcmp(der + oc, ski_oid, on) != 0)
                continue;
            if (!der_next(der, xend, &xpos, &tag, &vc, &vn))
                goto bad;
            if (tag == ASN_BOOLEAN && !der_next(der, xend, &xpos, &tag, &vc, &vn))
                goto bad;
            size_t kpos = vc;
            if (tag != ASN_OCTET_STRING || !der_next(der, vc + vn, &kpos, &tag, &vc, &vn) ||
                tag != ASN_OCTET_STRING || vn == 0)
                goto bad;
            *ski = der + vc;
            *ski_len = vn;
        }
    }
    if (*name == NULL)
        goto bad;
    if (*ski == NULL) {
        return fail("%s/ca.crt has no subjectKeyIdentifier, which the CRL's "
                    "authorityKeyIdentifier must repeat; make a CA with '" PROG " ca --out DIR'",
                    dir);
    }
    return EXIT_SUCCESS;
bad:
    return fail("cannot find the subject and key identifier in %s/ca.crt: unexpected encoding",
                dir);
}

/* CRLReason (RFC 5280 5.3.1) under the names 'openssl ca' writes into index.txt. */
static const struct {
    const char *name;
    int code;
    bool option; /* offered by --reason: the reasons that fit a device or gateway */
} reasons[] = {
    {"unspecified", 0, false},     {"keyCompromise", 1, true},
    {"CACompromise", 2, false},    {"affiliationChanged", 3, true},
    {"superseded", 4, true},       {"cessationOfOperation", 5, true},
    {"certificateHold", 6, false}, {"privilegeWithdrawn", 9, false},
    {"AACompromise", 10, false},
};

static int reason_code(const char *name, bool option_only)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        if (strcmp(reasons[i].name, name) == 0 && (reasons[i].option || !option_only))
            return reasons[i].code;
    }
    return -1;
}

/* UTCTime (YYMMDDHHMMSSZ, 1950-2049) or GeneralizedTime (YYYYMMDDHHMMSSZ) text, as in
 * index.txt. */
static bool parse_asn1_time(const char *s, size_t n, utc_time *out)
{
    int v[7], k = 0;
    size_t digits = n - 1;
    if ((n != 13 && n != 15) || s[digits] != 'Z')
        return false;
    for (size_t i = 0; i < digits; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    int year;
    size_t i = 0;
    if (n == 13) {
        year = (s[0] - '0') * 10 + (s[1] - '0');
        year += year < 50 ? 2000 : 1900;
        i = 2;
    } else {
        year = ((s[0] - '0') * 10 + (s[1] - '0')) * 100 + (s[2] - '0') * 10 + (s[3] - '0');
        i = 4;
    }
    v[k++] = year;
    for (; i < digits; i += 2)
        v[k++] = (s[i] - '0') * 10 + (s[i + 1] - '0');
    utc_time t = {v[0], v[1], v[2], v[3], v[4], v[5]};
    if (t.mon < 1 || t.mon > 12 || t.day < 1 || t.day > days_in_month(t.year, t.mon) ||
        t.hour > 23 || t.min > 59 || t.sec > 59)
        return false;
    *out = t;
    return true;
}

/* The text of an ASN.1 time as index.txt stores it: what encode_time puts after tag and
 * length, so the CRL later re-encodes exactly the same bytes. */
static bool time_text(const utc_time *t, char out[16])
{
    unsigned char enc[CTC_DATE_SIZE];
    int n = encode_time(t, enc);
    if (n < 2 || n - 2 >= 16)
        return false;
    memcpy(out, enc + 2, (size_t)n - 2);
    out[n - 2] = '\0';
    return true;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Serial number hex as 'openssl ca' writes it: an even number of digits, at most 20 octets
 * (RFC 5280 4.1.2.2). */
static bool parse_serial_hex(const char *s, unsigned char *out, size_t *out_len)
{
    size_t n = strlen(s);
    if (n == 0 || n % 2 != 0 || n > 2 * 20)
        return false;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    *out_len = n / 2;
    return true;
}

/* One line of index.txt; the strings point into ca_index.text or to the caller's storage. */
typedef struct {
    char status;         /* 'V' valid, 'R' revoked, 'E' expired ('openssl ca -updatedb') */
    const char *expiry;  /* notAfter */
    const char *revoked; /* "" or revocationDate[,reason] */
    const char *serial;  /* hex */
    const char *file;    /* "unknown": 'openssl ca' would name a certificate file here */
    const char *subject; /* "/O=medwire/CN=NAME" */
} index_entry;

typedef struct {
    char *text;
    index_entry *e;
    size_t n, cap;
} ca_index;

static void index_free(ca_index *idx)
{
    free(idx->text);
    free(idx->e);
    *idx = (ca_index){0};
}

static bool index_push(ca_index *idx, const index_entry *e)
{
    if (idx->n == idx->cap) {
        size_t cap = idx->cap ? idx->cap * 2 : 32;
        index_entry *p = realloc(idx->e, cap * sizeof(*p));
        if (p == NULL)
            return false;
        idx->e = p;
        idx->cap = cap;
    }
    idx->e[idx->n++] = *e;
    return true;
}

/* The CN of a subject as index.txt writes it ("/O=medwire/CN=NAME"), or "" if none. */
static void subject_cn(const char *subject, char *out, size_t cap)
{
    const char *p = NULL;
    for (const char *q = strstr(subject, "/CN="); q != NULL; q = strstr(q + 1, "/CN="))
        p = q + 4;
    size_t n = p ? strcspn(p, "/") : 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, p ? p : "", n);
    out[n] = '\0';
}

/* Checks the revocation field of a line: "" for V and E, "DATE[,reason]" for R. */
static bool parse_revoked_field(const char *s, utc_time *when, int *reason)
{
    size_t n = strcspn(s, ",");
    if (!parse_asn1_time(s, n, when))
        return false;
    *reason = -1;
    if (s[n] == ',') {
        *reason = reason_code(s + n + 1, false);
        if (*reason < 0)
            return false;
    }
    return true;
}

/* Reads a whole file that may be large (index.txt grows with every certificate). Returns a
 * NUL-terminated heap buffer, or NULL with errno set (ENOENT if the file is missing). */
static char *read_text_file(const char *path, size_t limit)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    dbuf b = {0};
    unsigned char chunk[8192];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            db_free(&b);
            errno = e;
            return NULL;
        }
        if (r == 0)
            break;
        db_put(&b, chunk, (size_t)r);
        if (b.len > limit) {
            close(fd);
            db_free(&b);
            errno = EFBIG;
            return NULL;
        }
    }
    close(fd);
    db_put(&b, "", 1);
    if (b.failed) {
        db_free(&b);
        errno = ENOMEM;
        return NULL;
    }
    return (char *)b.p;
}

#define INDEX_LIMIT (64u << 20)

/*
 * Loads DIR/index.txt; a missing file is an empty index (a CA that has issued nothing yet, or
 * one made before certificates were recorded). Every line must parse: skipping one would
 * silently drop a revocation from the next CRL.
 */
static int index_load(const char *dir, ca_index *idx)
{
    char path[4096];
    *idx = (ca_index){0};
    if (!path_join(path, sizeof(path), dir, "", "index.txt", ""))
        return fail("--ca path too long: %s", dir);
    idx->text = read_text_file(path, INDEX_LIMIT);
    if (idx->text == NULL) {
        if (errno == ENOENT)
            return EXIT_SUCCESS;
        return fail("cannot read %s: %s", path, strerror(errno));
    }
    char *p = idx->text;
    for (size_t line = 1; *p != '\0'; line++) {
        char *eol = strchr(p, '\n');
        if (eol == NULL)
            return fail("%s line %zu: the last line has no newline; the file was cut short "
                        "(restore it from a backup)",
                        path, line);
        *eol = '\0';
        size_t tabs = 0;
        for (const char *q = p; *q != '\0'; q++)
            tabs += *q == '\t';
        char *f[6] = {p, p, p, p, p, p};
        if (tabs == 5) {
            char *q = p;
            for (int k = 0; k < 6; k++) {
                f[k] = q;
                q = strchr(q, '\t');
                if (q != NULL)
                    *q++ = '\0';
            }
        }
        const char *why = NULL;
        utc_time t;
        int reason;
        unsigned char serial[20];
        size_t serial_len;
        if (tabs != 5)
            why = "not 6 tab-separated fields";
        else if (strlen(f[0]) != 1 || strchr("VRE", f[0][0]) == NULL)
            why = "status is not V, R or E";
        else if (!parse_asn1_time(f[1], strlen(f[1]), &t))
            why = "the expiry date is not an ASN.1 time";
        else if (f[0][0] == 'R' && !parse_revoked_field(f[2], &t, &reason))
            why = "the revocation field is not DATE or DATE,REASON";
        else if (f[0][0] != 'R' && f[2][0] != '\0')
            why = "a certificate that is not revoked has a revocation date";
        else if (!parse_serial_hex(f[3], serial, &serial_len))
            why = "the serial number is not an even number of hex digits (at most 40)";
        else if (f[5][0] != '/')
            why = "the subject does not start with '/'";
        if (why != NULL)
            return fail("%s line %zu: %s; fix the line or restore the file", path, line, why);
        index_entry e = {f[0][0], f[1], f[2], f[3], f[4], f[5]};
        if (!index_push(idx, &e))
            return fail("out of memory");
        p = eol + 1;
    }
    return EXIT_SUCCESS;
}

static int index_save(const char *dir, const ca_index *idx)
{
    dbuf b = {0};
    for (size_t i = 0; i < idx->n; i++) {
        const index_entry *e = &idx->e[i];
        char status[2] = {e->status, '\0'};
        const char *f[6] = {status, e->expiry, e->revoked, e->serial, e->file, e->subject};
        for (int k = 0; k < 6; k++) {
            db_str(&b, f[k]);
            db_str(&b, k < 5 ? "\t" : "\n");
        }
    }
    if (b.failed) {
        db_free(&b);
        return fail("out of memory");
    }
    int rc =
        write_atomic(dir, "index.txt", b.p ? b.p : (const unsigned char *)"", b.len, 0644, true);
    db_free(&b);
    return rc;
}

/*
 * Serialises every change to a CA directory's state: two 'issue' runs must not each append
 * to the index they read and lose the other's line, and two 'revoke' runs must not write
 * CRLs whose numbers and contents disagree. fcntl locks are POSIX and vanish with the
 * process, so a crash never leaves the CA locked.
 */
static int lock_ca(const char *dir, int *out_fd)
{
    char path[4096];
    if (!path_join(path, sizeof(path), dir, "", ".lock", ""))
        return fail("--ca path too long: %s", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        return fail("cannot open %s: %s (the CA directory must be writable: it records every "
                    "certificate so that it can be revoked)",
                    path, strerror(errno));
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    while (fcntl(fd, F_SETLKW, &fl) != 0) {
        if (errno != EINTR) {
            int e = errno;
            close(fd);
            return fail("cannot lock %s: %s", path, strerror(e));
        }
    }
    *out_fd = fd;
    return EXIT_SUCCESS;
}

static void unlock_ca(int fd)
{
    if (fd >= 0)
        close(fd); /* closing releases the fcntl lock */
}

/* Records a certificate 'issue --ca' is about to write, before it is written: a certificate
 * that exists but is not in the index could never be revoked by name. */
static int record_issued(const char *dir, const cert_request *req)
{
    char serial[2 * SERIAL_LEN + 1], expiry[16], subject[NAME_MAX_LEN + 16];
    for (size_t i = 0; i < SERIAL_LEN; i++)
        snprintf(serial + 2 * i, 3, "%02X", req->serial[i]);
    if (!time_text(&req->not_after, expiry))
        return fail("cannot encode the expiry date for %s/index.txt", dir);
    snprintf(subject, sizeof(subject), "/O=medwire/CN=%s", req->cn);

    int lock, rc = lock_ca(dir, &lock);
    if (rc != EXIT_SUCCESS)
        return rc;
    ca_index idx;
    rc = index_load(dir, &idx);
    index_entry e = {'V', expiry, "", serial, "unknown", subject};
    if (rc == EXIT_SUCCESS && !index_push(&idx, &e))
        rc = fail("out of memory");
    if (rc == EXIT_SUCCESS)
        rc = index_save(dir, &idx);
    if (rc != EXIT_SUCCESS)
        fprintf(stderr,
                PROG ": nothing was issued: a certificate %s/index.txt does not record "
                     "could not be revoked\n",
                dir);
    index_free(&idx);
    unlock_ca(lock);
    return rc;
}

/* --- the CRL ------------------------------------------------------------------------------ */

/*
 * DIR/crlnumber holds the next cRLNumber in hex, as 'openssl ca' keeps it. The number is
 * consumed (the file advanced) before the CRL is written, so a crash between the two skips a
 * number but never repeats one: RFC 5280 5.2.3 wants it strictly increasing, and a verifier
 * may prefer the CRL with the higher number.
 */
static int take_crl_number(const char *dir, uint64_t *out)
{
    char path[4096], text[64];
    if (!path_join(path, sizeof(path), dir, "", "crlnumber", ""))
        return fail("--ca path too long: %s", dir);
    long n = read_small_file(path, (unsigned char *)text, sizeof(text) - 1);
    uint64_t next = 1;
    if (n < 0 && errno != ENOENT)
        return fail("cannot read %s: %s", path, strerror(errno));
    if (n >= 0) {
        text[n] = '\0';
        size_t digits = strspn(text, "0123456789ABCDEFabcdef");
        size_t zeros = strspn(text, "0");
        if (zeros == digits && zeros > 0)
            zeros--; /* the number 0: one significant digit */
        if (digits == 0 || digits - zeros > 15 ||
            strspn(text + digits, "\r\n") != (size_t)n - digits)
            return fail("%s does not hold a CRL number in hex below 2^60; fix or remove it", path);
        next = 0;
        for (size_t i = 0; i < digits; i++)
            next = next << 4 | (uint64_t)hex_value(text[i]);
    }
    char upd[32];
    int len = snprintf(upd, sizeof(upd), "%016" PRIX64 "\n", next + 1);
    int skip = 0;
    while (skip < 14 && upd[skip] == '0' && upd[skip + 1] == '0')
        skip += 2; /* 'openssl ca' writes an even number of digits */
    int rc = write_atomic(dir, "crlnumber", (const unsigned char *)upd + skip, (size_t)(len - skip),
                          0644, true);
    if (rc == EXIT_SUCCESS)
        *out = next;
    return rc;
}

typedef struct {
    const unsigned char *issuer; /* the CA's subject Name, whole TLV */
    size_t issuer_len;
    const unsigned char *ski;
    size_t ski_len;
    utc_time this_update, next_update;
    uint64_t number;
} crl_params;

/* One revokedCertificates entry (RFC 5280 5.1.2.6, 5.3.1) from an index line marked R. */
static void crl_entry(dbuf *out, const index_entry *e)
{
    unsigned char serial[20] = {0};
    size_t serial_len = 0;
    utc_time when;
    int reason = -1;
    dbuf entry = {0};
    if (!parse_serial_hex(e->serial, serial, &serial_len) ||
        !parse_revoked_field(e->revoked, &when, &reason)) {
        out->failed = true; /* index_load checked both */
        return;
    }
    db_uint(&entry, serial, serial_len);
    db_time(&entry, &when);
    /* 5.3.1: an unspecified reason SHOULD be absent rather than encoded as 0. */
    if (reason > 0) {
        dbuf value = {0}, exts = {0};
        const unsigned char code = (unsigned char)reason;
        db_tlv(&value, ASN_ENUMERATED, &code, 1);
        db_extension(&exts, OID_CE_REASON, &value);
        db_wrap(&entry, ASN_SEQUENCE | ASN_CONSTRUCTED, &exts);
        db_free(&value);
        db_free(&exts);
    }
    db_wrap(out, ASN_SEQUENCE | ASN_CONSTRUCTED, &entry);
    db_free(&entry);
}

/* The TBSCertList of RFC 5280 5.1.2, as the profile at the top of this file describes. */
static void crl_tbs(dbuf *tbs, const ca_index *idx, const crl_params *cp, size_t *out_revoked)
{
    static const unsigned char v2[3] = {ASN_INTEGER, 1, 1};
    dbuf body = {0}, revoked = {0}, exts = {0}, value = {0}, inner = {0};
    size_t count = 0;

    db_put(&body, v2, sizeof(v2));
    db_put(&body, ecdsa_sha256_algid, sizeof(ecdsa_sha256_algid));
    db_put(&body, cp->issuer, cp->issuer_len);
    db_time(&body, &cp->this_update);
    db_time(&body, &cp->next_update);
    for (size_t i = 0; i < idx->n; i++) {
        if (idx->e[i].status == 'R') {
            crl_entry(&revoked, &idx->e[i]);
            count++;
        }
    }
    if (count > 0) /* 5.1.2.6: absent, not empty, when nothing is revoked */
        db_wrap(&body, ASN_SEQUENCE | ASN_CONSTRUCTED, &revoked);

    /* AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING } */
    db_tlv(&inner, ASN_CONTEXT_SPECIFIC | 0, cp->ski, cp->ski_len);
    db_wrap(&value, ASN_SEQUENCE | ASN_CONSTRUCTED, &inner);
    db_extension(&exts, OID_CE_AKI, &value);
    db_free(&value);
    db_u64(&value, cp->number);
    db_extension(&exts, OID_CE_CRL_NUMBER, &value);
    db_free(&inner);
    db_wrap(&inner, ASN_SEQUENCE | ASN_CONSTRUCTED, &exts);
    db_wrap(&body, ASN_CONTEXT_SPECIFIC | ASN_CONSTRUCTED | 0, &inner);

    db_wrap(tbs, ASN_SEQUENCE | ASN_CONSTRUCTED, &body);
    db_free(&body);
    db_free(&revoked);
    db_free(&exts);
    db_free(&value);
    db_free(&inner);
    *out_revoked = count;
}

/* CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue BIT STRING },
 * signed over the DER of tbsCertList (5.1.1.3) with SHA-256 and the CA's ECDSA key. */
static int crl_sign(const dbuf *tbs, ecc_key *key, WC_RNG *rng, dbuf *out)
{
    unsigned char hash[WC_SHA256_DIGEST_SIZE], sig[1 + ECC_MAX_SIG_SIZE];
    word32 sig_len = sizeof(sig) - 1;
    if (tbs->len > 0xffffffffu)
        return fail("the CRL is too large");
    int ret = wc_Sha256Hash(tbs->p, (word32)tbs->len, hash);
    if (ret != 0)
        return wolf_fail("cannot hash the CRL", ret);
    ret = wc_ecc_sign_hash(hash, sizeof(hash), sig + 1, &sig_len, rng, key);
    if (ret != 0)
        return wolf_fail("cannot sign the CRL", ret);
    sig[0] = 0; /* no unused bits: the BIT STRING holds the whole ECDSA-Sig-Value */
    dbuf list = {0};
    db_put(&list, tbs->p, tbs->len);
    db_put(&list, ecdsa_sha256_algid, sizeof(ecdsa_sha256_algid));
    db_tlv(&list, ASN_BIT_STRING, sig, sig_len + 1);
    db_wrap(out, ASN_SEQUENCE | ASN_CONSTRUCTED, &list);
    db_free(&list);
    return out->failed ? fail("out of memory") : EXIT_SUCCESS;
}

static void format_time(const utc_time *t, char *out, size_t cap)
{
    snprintf(out, cap, "%04d-%02d-%02d %02d:%02d:%02dZ", t->year, t->mon, t->day, t->hour, t->min,
             t->sec);
}

/*
 * Writes DIR/crl.pem from the index: the shared tail of 'revoke' and 'crl'. The caller holds
 * the CA lock and has checked the CA key against its certificate (load_ca).
 */
static int write_crl(const char *dir, const cert_request *ca, ecc_key *key, const ca_index *idx,
                     time_t now, int days)
{
    crl_params cp = {0};
    int rc = ca_crl_ids(dir, ca->ca_der, (size_t)ca->ca_der_len, &cp.issuer, &cp.issuer_len,
                        &cp.ski, &cp.ski_len);
    if (rc != EXIT_SUCCESS)
        return rc;
    cp.this_update = from_epoch(now);
    cp.next_update = from_epoch(now + (time_t)days * 86400);

    WC_RNG rng;
    int ret = wc_InitRng(&rng);
    if (ret != 0)
        return wolf_fail("cannot start the random generator", ret);
    ret = wc_ecc_set_rng(key, &rng);
    if (ret != 0) {
        wc_FreeRng(&rng);
        return wolf_fail("cannot attach the random generator to the CA key", ret);
    }
    dbuf tbs = {0}, der = {0};
    unsigned char *pem = NULL;
    size_t revoked = 0;
    rc = take_crl_number(dir, &cp.number);
    if (rc == EXIT_SUCCESS) {
        crl_tbs(&tbs, idx, &cp, &revoked);
        rc = tbs.failed ? fail("cannot encode the CRL (out of memory)") : EXIT_SUCCESS;
    }
    if (rc == EXIT_SUCCESS)
        rc = crl_sign(&tbs, key, &rng, &der);
    if (rc == EXIT_SUCCESS) {
        /* Base64 grows by 4/3, plus a newline every 64 characters and the two armour lines. */
        size_t cap = der.len / 3 * 4 + der.len / 32 + 128;
        pem = malloc(cap);
        int pem_len = pem && der.len <= 0xffffffffu && cap <= 0x7fffffffu
                          ? wc_DerToPem(der.p, (word32)der.len, pem, (word32)cap, CRL_TYPE)
                          : MEMORY_E;
        if (pem_len <= 0)
            rc = wolf_fail("cannot encode the CRL as PEM", pem_len);
        else
            rc = write_atomic(dir, "crl.pem", pem, (size_t)pem_len, 0644, true);
    }
    if (rc == EXIT_SUCCESS) {
        char next[32];
        format_time(&cp.next_update, next, sizeof(next));
        printf("wrote %s/crl.pem: CRL number %" PRIu64 ", %zu revoked certificate%s, next update "
               "%s\n",
               dir, cp.number, revoked, revoked == 1 ? "" : "s", next);
    }
    free(pem);
    db_free(&tbs);
    db_free(&der);
    (void)wc_ecc_set_rng(key, NULL); /* the generator dies here; the key must not point at it */
    wc_FreeRng(&rng);
    return rc;
}

/* Shared tail of 'ca' and 'issue': a new key, its certificate, and OUT/BASE.{key,crt}. A NULL
 * signer means self-signed; a non-NULL record_ca is the CA directory whose index.txt records
 * the certificate. */
static int generate(cert_request *req, ecc_key *signer, const char *record_ca, const char *out,
                    const char *base, bool force)
{
    WC_RNG rng;
    ecc_key key;
    unsigned char der[CERT_DER_CAP];
    int der_len = 0, rc;

    int ret = wc_InitRng(&rng);
    if (ret != 0)
        return wolf_fail("cannot start the random generator", ret);
    ret = wc_ecc_init(&key);
    if (ret != 0) {
        wc_FreeRng(&rng);
        return wolf_fail("cannot initialise a key", ret);
    }
    rc = make_key(&rng, &key);
    if (rc == EXIT_SUCCESS && signer != NULL) {
        ret = wc_ecc_set_rng(signer, &rng);
        if (ret != 0)
            rc = wolf_fail("cannot attach the random generator to the CA key", ret);
    }
    if (rc == EXIT_SUCCESS) {
        /* The keys live in this frame only: a copy of the request carries them. */
        cert_request with_keys = *req;
        with_keys.subject_key = &key;
        with_keys.signer_key = signer ? signer : &key;
        rc = make_cert(&rng, &with_keys, der, sizeof(der), &der_len);
        /* What make_cert filled in (the serial) goes back; the key pointers do not. */
        with_keys.subject_key = NULL;
        with_keys.signer_key = NULL;
        *req = with_keys;
    }
    if (rc == EXIT_SUCCESS && record_ca != NULL)
        rc = record_issued(record_ca, req);
    if (rc == EXIT_SUCCESS)
        rc = make_dirs(out);
    if (rc == EXIT_SUCCESS)
        rc = write_key(out, base, &key, force);
    if (rc == EXIT_SUCCESS)
        rc = write_cert(out, base, der, der_len, force);
    if (rc == EXIT_SUCCESS)
        printf("wrote %s/%s.crt and %s/%s.key\n", out, base, out, base);

    wc_ecc_free(&key);
    wipe(&key, sizeof(key));
    wc_FreeRng(&rng);
    return rc;
}

/* --- commands ----------------------------------------------------------------------------- */

static int check_outputs(const char *out, const char *name, bool force)
{
    char path[4096];
    if (force)
        return EXIT_SUCCESS;
    static const char *const suffixes[2] = {".key", ".crt"};
    for (int i = 0; i < 2; i++) {
        if (!path_join(path, sizeof(path), out, "", name, suffixes[i]))
            return fail("--out path too long: %s", out);
        int rc = refuse_existing(path);
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
    const char *count_arg = NULL;
    bool self_signed = false, force = false, help = false;
    const opt_spec specs[] = {
        {"--ca", &ca, NULL},         {"--self-signed", NULL, &self_signed},
        {"--role", &role_arg, NULL}, {"--id", &id, NULL},
        {"--out", &out, NULL},       {"--not-before", &nb, NULL},
        {"--not-after", &na, NULL},  {"--force", NULL, &force},
        {"--count", &count_arg, NULL},
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
    if (id == NULL)
        return usage_error("issue: missing --id NAME");
    if (!valid_id(id)) {
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

    unsigned char ca_der[CERT_DER_CAP];
    ecc_key ca_key;
    int ret = wc_ecc_init(&ca_key);
    if (ret != 0)
        return wolf_fail("cannot initialise a key", ret);
    if (ca != NULL) {
        rc = load_ca(ca, ca_der, &req, &ca_key);
    }
    if (rc == EXIT_SUCCESS && ca != NULL && strcmp(id, "ca") == 0 && same_dir(ca, out))
        rc = fail("--id ca in the CA's own directory would replace the CA; choose another --out");
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
    wipe(&ca_key, sizeof(ca_key));
    return rc;
}

/* Seconds since the epoch of a UTC time, without timegm (not POSIX). */
static time_t epoch_of(const utc_time *t)
{
    long long days = 0;
    for (int y = 1970; y < t->year; y++)
        days += leap_year(y) ? 366 : 365;
    for (int y = t->year; y < 1970; y++)
        days -= leap_year(y) ? 366 : 365;
    for (int m = 1; m < t->mon; m++)
        days += days_in_month(t->year, m);
    days += t->day - 1;
    return (time_t)(days * 86400 + t->hour * 3600 + t->min * 60 + t->sec);
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
        if (!parse_date(this_update_arg, false, &t))
            return usage_error("--this-update '%s' is not a date YYYY-MM-DD", this_update_arg);
        *now = epoch_of(&t);
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
    char shown[20][NAME_MAX_LEN + 1];
    size_t n_shown = 0;
    bool more = false;
    fprintf(stderr, "  certificates recorded in %s/index.txt are issued to:", dir);
    for (size_t i = 0; i < idx->n; i++) {
        char cn[NAME_MAX_LEN + 1];
        subject_cn(idx->e[i].subject, cn, sizeof(cn));
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
    int rc = load_ca(dir, der, req, key);
    if (rc == EXIT_SUCCESS)
        rc = lock_ca(dir, lock);
    return rc;
}

static int cmd_revoke(int argc, char **argv)
{
    const char *ca = NULL, *id = NULL, *reason_arg = NULL, *days_arg = NULL, *tu_arg = NULL;
    bool help = false;
    const opt_spec specs[] = {
        {"--ca", &ca, NULL},
        {"--id", &id, NULL},
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
    if (id == NULL)
        return usage_error("revoke: missing --id NAME");
    if (!valid_id(id)) {
        return usage_error("--id '%s' is not allowed: use 1-64 characters from A-Z a-z 0-9 . _ "
                           "-, starting with a letter or digit",
                           id);
    }
    int reason = -1;
    if (reason_arg != NULL) {
        reason = reason_code(reason_arg, true);
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
    utc_time now_utc = from_epoch(now);
    if (!time_text(&now_utc, when))
        return fail("cannot encode the revocation date");
    snprintf(revoked_text, sizeof(revoked_text), "%s%s%s", when, reason_arg ? "," : "",
             reason_arg ? reason_arg : "");

    unsigned char ca_der[CERT_DER_CAP];
    cert_request req = {0};
    ecc_key key;
    int lock = -1;
    ca_index idx = {0};
    int ret = wc_ecc_init(&key);
    if (ret != 0)
        return wolf_fail("cannot initialise a key", ret);
    rc = open_ca(ca, ca_der, &req, &key, &lock);
    if (rc == EXIT_SUCCESS)
        rc = index_load(ca, &idx);
    size_t found = 0, newly = 0;
    if (rc == EXIT_SUCCESS) {
        for (size_t i = 0; i < idx.n; i++) {
            char cn[NAME_MAX_LEN + 1];
            index_entry *e = &idx.e[i];
            subject_cn(e->subject, cn, sizeof(cn));
            if (strcmp(cn, id) != 0)
                continue;
            found++;
            if (e->status == 'R') {
                utc_time at;
                int why;
                char at_text[32];
                if (!parse_revoked_field(e->revoked, &at, &why))
                    continue; /* index_load checked it */
                format_time(&at, at_text, sizeof(at_text));
                fprintf(stderr,
                        PROG ": note: %s (serial %s) was already revoked on %s%s%s; left "
                             "as it was\n",
                        id, e->serial, at_text, why >= 0 ? ", reason " : "",
                        why >= 0 ? strchr(e->revoked, ',') + 1 : "");
                continue;
            }
            /* A device re-issued with --force has several certificates: revoking the device
             * revokes them all, expired ones too (E), since a clock can be set back. */
            e->status = 'R';
            e->revoked = revoked_text;
            newly++;
            printf("revoked %s: serial %s\n", id, e->serial);
        }
        if (found == 0) {
            rc = fail("no certificate issued to '%s' is recorded in %s/index.txt; nothing was "
                      "revoked",
                      id, ca);
            list_names(ca, &idx);
        }
    }
    if (rc == EXIT_SUCCESS && newly > 0)
        rc = index_save(ca, &idx);
    if (rc == EXIT_SUCCESS)
        rc = write_crl(ca, &req, &key, &idx, now, days);
    index_free(&idx);
    unlock_ca(lock);
    wc_ecc_free(&key);
    wipe(&key, sizeof(key));
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
    int days;
    time_t now;
    rc = resolve_crl_times(days_arg, tu_arg, &days, &now);
    if (rc != EXIT_SUCCESS)
        return rc;

    unsigned char ca_der[CERT_DER_CAP];
    cert_request req = {0};
    ecc_key key;
    int lock = -1;
    ca_index idx = {0};
    int ret = wc_ecc_init(&key);
    if (ret != 0)
        return wolf_fail("cannot initialise a key", ret);
    rc = open_ca(ca, ca_der, &req, &key, &lock);
    if (rc == EXIT_SUCCESS)
        rc = index_load(ca, &idx);
    if (rc == EXIT_SUCCESS)
        rc = write_crl(ca, &req, &key, &idx, now, days);
    index_free(&idx);
    unlock_ca(lock);
    wc_ecc_free(&key);
    wipe(&key, sizeof(key));
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("missing command (ca, issue, revoke or crl)");
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        fputs(usage_text, stdout);
        fputs(ca_help, stdout);
        fputs(issue_help, stdout);
        fputs(revoke_help, stdout);
        fputs(crl_help, stdout);
        fputs(profile_help, stdout);
        return EXIT_SUCCESS;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("%s %s (wolfSSL %s)\n", PROG, MW_VERSION, LIBWOLFSSL_VERSION_STRING);
        return EXIT_SUCCESS;
    }
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } commands[] = {{"ca", cmd_ca}, {"issue", cmd_issue}, {"revoke", cmd_revoke}, {"crl", cmd_crl}};
    int (*run)(int, char **) = NULL;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(cmd, commands[i].name) == 0)
            run = commands[i].run;
    }
    if (run == NULL)
        return usage_error("unknown command '%s' (expected ca, issue, revoke or crl)", cmd);

    int ret = wolfCrypt_Init();
    if (ret != 0)
        return wolf_fail("cannot initialise wolfCrypt", ret);
    int rc = run(argc - 2, argv + 2);
    /* Frees the fixed-point ECC caches this build keeps (FP_ECC). */
    wolfCrypt_Cleanup();
    fflush(stdout);
    return rc;
}
