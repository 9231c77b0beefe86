/* SPDX-License-Identifier: Apache-2.0 */
/* key_file.c -- refusing a private key file, or the PIN file of a key in a token, that other
 * local users can read (ssh's rule). */
#include <stdio.h>
#include <sys/stat.h>

#include "core/detail.h"
#include "core/p11_uri.h"
#include "port/posix/key_file.h"

mw_err mwi_key_file_private(const char *path, bool allow_shared, mw_error_detail_t *d)
{
    struct stat st;
    if (path == NULL || allow_shared)
        return MW_OK;
    const char *what = "private key";
    bool in_token = mwi_p11_is_uri(path);
    mwi_p11_uri u;
    if (in_token) {
        /* A key in a token is no file; its PIN file, when there is one, is held to the same
         * rule. A URI that does not parse is explained when the key is loaded. */
        if (mwi_p11_uri_parse(path, &u, NULL) != MW_OK || !u.has_pin_source) {
            mwi_p11_uri_wipe(&u);
            return MW_OK;
        }
        path = u.pin_source;
        what = "PIN file";
    }
    mw_err e = MW_OK;
    /* Any local account that can read the key can impersonate this peer to the whole
     * network, and one that can write it can swap in its own: the fix is the owner's alone. */
    if (stat(path, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
        e = mwi_detail_firstf(d, MW_ECERT_LOAD, 0,
                              "%s readable or writable by other users (mode %04o; "
                              "allow_shared_key_file accepts it): chmod 600 %s",
                              what, (unsigned)(st.st_mode & 07777), path);
    if (in_token)
        mwi_p11_uri_wipe(&u);
    return e;
}
