/* SPDX-License-Identifier: Apache-2.0 */
/* test_associations.c -- the gateway's --associations file: what it accepts, the FILE:LINE
 * sentence for each kind of mistake, and the atomic write-back of run-time changes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "associations.h"
#include "support/proc.h"

/* Writes @p text to a new file in a fresh directory; its path in a static buffer. */
static const char *file_with(const char *text)
{
    static char path[400];
    snprintf(path, sizeof path, "%s/assoc.tsv", mwt_tmpdir());
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    return path;
}

/* Loads @p text, which must be refused, and returns the sentence without the path. */
static const char *refused(const char *text)
{
    static char why[ASSOC_WHY_MAX];
    associations_t a;
    const char *path = file_with(text);
    cr_assert_not(associations_load(&a, path, why, sizeof why), "accepted:\n%s", text);
    cr_expect_eq(a.n, 0u);
    cr_expect_null(a.v);
    size_t n = strlen(path);
    cr_assert(strncmp(why, path, n) == 0 && why[n] == ':', "names the file: %s", why);
    return why + n + 1;
}

Test(associations, a_good_file)
{
    char why[ASSOC_WHY_MAX] = "";
    associations_t a;
    const char *path = file_with("# device\tpatient\tname\tbed\n"
                                 "\n"
                                 "   \t \n"
                                 "oxi-7\tMRN0001\tDoe^Jane\tICU^12^B\n"
                                 "pump.2\tMRN0002\tSmith\tWARD-3\r\n"
                                 "ecg_9\tMRN0003\t\t\n"
                                 "bp-1\tMRN0004\tMüller^Zoë\tICU^^\n"
                                 "last\tMRN0005\tRoe^Ann\tER^1^2");
    cr_assert(associations_load(&a, path, why, sizeof why), "%s", why);
    cr_expect_eq(a.n, 5u);
    const association_t *x = associations_find(&a, "oxi-7");
    cr_assert_not_null(x);
    cr_expect_str_eq(x->patient_id, "MRN0001");
    cr_expect_str_eq(x->patient_name, "Doe^Jane");
    cr_expect_str_eq(x->location, "ICU^12^B");
    cr_expect_eq(x->line, 4u);
    x = associations_find(&a, "pump.2");
    cr_assert_not_null(x);
    cr_expect_str_eq(x->patient_name, "Smith");
    cr_expect_str_eq(x->location, "WARD-3", "a CR before the LF is not part of the field");
    x = associations_find(&a, "ecg_9");
    cr_assert_not_null(x);
    cr_expect_str_eq(x->patient_name, "");
    cr_expect_str_eq(x->location, "");
    x = associations_find(&a, "bp-1");
    cr_assert_not_null(x);
    cr_expect_str_eq(x->patient_name, "Müller^Zoë");
    cr_expect_str_eq(x->location, "ICU", "empty components at the end are dropped");
    x = associations_find(&a, "last");
    cr_assert_not_null(x, "a last line without LF");
    cr_expect_str_eq(x->location, "ER^1^2");
    cr_expect_null(associations_find(&a, "oxi-8"));
    cr_expect_null(associations_find(&a, "oxi"));
    cr_expect_str_eq(a.path, path);
    associations_free(&a);
}

Test(associations, an_empty_file_is_no_associations)
{
    char why[ASSOC_WHY_MAX] = "";
    associations_t a;
    cr_assert(associations_load(&a, file_with("# nobody yet\n"), why, sizeof why), "%s", why);
    cr_expect_eq(a.n, 0u);
    associations_free(&a);
}

Test(associations, each_mistake_has_its_sentence)
{
    cr_expect_str_eq(refused("oxi-7\tMRN1\tDoe\n"),
                     "1: 3 fields where 4 are expected (DEVICE-ID, PATIENT-ID, PATIENT-NAME, "
                     "LOCATION): separate them with one tab each; an empty field is two tabs in "
                     "a row");
    cr_expect_str_eq(refused("#\noxi-7 MRN1 Doe ICU\n"),
                     "2: 1 field where 4 are expected (DEVICE-ID, PATIENT-ID, PATIENT-NAME, "
                     "LOCATION): separate them with one tab each; an empty field is two tabs in "
                     "a row");
    cr_expect_str_eq(refused("a\tb\tc\td\te\n"),
                     "1: 5 fields where 4 are expected (DEVICE-ID, PATIENT-ID, PATIENT-NAME, "
                     "LOCATION): separate them with one tab each; an empty field is two tabs in "
                     "a row");
    cr_expect_str_eq(refused("\tMRN1\tDoe\tICU\n"),
                     "1: DEVICE-ID is empty: give the device's id (its certificate's CN)");
    const char *not_id = "1: DEVICE-ID is not a device id: it must match "
                         "[A-Za-z0-9][A-Za-z0-9._-]{0,63}, the device certificate's CN";
    cr_expect_str_eq(refused("-oxi\tMRN1\tDoe\tICU\n"), not_id);
    cr_expect_str_eq(refused("oxi 7\tMRN1\tDoe\tICU\n"), not_id);
    char longid[200];
    memset(longid, 'a', 65);
    snprintf(longid + 65, sizeof longid - 65, "\tMRN1\tDoe\tICU\n");
    cr_expect_str_eq(refused(longid), not_id);
    cr_expect_str_eq(refused("oxi-7\t\tDoe\tICU\n"),
                     "1: PATIENT-ID is empty: an association needs the patient's identifier (to "
                     "take a device off a patient, remove its line)");
    char longpid[200] = "oxi-7\t";
    memset(longpid + 6, '1', 65);
    snprintf(longpid + 71, sizeof longpid - 71, "\tDoe\tICU\n");
    cr_expect_str_eq(refused(longpid), "1: PATIENT-ID is 65 bytes long, more than 64: shorten it");
    char longname[300] = "oxi-7\tMRN1\t";
    memset(longname + 11, 'x', 129);
    snprintf(longname + 140, sizeof longname - 140, "\tICU\n");
    cr_expect_str_eq(refused(longname),
                     "1: PATIENT-NAME is 129 bytes long, more than 128: shorten it");
    cr_expect_str_eq(refused("oxi-7\tMRN1\tDoe\x01\tICU\n"),
                     "1: PATIENT-NAME has a control character (byte 0x01 at byte 4 of the "
                     "field): remove it");
    cr_expect_str_eq(refused("oxi-7\tMRN1\tDoe\tICU\x7f\n"),
                     "1: LOCATION has a control character (byte 0x7F at byte 4 of the field): "
                     "remove it");
    cr_expect_str_eq(refused("oxi-7\tMR\rN1\tDoe\tICU\n"),
                     "1: PATIENT-ID has a control character (byte 0x0D at byte 3 of the "
                     "field): remove it");
    cr_expect_str_eq(refused("oxi-7\tMRN1\tDo\xc2\x85\tICU\n"),
                     "1: PATIENT-NAME has a control character (U+0085 at byte 3 of the field): "
                     "remove it");
    cr_expect_str_eq(refused("oxi-7\tMRN1\tM\xfcller\tICU\n"),
                     "1: PATIENT-NAME is not UTF-8 (byte 2 of the field): write it as UTF-8");
    cr_expect_str_eq(refused("oxi-7\tMRN1\t\xc0\xaf\tICU\n"),
                     "1: PATIENT-NAME is not UTF-8 (byte 1 of the field): write it as UTF-8");
    cr_expect_str_eq(refused("oxi-7\tMRN1\tDoe\t\xed\xa0\x80\n"),
                     "1: LOCATION is not UTF-8 (byte 1 of the field): write it as UTF-8");
    cr_expect_str_eq(refused("oxi-7\tMRN1\tDoe^Jane^Q\tICU\n"),
                     "1: PATIENT-NAME has 3 components separated by '^', at most 2: write "
                     "Family^Given");
    cr_expect_str_eq(refused("oxi-7\tMRN1\tDoe\tICU^1^2^3\n"),
                     "1: LOCATION has 4 components separated by '^', at most 3: write "
                     "PointOfCare^Room^Bed");
    cr_expect_str_eq(refused("a\t1\t\t\nb\t2\t\t\n# c\na\t3\t\t\nb\t4\t\t\n"),
                     "4: device a is associated already on line 1: keep one line per device");
    cr_expect_str_eq(refused("zz\t1\t\t\na\t2\t\t\nzz\t3\t\t\na\t4\t\t\n"),
                     "3: device zz is associated already on line 1: keep one line per device",
                     "the first repeat in the file's order is named");
    char longline[1200];
    memset(longline, 'x', 1000);
    snprintf(longline + 1000, sizeof longline - 1000, "\n");
    cr_expect_str_eq(refused(longline), "1: the line is longer than 388 bytes (fields at most 64, "
                                        "64, 128 and 128 bytes): shorten it");
    longline[0] = '#';
    char why[ASSOC_WHY_MAX];
    associations_t a;
    cr_expect(associations_load(&a, file_with(longline), why, sizeof why),
              "a long comment is still a comment: %s", why);
    associations_free(&a);
}

Test(associations, a_file_that_cannot_be_read)
{
    char why[ASSOC_WHY_MAX], path[400];
    associations_t a;
    snprintf(path, sizeof path, "%s/none.tsv", mwt_tmpdir());
    cr_assert_not(associations_load(&a, path, why, sizeof why));
    char want[600];
    snprintf(want, sizeof want,
             "cannot read %s: No such file or directory: check the path and that the gateway "
             "may read it",
             path);
    cr_expect_str_eq(why, want);
}

/* The control socket's fields go through the same checks. */
Test(associations, fields_from_elsewhere_are_checked_alike)
{
    association_t x;
    char why[ASSOC_WHY_MAX];
    cr_expect(association_fill(&x, "oxi-7", 5, "a|b^c~d\\e&f", 11, "", 0, "", 0, why, sizeof why));
    cr_expect_str_eq(x.patient_id, "a|b^c~d\\e&f", "delimiters are kept as text (escaped in HL7)");
    cr_expect_not(association_fill(&x, "oxi-7", 5, "MRN\n", 4, "", 0, "", 0, why, sizeof why));
    cr_expect_str_eq(why, "PATIENT-ID has a control character (byte 0x0A at byte 4 of the field): "
                          "remove it");
    /* Lengths are the caller's: a field is read up to its length, never to a NUL. */
    cr_expect(
        association_fill(&x, "oxi-7xxxx", 5, "MRN1yyyy", 4, "Doe", 3, "ICU", 3, why, sizeof why));
    cr_expect_str_eq(x.device, "oxi-7");
    cr_expect_str_eq(x.patient_id, "MRN1");
}

Test(associations, changes_are_written_back_whole_and_owner_only)
{
    char why[ASSOC_WHY_MAX] = "";
    associations_t a;
    const char *path = file_with("b\tMRN2\tRoe\tER\n");
    chmod(path, 0644);
    cr_assert(associations_load(&a, path, why, sizeof why), "%s", why);
    association_t x;
    cr_assert(
        association_fill(&x, "a", 1, "MRN1", 4, "Doe^Jane", 8, "ICU^1^A", 7, why, sizeof why));
    cr_assert(associations_set(&a, &x, why, sizeof why), "%s", why);
    cr_assert(association_fill(&x, "b", 1, "MRN3", 4, "", 0, "", 0, why, sizeof why));
    cr_assert(associations_set(&a, &x, why, sizeof why), "%s", why);
    cr_expect_eq(a.n, 2u);
    cr_expect_str_eq(associations_find(&a, "b")->patient_id, "MRN3", "replaced");
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600, "patient identifiers: owner-only");
    char tmp[500];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_expect_neq(stat(tmp, &st), 0, "no FILE.tmp left behind");
    /* What was written reads back the same. */
    associations_t b;
    cr_assert(associations_load(&b, path, why, sizeof why), "%s", why);
    cr_assert_eq(b.n, 2u);
    cr_expect_str_eq(b.v[0].device, "a");
    cr_expect_str_eq(b.v[0].patient_name, "Doe^Jane");
    cr_expect_str_eq(b.v[0].location, "ICU^1^A");
    cr_expect_str_eq(b.v[1].patient_id, "MRN3");
    associations_free(&b);
    cr_assert(associations_remove(&a, "a", why, sizeof why), "%s", why);
    cr_expect_not(associations_remove(&a, "a", why, sizeof why));
    cr_expect_str_eq(why, "the device has no association");
    cr_assert(associations_load(&b, path, why, sizeof why), "%s", why);
    cr_expect_eq(b.n, 1u);
    cr_expect_null(associations_find(&b, "a"));
    associations_free(&b);
    associations_free(&a);
}

Test(associations, a_change_that_cannot_be_written_is_not_made)
{
    char why[ASSOC_WHY_MAX] = "";
    associations_t a;
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s/ro", mwt_tmpdir());
    cr_assert_eq(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/assoc.tsv", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("b\tMRN2\tRoe\tER\n", f);
    fclose(f);
    cr_assert(associations_load(&a, path, why, sizeof why), "%s", why);
    /* The directory refuses FILE.tmp (root ignores the mode: a directory in its place). */
    char tmp[500];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert_eq(mkdir(tmp, 0700), 0);
    association_t x;
    cr_assert(association_fill(&x, "a", 1, "MRN1", 4, "", 0, "", 0, why, sizeof why));
    cr_expect_not(associations_set(&a, &x, why, sizeof why));
    cr_expect(strstr(why, "the change was not made") != NULL, "%s", why);
    cr_expect_eq(a.n, 1u);
    cr_expect_null(associations_find(&a, "a"));
    cr_assert(association_fill(&x, "b", 1, "MRN9", 4, "", 0, "", 0, why, sizeof why));
    cr_expect_not(associations_set(&a, &x, why, sizeof why));
    cr_expect_str_eq(associations_find(&a, "b")->patient_id, "MRN2", "the old one stays");
    cr_expect_not(associations_remove(&a, "b", why, sizeof why));
    cr_expect_not_null(associations_find(&a, "b"));
    associations_free(&a);
}

Test(associations, reload_keeps_the_old_on_a_bad_file)
{
    char why[ASSOC_WHY_MAX] = "";
    associations_t a;
    const char *path = file_with("a\tMRN1\t\t\n");
    cr_assert(associations_load(&a, path, why, sizeof why), "%s", why);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("a\tMRN2\t\t\nbad line\n", f);
    fclose(f);
    cr_expect_not(associations_reload(&a, why, sizeof why));
    cr_expect(strstr(why, ":2: 1 field where 4") != NULL, "%s", why);
    cr_expect_str_eq(associations_find(&a, "a")->patient_id, "MRN1");
    cr_expect_str_eq(a.path, path);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("a\tMRN2\t\t\n", f);
    fclose(f);
    cr_expect(associations_reload(&a, why, sizeof why), "%s", why);
    cr_expect_str_eq(associations_find(&a, "a")->patient_id, "MRN2");
    associations_free(&a);
}
