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
 */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
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
} cert_request;

static const char usage_text[] =
    "usage: " PROG " ca --out DIR [--name CN] [--not-before DATE] [--not-after DATE] [--force]\n"
    "       " PROG " issue (--ca DIR | --self-signed) --role device|gateway --id NAME\n"
    "                   --out DIR [--not-before DATE] [--not-after DATE] [--force]\n"
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
    "  --force            replace DIR/NAME.crt and DIR/NAME.key if they exist\n";

static const char profile_help[] =
    "\n"
    "Certificate profile: ECDSA P-256 keys, ecdsa-with-SHA256, X.509 v3, 16-byte random\n"
    "serial, subject O=medwire, CN=NAME. CA: basicConstraints CA:TRUE (critical), keyUsage\n"
    "keyCertSign,cRLSign. Device and gateway: CA:FALSE, keyUsage digitalSignature, SKI, AKI.\n"
    "Keys are SEC1 PEM (\"EC PRIVATE KEY\") with mode 0600; certificates PEM with mode 0644.\n"
    "Files are replaced atomically; existing ones are kept unless --force is given.\n"
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
    memcpy(p + 11, value, n);
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
    size_t n = 0;
    memset(dst, 0, cap);
    n += put_rdn(dst + n, 0x0a, "medwire"); /* organizationName */
    n += put_rdn(dst + n, 0x03, cn);        /* commonName */
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
    strcpy(path, dir);
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

static int make_cert(WC_RNG *rng, const cert_request *req, unsigned char *der, int cap,
                     int *out_len)
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
    rc = EXIT_FAILURE;

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

/* Shared tail of both commands: a new key, its certificate, and OUT/BASE.{key,crt}. A NULL
 * signer means self-signed. */
static int generate(cert_request *req, ecc_key *signer, const char *out, const char *base,
                    bool force)
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
        req->subject_key = &key;
        req->signer_key = signer ? signer : &key;
        rc = make_cert(&rng, req, der, sizeof(der), &der_len);
    }
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
    return generate(&req, NULL, out, "ca", force);
}

static int cmd_issue(int argc, char **argv)
{
    const char *ca = NULL, *role_arg = NULL, *id = NULL, *out = NULL, *nb = NULL, *na = NULL;
    bool self_signed = false, force = false, help = false;
    const opt_spec specs[] = {
        {"--ca", &ca, NULL},         {"--self-signed", NULL, &self_signed},
        {"--role", &role_arg, NULL}, {"--id", &id, NULL},
        {"--out", &out, NULL},       {"--not-before", &nb, NULL},
        {"--not-after", &na, NULL},  {"--force", NULL, &force},
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
    if (rc == EXIT_SUCCESS)
        rc = check_outputs(out, id, force);
    if (rc == EXIT_SUCCESS)
        rc = generate(&req, ca != NULL ? &ca_key : NULL, out, id, force);
    wc_ecc_free(&ca_key);
    wipe(&ca_key, sizeof(ca_key));
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("missing command (ca or issue)");
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        fputs(usage_text, stdout);
        fputs(ca_help, stdout);
        fputs(issue_help, stdout);
        fputs(profile_help, stdout);
        return EXIT_SUCCESS;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("%s %s (wolfSSL %s)\n", PROG, MW_VERSION, LIBWOLFSSL_VERSION_STRING);
        return EXIT_SUCCESS;
    }
    if (strcmp(cmd, "ca") != 0 && strcmp(cmd, "issue") != 0)
        return usage_error("unknown command '%s' (expected ca or issue)", cmd);

    int ret = wolfCrypt_Init();
    if (ret != 0)
        return wolf_fail("cannot initialise wolfCrypt", ret);
    int rc = strcmp(cmd, "ca") == 0 ? cmd_ca(argc - 2, argv + 2) : cmd_issue(argc - 2, argv + 2);
    /* Frees the fixed-point ECC caches this build keeps (FP_ECC). */
    wolfCrypt_Cleanup();
    fflush(stdout);
    return rc;
}
