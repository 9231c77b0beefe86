/* SPDX-License-Identifier: Apache-2.0 */
/* p11.c -- a private key kept in a PKCS#11 token: the module, the token's session and login,
 * and the wolfCrypt device that signs with the key without it ever leaving the token. */
#ifndef WOLFSSL_USER_SETTINGS
#include <wolfssl/options.h> /* first: without it struct layouts differ from the library's */
#endif
#include <wolfssl/wolfcrypt/settings.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/cryptocb.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/wc_pkcs11.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/detail.h"
#include "core/p11_uri.h"
#include "core/wipe.h"
#include "dtls/p11.h"

/* (settings.h then defines WOLF_PRIVATE_KEY_ID, which wc_ecc_init_id and _label need.) */
#if !defined(HAVE_PKCS11) || !defined(WOLF_CRYPTO_CB)
#error "keys in PKCS#11 tokens need a wolfSSL built with PKCS#11 and crypto callbacks"
#endif

/* The PKCS#11 return values we explain; wolfSSL's pkcs11.h defines few of them. */
#define RV_PIN_INCORRECT            0xA0UL
#define RV_PIN_INVALID              0xA1UL
#define RV_PIN_LEN_RANGE            0xA2UL
#define RV_PIN_EXPIRED              0xA3UL
#define RV_PIN_LOCKED               0xA4UL
#define RV_USER_ALREADY_LOGGED_IN   0x100UL
#define RV_USER_PIN_NOT_INITIALIZED 0x102UL

/* wolfCrypt holds few devices (MAX_CRYPTO_DEVID_CALLBACKS, 8 in this build); we take at most
 * four, with ids of our own ("mw" and the slot). */
#define DEV_SLOTS   4
#define DEV_ID_BASE 0x6d770000
#define MODULES_MAX 4

/* A module is initialised once per process (a second C_Initialize fails, and C_Finalize
 * ends every user's sessions): the contexts that use it share it, counted. */
typedef struct module {
    char path[MWI_P11_PATH_MAX];
    Pkcs11Dev dev;
    int refs;
} module;

static module modules[MODULES_MAX];
static bool dev_used[DEV_SLOTS];
/* Contexts may be made on several threads; the tables are short and held briefly. */
static atomic_flag table_lock = ATOMIC_FLAG_INIT;

static void lock_take(void)
{
    while (atomic_flag_test_and_set_explicit(&table_lock, memory_order_acquire)) {
    }
}

static void lock_give(void)
{
    atomic_flag_clear_explicit(&table_lock, memory_order_release);
}

struct mwi_p11_key {
    module *mod;
    Pkcs11Token token; /* wolfCrypt's device context: its session is ours */
    bool session;
    int dev_slot; /* -1: none registered */
    char label[MWI_P11_LABEL_MAX + 1];
    bool by_id;
    uint8_t id[MWI_P11_ID_MAX];
    size_t id_len;
    char name[100];
};

static mw_err module_get(const char *path, const char *name, module **out, mw_error_detail_t *d)
{
    lock_take();
    module *spare = NULL;
    for (int i = 0; i < MODULES_MAX; i++) {
        if (modules[i].refs > 0 && strcmp(modules[i].path, path) == 0) {
            modules[i].refs++;
            *out = &modules[i];
            lock_give();
            return MW_OK;
        }
        if (modules[i].refs == 0 && spare == NULL)
            spare = &modules[i];
    }
    if (spare == NULL) {
        lock_give();
        return mwi_detail_firstf(d, MW_EFULL, 0,
                                 "key %.60s: this process already uses 4 PKCS#11 modules", name);
    }
    CK_RV rv = 0;
    memset(&spare->dev, 0, sizeof spare->dev);
    int rc = wc_Pkcs11_Initialize_ex(&spare->dev, path, NULL, &rv);
    if (rc != 0) {
        lock_give();
        if (rc == BAD_PATH_ERROR)
            return mwi_detail_firstf(d, MW_ECERT_LOAD, rc,
                                     "key %.50s: cannot load PKCS#11 module '%.50s': check "
                                     "module-path",
                                     name, path);
        return mwi_detail_firstf(d, MW_ECERT_LOAD, rc,
                                 "key %.50s: PKCS#11 module '%.40s' did not start (CK_RV 0x%lx); "
                                 "check its configuration (SOFTHSM2_CONF for SoftHSM)",
                                 name, path, (unsigned long)rv);
    }
    snprintf(spare->path, sizeof spare->path, "%s", path);
    spare->refs = 1;
    *out = spare;
    lock_give();
    return MW_OK;
}

static void module_put(module *m)
{
    lock_take();
    if (--m->refs == 0) {
        wc_Pkcs11_Finalize(&m->dev);
        memset(m, 0, sizeof *m);
    }
    lock_give();
}

/* The slot whose token is labelled exactly @p label (PKCS#11 pads labels with spaces).
 * wolfSSL 5.5.4's own search by name takes slot indexes for slot ids and matches prefixes,
 * which finds nothing in SoftHSM (whose ids are large) and "med" in "medwire". */
static bool find_slot(const module *m, const char *label, CK_SLOT_ID *out)
{
    CK_ULONG n = 0;
    if (m->dev.func->C_GetSlotList(CK_TRUE, NULL, &n) != CKR_OK || n == 0 || n > 1024)
        return false;
    CK_SLOT_ID *slots = calloc(n, sizeof *slots);
    if (slots == NULL)
        return false;
    char want[32];
    size_t len = strlen(label);
    memset(want, ' ', sizeof want);
    memcpy(want, label, len < sizeof want ? len : sizeof want);
    bool found = false;
    if (m->dev.func->C_GetSlotList(CK_TRUE, slots, &n) == CKR_OK) {
        for (CK_ULONG i = 0; i < n && !found; i++) {
            CK_TOKEN_INFO info;
            memset(&info, 0, sizeof info);
            if (m->dev.func->C_GetTokenInfo(slots[i], &info) == CKR_OK &&
                memcmp(info.label, want, sizeof want) == 0) {
                *out = slots[i];
                found = true;
            }
        }
    }
    free(slots);
    return found;
}

/* The first line of the pin-source file into @p pin. */
static mw_err read_pin(const char *path, const char *name, char pin[MWI_P11_PIN_MAX + 1],
                       mw_error_detail_t *d)
{
    char buf[MWI_P11_PIN_MAX + 3];
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return mwi_detail_firstf(d, MW_ECONFIG, 0,
                                 "key %.60s: cannot read the PIN file '%.60s' (pin-source)", name,
                                 path);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    bool bad = ferror(f) != 0;
    fclose(f);
    buf[n] = '\0';
    size_t line = strcspn(buf, "\r\n");
    mw_err e = MW_OK;
    if (bad || line > MWI_P11_PIN_MAX || line == 0 || strlen(buf) < n)
        e = mwi_detail_firstf(d, MW_ECONFIG, 0,
                              "key %.60s: the PIN file '%.50s' must hold the PIN on its first "
                              "line (1-128 bytes)",
                              name, path);
    else {
        memcpy(pin, buf, line);
        pin[line] = '\0';
    }
    mwi_wipe(buf, sizeof buf);
    return e;
}

static mw_err login(mwi_p11_key *k, CK_SLOT_ID slot, char *pin, mw_error_detail_t *d)
{
    CK_FUNCTION_LIST *f = k->mod->dev.func;
    CK_SESSION_HANDLE h = 0;
    CK_RV rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h);
    if (rv != CKR_OK)
        return mwi_detail_firstf(d, MW_ECERT_LOAD, 0,
                                 "key %.60s: cannot open a session with the token (CK_RV 0x%lx)",
                                 k->name, (unsigned long)rv);
    k->token.handle = h;
    k->session = true;
    if (pin[0] == '\0')
        return MW_OK;
    rv = f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)strlen(pin));
    if (rv == CKR_OK || rv == RV_USER_ALREADY_LOGGED_IN)
        return MW_OK;
    const char *why = rv == RV_PIN_INCORRECT || rv == RV_PIN_INVALID || rv == RV_PIN_LEN_RANGE
                          ? "the PIN is wrong; check pin-value or the pin-source file"
                      : rv == RV_PIN_LOCKED  ? "the PIN is locked; the token's SO must unlock it"
                      : rv == RV_PIN_EXPIRED ? "the PIN has expired; set a new one"
                      : rv == RV_USER_PIN_NOT_INITIALIZED ? "the token has no user PIN yet"
                                                          : "login refused";
    return mwi_detail_firstf(d, MW_ECERT_LOAD, 0, "key %.60s: %s (CK_RV 0x%lx)", k->name, why,
                             (unsigned long)rv);
}

mw_err mwi_p11_key_open(const char *uri, mwi_p11_key **out, mw_error_detail_t *d)
{
    if (out == NULL)
        return mwi_detail_fail(d, MW_EINVAL, "no key output given");
    *out = NULL;
    mwi_p11_uri *u = calloc(1, sizeof *u);
    mwi_p11_key *k = calloc(1, sizeof *k);
    if (u == NULL || k == NULL) {
        free(u);
        free(k);
        return mwi_detail_fail(d, MW_ENOMEM, "out of memory");
    }
    k->dev_slot = -1;
    mw_err e = mwi_p11_uri_parse(uri, u, d);
    if (e != MW_OK)
        goto fail;
    /* What messages name: the URI up to its query, which holds the PIN. */
    size_t path_len = strcspn(uri, "?");
    snprintf(k->name, sizeof k->name, "%.*s", (int)(path_len < 99 ? path_len : 99), uri);
    memcpy(k->label, u->object, sizeof k->label);
    k->by_id = u->has_id;
    memcpy(k->id, u->id, u->id_len);
    k->id_len = u->id_len;
    if (u->has_pin_source && (e = read_pin(u->pin_source, k->name, u->pin, d)) != MW_OK)
        goto fail;
    if ((e = module_get(u->module_path, k->name, &k->mod, d)) != MW_OK)
        goto fail;
    CK_SLOT_ID slot = 0;
    if (!find_slot(k->mod, u->token, &slot)) {
        e = mwi_detail_firstf(d, MW_ECERT_LOAD, 0,
                              "key %.60s: the module has no token labelled '%.32s'; check token= "
                              "(softhsm2-util --show-slots lists them)",
                              k->name, u->token);
        goto fail;
    }
    /* The token context wolfCrypt's device callback reads (wc_pkcs11.h): the module's functions,
     * the slot, and (set by login) our session; no PIN, as the session is logged in already.
     * wc_Pkcs11Token_Init cannot be given the slot: it takes an int and looks names up wrongly. */
    k->token.func = k->mod->dev.func;
    k->token.slotId = slot;
    if ((e = login(k, slot, u->pin, d)) != MW_OK)
        goto fail;
    mwi_p11_uri_wipe(u); /* the PIN is no longer needed: the session stays logged in */
    lock_take();
    for (int i = 0; i < DEV_SLOTS && k->dev_slot < 0; i++) {
        if (!dev_used[i]) {
            dev_used[i] = true;
            k->dev_slot = i;
        }
    }
    lock_give();
    if (k->dev_slot < 0) {
        e = mwi_detail_firstf(d, MW_EFULL, 0, "key %.60s: this process already uses 4 token keys",
                              k->name);
        goto fail;
    }
    int rc = wc_CryptoCb_RegisterDevice(mwi_p11_key_dev_id(k), wc_Pkcs11_CryptoDevCb, &k->token);
    if (rc != 0) {
        lock_take();
        dev_used[k->dev_slot] = false;
        lock_give();
        k->dev_slot = -1;
        e = mwi_detail_firstf(d, MW_EINTERNAL, rc,
                              "key %.60s: wolfCrypt has no room for another device (%d)", k->name,
                              rc);
        goto fail;
    }
    free(u);
    *out = k;
    return MW_OK;
fail:
    mwi_p11_uri_wipe(u);
    free(u);
    mwi_p11_key_close(&k);
    return e;
}

void mwi_p11_key_close(mwi_p11_key **pk)
{
    if (pk == NULL || *pk == NULL)
        return;
    mwi_p11_key *k = *pk;
    *pk = NULL;
    if (k->dev_slot >= 0) {
        wc_CryptoCb_UnRegisterDevice(mwi_p11_key_dev_id(k));
        lock_take();
        dev_used[k->dev_slot] = false;
        lock_give();
    }
    /* Our session only: wc_Pkcs11Token_Final closes every session on the slot, those of
     * another context of this process too (a gateway keeps the old one while it reloads). */
    if (k->session)
        wc_Pkcs11Token_Close(&k->token);
    if (k->mod != NULL)
        module_put(k->mod);
    mwi_wipe(k, sizeof *k);
    free(k);
}

int mwi_p11_key_dev_id(const mwi_p11_key *k)
{
    return DEV_ID_BASE + k->dev_slot;
}

const char *mwi_p11_key_label(const mwi_p11_key *k)
{
    return k->by_id ? NULL : k->label;
}

const uint8_t *mwi_p11_key_id(const mwi_p11_key *k, size_t *out_len)
{
    *out_len = k->by_id ? k->id_len : 0;
    return k->by_id ? k->id : NULL;
}

const char *mwi_p11_key_name(const mwi_p11_key *k)
{
    return k->name;
}

int mwi_p11_key_ecc_init(const mwi_p11_key *k, ecc_key *out_key)
{
    if (k->by_id) {
        unsigned char id[MWI_P11_ID_MAX];
        memcpy(id, k->id, k->id_len);
        return wc_ecc_init_id(out_key, id, (int)k->id_len, NULL, mwi_p11_key_dev_id(k));
    }
    return wc_ecc_init_label(out_key, k->label, NULL, mwi_p11_key_dev_id(k));
}

mw_err mwi_p11_key_check(const mwi_p11_key *k, const uint8_t *spki, size_t spki_len,
                         const char *cert_file, mw_error_detail_t *d)
{
    WC_RNG rng;
    ecc_key priv, pub;
    uint8_t digest[32], sig[ECC_MAX_SIG_SIZE];
    word32 sig_len = sizeof sig, idx = 0;
    int verified = 0;
    if (wc_InitRng(&rng) != 0)
        return mwi_detail_fail(d, MW_EINTERNAL, "cannot start the random generator");
    mw_err e = MW_OK;
    int rc = wc_RNG_GenerateBlock(&rng, digest, sizeof digest);
    bool have_priv = rc == 0 && mwi_p11_key_ecc_init(k, &priv) == 0;
    if (have_priv)
        rc = wc_ecc_sign_hash(digest, sizeof digest, sig, &sig_len, &rng, &priv);
    if (!have_priv || rc != 0) {
        e = mwi_detail_firstf(d, MW_ECERT_LOAD, rc,
                              "key %.60s: the token has no such private key or cannot sign with "
                              "it (%d); list its keys with pkcs11-tool --list-objects",
                              k->name, rc);
    } else if (wc_ecc_init(&pub) != 0) {
        e = mwi_detail_fail(d, MW_ENOMEM, "out of memory");
    } else {
        if (wc_EccPublicKeyDecode(spki, &idx, &pub, (word32)spki_len) != 0 ||
            wc_ecc_verify_hash(sig, sig_len, digest, sizeof digest, &verified, &pub) != 0 ||
            verified != 1)
            e = mwi_detail_firstf(d, MW_ECERT_LOAD, 0,
                                  "key %.60s does not match the certificate %.48s: give the "
                                  "token key the certificate was issued for",
                                  k->name, cert_file);
        wc_ecc_free(&pub);
    }
    if (have_priv)
        wc_ecc_free(&priv);
    wc_FreeRng(&rng);
    return e;
}

mw_err mwi_p11_key_point(const mwi_p11_key *k, uint8_t out[MWI_P11_POINT_LEN], mw_error_detail_t *d)
{
    CK_FUNCTION_LIST *f = k->token.func;
    CK_SESSION_HANDLE h = k->token.handle;
    CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
    /* The public key object has the private key's id, or its label. */
    unsigned char name[MWI_P11_LABEL_MAX + 1];
    size_t name_len = k->by_id ? k->id_len : strlen(k->label);
    memcpy(name, k->by_id ? k->id : (const uint8_t *)k->label, name_len);
    CK_ATTRIBUTE find[2] = {
        {CKA_CLASS, &cls, sizeof cls},
        {k->by_id ? CKA_ID : CKA_LABEL, name, (CK_ULONG)name_len},
    };
    CK_OBJECT_HANDLE obj = 0;
    CK_ULONG count = 0;
    uint8_t point[80];
    CK_ATTRIBUTE get = {CKA_EC_POINT, point, sizeof point};
    bool ok = f->C_FindObjectsInit(h, find, 2) == CKR_OK;
    if (ok) {
        ok = f->C_FindObjects(h, &obj, 1, &count) == CKR_OK && count == 1;
        (void)f->C_FindObjectsFinal(h);
    }
    if (!ok)
        return mwi_detail_firstf(d, MW_ECERT_LOAD, 0,
                                 "key %.60s: the token has no public key of that name beside the "
                                 "private one; make the key pair in the token",
                                 k->name);
    /* CKA_EC_POINT is the DER OCTET STRING of the point (some tokens give the bare point). */
    const uint8_t *p = NULL;
    if (f->C_GetAttributeValue(h, obj, &get, 1) == CKR_OK) {
        if (get.ulValueLen == MWI_P11_POINT_LEN + 2 && point[0] == 0x04 &&
            point[1] == MWI_P11_POINT_LEN)
            p = point + 2;
        else if (get.ulValueLen == MWI_P11_POINT_LEN)
            p = point;
    }
    ecc_key key;
    bool on_curve = false;
    if (p != NULL && p[0] == 0x04 && wc_ecc_init(&key) == 0) {
        on_curve = wc_ecc_import_x963_ex(p, MWI_P11_POINT_LEN, &key, ECC_SECP256R1) == 0 &&
                   wc_ecc_check_key(&key) == 0;
        wc_ecc_free(&key);
    }
    if (!on_curve)
        return mwi_detail_firstf(d, MW_ECERT_LOAD, 0,
                                 "key %.60s: its public key is not an ECDSA P-256 point, the "
                                 "protocol's only curve",
                                 k->name);
    memcpy(out, p, MWI_P11_POINT_LEN);
    return MW_OK;
}
