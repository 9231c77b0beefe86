/* SPDX-License-Identifier: Apache-2.0 */
/* associations.h -- which patient and which bed each device serves: read from the operator's
 * --associations file, changed at run time over the control socket and written back to the file
 * atomically (docs/hospital-integration.md section 6). */
#ifndef MW_EXAMPLE_ASSOCIATIONS_H
#define MW_EXAMPLE_ASSOCIATIONS_H

#include <stdbool.h>
#include <stddef.h>

/* Longest field, in bytes without the NUL. */
#define ASSOC_DEVICE_MAX     64  /* the device identity rule's own bound */
#define ASSOC_PATIENT_ID_MAX 64  /* PID-3's identifier (CX.1) */
#define ASSOC_NAME_MAX       128 /* PID-5, Family^Given */
#define ASSOC_LOCATION_MAX   128 /* PV1-3, PointOfCare^Room^Bed */
/* Associations one file or one gateway holds. */
#define ASSOC_MAX_ENTRIES 100000u
/* Room for any sentence these functions write into @p why. */
#define ASSOC_WHY_MAX 640

typedef struct association {
    char device[ASSOC_DEVICE_MAX + 1];
    char patient_id[ASSOC_PATIENT_ID_MAX + 1];
    /* Components separated by '^', unescaped; trailing empty components removed. */
    char patient_name[ASSOC_NAME_MAX + 1];
    char location[ASSOC_LOCATION_MAX + 1];
    size_t line; /* where the file gave it; 0: set over the control socket */
} association_t;

typedef struct associations {
    association_t *v; /* sorted by device, no device twice */
    size_t n, cap;
    const char *path; /* the --associations FILE changes are written to; NULL: memory only */
} associations_t;

/**
 * Checks the four fields (each @p *_len bytes, not NUL-terminated) and fills @p out: a device id
 * by the identity rule [A-Za-z0-9][A-Za-z0-9._-]{0,63}, a patient id that is not empty, every
 * field within its bound, UTF-8 without control characters, at most 2 name and 3 location
 * components. False with a sentence in @p why (what is wrong and what to do) otherwise.
 */
bool association_fill(association_t *out, const char *device, size_t device_len,
                      const char *patient_id, size_t patient_id_len, const char *name,
                      size_t name_len, const char *location, size_t location_len, char *why,
                      size_t why_size);

/**
 * Reads @p path (one association a line, DEVICE-ID TAB PATIENT-ID TAB PATIENT-NAME TAB
 * LOCATION; blank lines and lines starting with '#' ignored) into @p out, which it initialises;
 * out->path becomes @p path. False, with "FILE:LINE: what is wrong: what to do" in @p why and
 * @p out empty, for a file that cannot be read or a line that breaks a rule or repeats a device.
 */
bool associations_load(associations_t *out, const char *path, char *why, size_t why_size);

/** Reads a->path again: on success the new associations replace @p a's, otherwise @p a is kept
 *  as it was and @p why says why. */
bool associations_reload(associations_t *a, char *why, size_t why_size);

/** The association of @p device, or NULL. */
const association_t *associations_find(const associations_t *a, const char *device);

/**
 * Sets @p x (checked by association_fill) as its device's association, replacing any earlier
 * one, and writes a->path again when there is one (FILE.tmp with mode 0600, fsync, rename). When
 * the file cannot be written, nothing changes and @p why says why.
 */
bool associations_set(associations_t *a, const association_t *x, char *why, size_t why_size);

/** Removes @p device's association, and writes a->path as associations_set does. False, with
 *  @p why, when the device has none or the file cannot be written (then nothing changes). */
bool associations_remove(associations_t *a, const char *device, char *why, size_t why_size);

void associations_free(associations_t *a);

#endif
