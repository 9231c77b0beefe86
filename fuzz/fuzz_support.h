/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_support.h -- what every medwire fuzz target shares: the libFuzzer entry points, checks
 * that abort, input framing, a JSON validator and the test PKI. */
#ifndef MWF_FUZZ_SUPPORT_H
#define MWF_FUZZ_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "support/pki.h"

/* The libFuzzer interface (https://llvm.org/docs/LibFuzzer.html); declared here so that each
 * target's definition has a prototype, and so that replay_main.c can call them. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant that must hold whatever the input: abort() with the reason, so that libFuzzer
 * keeps the input as a crash reproducer and the replay test fails. */
#define MWF_CHECK(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond))                                                                               \
            mwf_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                                      \
    } while (0)

_Noreturn void mwf_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/**
 * Input framing of the targets that take several datagrams or messages from one input:
 * [tag:1][length:2, big-endian][length bytes], repeated. A last frame whose length runs past the
 * end takes what is left, so that every input means something and truncation is fuzzed too.
 */
typedef struct mwf_reader {
    const uint8_t *p;
    size_t left;
} mwf_reader;

typedef struct mwf_frame {
    uint8_t tag;
    const uint8_t *data;
    size_t len;
} mwf_frame;

void mwf_reader_init(mwf_reader *r, const uint8_t *data, size_t size);
/** The next frame; false once the input is used up. */
bool mwf_next_frame(mwf_reader *r, mwf_frame *out);
/** Appends one frame to out[*pos..cap) (for the corpus generator); false if it does not fit. */
bool mwf_put_frame(uint8_t *out, size_t cap, size_t *pos, uint8_t tag, const uint8_t *data,
                   size_t len);

/** True if s[0..len) is exactly one JSON value (RFC 8259), ASCII only, nesting at most 8 deep. */
bool mwf_json_valid(const char *s, size_t len);

/**
 * The PKI of the targets that need certificates, made once per process by the real
 * medwire-pki (tests/support/pki.c): in $MW_FUZZ_PKI when that names a directory made
 * earlier (it is then left alone), else in a fresh temporary directory, with medwire-pki
 * taken from $MW_BIN_DIR or else from this build's bin directory. Aborts if it cannot be made.
 */
const mwt_pki *mwf_pki(void);
/** Removes the temporary PKI directory (not one given in $MW_FUZZ_PKI) once the certificates
 *  are loaded: a fuzzing campaign must not fill /tmp. mwf_pki() must not be called again. */
void mwf_pki_discard(void);

#endif
