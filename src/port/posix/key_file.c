/* SPDX-License-Identifier: Apache-2.0 */
/* key_file.c -- refusing a private key file that other local users can read (ssh's rule). */
#include <stdio.h>
#include <sys/stat.h>

#include "core/detail.h"
#include "port/posix/key_file.h"

mw_err mwi_key_file_private(const char *path, bool allow_shared, mw_error_detail_t *d)
{
    struct stat st;
    if (path == NULL || allow_shared || stat(path, &st) != 0)
        return MW_OK;
    /* Any local account that can read the key can impersonate this peer to the whole
     * network, and one that can write it can swap in its own: the fix is the owner's alone. */
    mode_t open_to = st.st_mode & (S_IRWXG | S_IRWXO);
    if (open_to == 0)
        return MW_OK;
    mwi_detail_firstf(d, MW_ECERT_LOAD, 0,
                      "private key readable or writable by other users (mode %04o; "
                      "allow_shared_key_file accepts it): chmod 600 %s",
                      (unsigned)(st.st_mode & 07777), path);
    return MW_ECERT_LOAD;
}
