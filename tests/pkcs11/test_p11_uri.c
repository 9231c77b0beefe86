/* SPDX-License-Identifier: Apache-2.0 */
/* test_p11_uri.c -- the RFC 7512 key URI: what is taken, what is refused and in which words,
 * and that no refusal or shown URI carries the PIN. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/p11_uri.h"

#define MOD "?module-path=/usr/lib/softhsm/libsofthsm2.so"

static mw_err parse(const char *uri, mwi_p11_uri *u, mw_error_detail_t *d)
{
    memset(d, 0, sizeof *d);
    return mwi_p11_uri_parse(uri, u, d);
}

/* Refused with MW_ECONFIG and a reason holding @p words; the output is wiped. */
static void refused(const char *uri, const char *words)
{
    mwi_p11_uri u;
    mw_error_detail_t d;
    memset(&u, 0x55, sizeof u);
    cr_assert_eq(parse(uri, &u, &d), MW_ECONFIG, "accepted: %s", uri);
    cr_assert_eq(d.err, MW_ECONFIG);
    cr_assert(strstr(d.reason, words) != NULL, "for %s: '%s' lacks '%s'", uri, d.reason, words);
    cr_assert(strstr(d.reason, "s3cret") == NULL, "the PIN is shown: %s", d.reason);
    static const mwi_p11_uri zero;
    cr_assert(memcmp(&u, &zero, sizeof u) == 0, "not wiped after refusing %s", uri);
}

Test(p11_uri, a_full_uri_is_taken_apart)
{
    mwi_p11_uri u;
    mw_error_detail_t d;
    cr_assert_eq(
        parse("pkcs11:token=medwire;object=dev1;type=private" MOD "&pin-value=1234", &u, &d), MW_OK,
        "%s", d.reason);
    cr_assert_str_eq(u.token, "medwire");
    cr_assert_str_eq(u.object, "dev1");
    cr_assert(u.has_object && !u.has_id && u.has_pin_value && !u.has_pin_source);
    cr_assert_str_eq(u.module_path, "/usr/lib/softhsm/libsofthsm2.so");
    cr_assert_str_eq(u.pin, "1234");
    mwi_p11_uri_wipe(&u);
    cr_assert_eq(u.pin[0], '\0');
}

Test(p11_uri, percent_encoding_is_decoded_in_every_value)
{
    mwi_p11_uri u;
    mw_error_detail_t d;
    cr_assert_eq(parse("PKCS11:token=my%20token;id=%00%01%fF%7e?module-path=/opt/p%2511.so"
                       "&pin-source=file:///etc/medwire/pin",
                       &u, &d),
                 MW_OK, "%s", d.reason);
    cr_assert_str_eq(u.token, "my token");
    cr_assert(u.has_id && !u.has_object);
    cr_assert_eq(u.id_len, 4);
    const uint8_t id[4] = {0x00, 0x01, 0xff, 0x7e};
    cr_assert_arr_eq(u.id, id, 4);
    cr_assert_str_eq(u.module_path, "/opt/p%11.so");
    cr_assert_str_eq(u.pin_source, "/etc/medwire/pin");
    cr_assert(u.has_pin_source && !u.has_pin_value);
    cr_assert_eq(parse("pkcs11:token=t;object=k" MOD "&pin-source=file:/run/pin", &u, &d), MW_OK);
    cr_assert_str_eq(u.pin_source, "/run/pin");
    cr_assert_eq(parse("pkcs11:token=t;object=k" MOD, &u, &d), MW_OK);
    cr_assert(!u.has_pin_value && !u.has_pin_source && u.pin[0] == '\0');
}

Test(p11_uri, only_pkcs11_uris_are_uris)
{
    cr_assert(mwi_p11_is_uri("pkcs11:token=a"));
    cr_assert(mwi_p11_is_uri("PkCs11:"));
    cr_assert(!mwi_p11_is_uri("pkcs11"));
    cr_assert(!mwi_p11_is_uri("pkcs1:"));
    cr_assert(!mwi_p11_is_uri("./pkcs11:key.pem"));
    cr_assert(!mwi_p11_is_uri(""));
    cr_assert(!mwi_p11_is_uri(NULL));
    refused("/etc/medwire/key.pem", "does not start with 'pkcs11:'");
}

Test(p11_uri, unknown_and_repeated_attributes_are_refused_by_name)
{
    refused("pkcs11:token=t;object=k;slot-id=3" MOD, "attribute 'slot-id' is unknown");
    refused("pkcs11:token=t;object=k" MOD "&module-name=softhsm2", "'module-name' is unknown");
    refused("pkcs11:token=t;token=u;object=k" MOD, "attribute 'token' is given more than once");
    refused("pkcs11:token=t;object=k" MOD "&pin-value=s3cret&pin-value=s3cret",
            "'pin-value' is given more than once");
    refused("pkcs11:token=t;object=k" MOD "&module-path=/x.so", "'module-path' is given more");
    refused("pkcs11:token=t;object=k;module-path=/x.so", "'module-path' belongs after the '?'");
    refused("pkcs11:token=t" MOD "&object=k", "'object' belongs before the '?'");
    refused("pkcs11:token=t;object" MOD, "'object' has no value");
    refused("pkcs11:token=t;object=" MOD, "'object' has no value");
    refused("pkcs11:token=t;object=k;type=cert" MOD, "'type' has a type other than 'private'");
    /* An unknown name is shown printable and cut, never as the bytes it was. */
    refused("pkcs11:to\x01ken=t;object=k" MOD, "attribute 'to?ken' is unknown");
}

Test(p11_uri, bad_percent_encoding_and_bytes_are_refused)
{
    refused("pkcs11:token=t%2;object=k" MOD, "'token' has a '%' not followed by two hex");
    refused("pkcs11:token=t%;object=k" MOD, "'token' has a '%'");
    refused("pkcs11:token=t%g0;object=k" MOD, "'token' has a '%'");
    refused("pkcs11:token=t;id=%0" MOD, "'id' has a '%'");
    refused("pkcs11:token=t;object=k" MOD "&pin-value=s3cret%", "'pin-value' has a '%'");
    refused("pkcs11:token=a b;object=k" MOD, "'token' has a character that must be percent-enc");
    refused("pkcs11:token=a/b;object=k" MOD, "'token' has a character that must be percent-enc");
    refused("pkcs11:token=t;object=k%00x" MOD, "'object' has a control character");
    refused("pkcs11:token=t;object=k%0a" MOD, "'object' has a control character");
    refused("pkcs11:token=t;object=k" MOD "&pin-value=s3cret%7f", "'pin-value' has a control");
    /* A NUL is an id byte like any other. */
    mwi_p11_uri u;
    mw_error_detail_t d;
    cr_assert_eq(parse("pkcs11:token=t;id=%00" MOD, &u, &d), MW_OK);
    cr_assert_eq(u.id_len, 1);
    cr_assert_eq(u.id[0], 0);
}

Test(p11_uri, every_value_is_bounded_to_its_field)
{
    char uri[2048], v[400];
    mwi_p11_uri u;
    mw_error_detail_t d;
    /* 32 bytes is a whole token label; 33 is one too many. */
    memset(v, 'a', 32);
    v[32] = '\0';
    snprintf(uri, sizeof uri, "pkcs11:token=%s;object=k" MOD, v);
    cr_assert_eq(parse(uri, &u, &d), MW_OK, "%s", d.reason);
    cr_assert_eq(strlen(u.token), 32);
    snprintf(uri, sizeof uri, "pkcs11:token=%sa;object=k" MOD, v);
    refused(uri, "'token' has a value that is too long");
    /* The limit is on decoded bytes: 32 of them written as %61 still fit. */
    char enc[200] = "";
    for (int i = 0; i < 32; i++)
        strcat(enc, "%61");
    snprintf(uri, sizeof uri, "pkcs11:token=%s;object=k" MOD, enc);
    cr_assert_eq(parse(uri, &u, &d), MW_OK, "%s", d.reason);
    cr_assert_str_eq(u.token, v);
    /* id: 64 bytes. */
    char id[400] = "";
    for (int i = 0; i < MWI_P11_ID_MAX; i++)
        strcat(id, "%ab");
    snprintf(uri, sizeof uri, "pkcs11:token=t;id=%s" MOD, id);
    cr_assert_eq(parse(uri, &u, &d), MW_OK, "%s", d.reason);
    cr_assert_eq(u.id_len, MWI_P11_ID_MAX);
    snprintf(uri, sizeof uri, "pkcs11:token=t;id=%s%%ab" MOD, id);
    refused(uri, "'id' has a value that is too long");
    /* object: 128; PIN: 128; paths: 255. */
    memset(v, 'o', MWI_P11_LABEL_MAX + 1);
    v[MWI_P11_LABEL_MAX + 1] = '\0';
    snprintf(uri, sizeof uri, "pkcs11:token=t;object=%s" MOD, v);
    refused(uri, "'object' has a value that is too long");
    v[MWI_P11_LABEL_MAX] = '\0';
    snprintf(uri, sizeof uri, "pkcs11:token=t;object=%s" MOD, v);
    cr_assert_eq(parse(uri, &u, &d), MW_OK, "%s", d.reason);
    memset(v, '7', MWI_P11_PIN_MAX + 1);
    v[MWI_P11_PIN_MAX + 1] = '\0';
    snprintf(uri, sizeof uri, "pkcs11:token=t;object=k" MOD "&pin-value=%s", v);
    refused(uri, "'pin-value' has a value that is too long");
    memset(v, 'p', MWI_P11_PATH_MAX);
    v[0] = '/';
    v[MWI_P11_PATH_MAX] = '\0';
    snprintf(uri, sizeof uri, "pkcs11:token=t;object=k?module-path=%s", v);
    refused(uri, "'module-path' has a value that is too long");
    v[MWI_P11_PATH_MAX - 1] = '\0';
    snprintf(uri, sizeof uri, "pkcs11:token=t;object=k?module-path=%s", v);
    cr_assert_eq(parse(uri, &u, &d), MW_OK, "%s", d.reason);
    /* And the URI as a whole. */
    char big[MWI_P11_URI_MAX + 2];
    memset(big, 'a', sizeof big);
    memcpy(big, "pkcs11:token=", 13);
    big[sizeof big - 1] = '\0';
    refused(big, "longer than 1024 characters");
}

Test(p11_uri, what_a_key_needs_is_required)
{
    refused("pkcs11:object=k" MOD, "attribute token (the token's label) is required");
    refused("pkcs11:token=t" MOD, "attribute object or id");
    refused("pkcs11:token=t;object=k", "attribute module-path");
    refused("pkcs11:token=t;object=k?module-path=softhsm2.so", "has a relative path");
    refused("pkcs11:token=t;object=k" MOD "&pin-value=s3cret&pin-source=/p",
            "give pin-value or pin-source, not both");
    refused("pkcs11:token=t;object=k" MOD "&pin-source=file://", "'pin-source' has no file name");
    refused("pkcs11:", "attribute token");
    refused("pkcs11:;token=t;object=k" MOD, "an empty attribute");
    refused("pkcs11:token=t;;object=k" MOD, "an empty attribute");
    refused("pkcs11:token=t;object=k;" MOD, "an empty attribute");
    refused("pkcs11:token=t;object=k" MOD "&", "an empty attribute");
    refused("pkcs11:token=t;object=k?", "nothing after the '?'");
}

Test(p11_uri, the_shown_uri_never_holds_the_pin)
{
    char out[256];
    mwi_p11_uri_shown("pkcs11:token=t;object=k" MOD "&pin-value=s3cret&pin-source=/x", out,
                      sizeof out);
    cr_assert_str_eq(out, "pkcs11:token=t;object=k" MOD "&pin-value=***&pin-source=/x");
    mwi_p11_uri_shown("pkcs11:token=t;object=k?pin-value=s3cret", out, sizeof out);
    cr_assert_str_eq(out, "pkcs11:token=t;object=k?pin-value=***");
    /* Cut to fit, still without the PIN; a "pin-value=" inside another value is left alone. */
    mwi_p11_uri_shown("pkcs11:token=t;object=k?pin-value=s3cret", out, 20);
    cr_assert_str_eq(out, "pkcs11:token=t;obje");
    mwi_p11_uri_shown("pkcs11:object=pin-value=x", out, sizeof out);
    cr_assert_str_eq(out, "pkcs11:object=pin-value=x");
    mwi_p11_uri_shown("pkcs11:token=\x01"
                      "a",
                      out, sizeof out);
    cr_assert_str_eq(out, "pkcs11:token=?a");
    mwi_p11_uri_shown(NULL, out, sizeof out);
    cr_assert_str_eq(out, "");
}
