/* SPDX-License-Identifier: Apache-2.0 */
/* link.h -- make-before-break: the DTLS connections of one peer, the current one and the one being
 * established beside it (key rotation, a device that rebooted), and when the new one replaces the
 * old. Used alike by the device SDK and the gateway; no sockets, no clock inside. */
#ifndef MWI_DTLS_LINK_H
#define MWI_DTLS_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dtls/dtls.h"

/**
 * One peer's connections. Plain data embedded in the caller's state; zeroed (mwi_link_init) it
 * holds none. The caller reads @c conn and @c next (to write records, read identities, run
 * timers) and changes them only through the functions below, except that it may destroy either
 * in place (mwi_dtls_conn_destroy(&l->next)), after which mwi_link_drop_current puts a next in
 * place of a current that is gone.
 *
 * Invariant kept by the functions here: @c next exists only beside an established @c conn when
 * it was added; application data always goes to @c conn until the switch.
 */
typedef struct mwi_link {
    mwi_dtls_conn *conn; /**< the current session: established, or its first handshake */
    mwi_dtls_conn *next; /**< a new full handshake beside it, which replaces it once up */
} mwi_link;

/** What feeding a datagram changed. */
typedef enum mwi_link_event {
    /** Records read, or a handshake that goes on: nothing to act on. */
    MWI_LINK_NONE = 0,
    /** The current connection's (first) handshake completed. */
    MWI_LINK_ESTABLISHED,
    /** The next connection's handshake completed and it replaced the current one, which is
     *  destroyed (wolfSSL_free zeroes its keys): @c conn is the new session, @c next is NULL. */
    MWI_LINK_SWITCHED,
    /** The next connection failed and is destroyed (its error in the result); the current one
     *  goes on untouched. */
    MWI_LINK_NEXT_FAILED,
    /** The current connection failed (its handshake, or the session: an alert, close_notify). It
     *  is still held so that the caller can read it (peer identity, error); then the caller
     *  drops it (mwi_link_drop_current, which promotes a next) or the whole link
     *  (mwi_link_clear): which follows is the caller's policy. */
    MWI_LINK_FAILED,
} mwi_link_event;

/** The detail of one mwi_link_input. */
typedef struct mwi_link_result {
    mwi_link_event event;
    mw_err err;                /**< what mwi_dtls_conn_input returned for the connection fed */
    bool to_next;              /**< the datagram went to the next connection */
    bool was_established;      /**< the connection fed was established before this datagram */
    bool replaced_established; /**< SWITCHED: the connection replaced was still established */
    mw_error_detail_t detail;  /**< NEXT_FAILED, FAILED: the failed connection's error as it
                                *   gave it (mwi_dtls_conn_error; err may be MW_OK) */
} mwi_link_result;

/** Makes @p l hold nothing. */
void mwi_link_init(mwi_link *l);
/** Destroys both connections (next first); @p l holds nothing after. NULL: no-op. */
void mwi_link_clear(mwi_link *l);

/**
 * Adds a connection the caller made (a server's, from mwi_dtls_accept): as the current one if
 * @p l holds none, else as the next beside an established current one.
 * @return MW_OK (@p l owns @p conn); MW_EINVAL for NULL arguments, or a next already held, or a
 *         current one not established (the caller still owns @p conn).
 */
MW_NODISCARD mw_err mwi_link_add(mwi_link *l, mwi_dtls_conn *conn);
/**
 * Client: makes a connection to @p peer on @p ctx, output to @p send, and adds it (mwi_link_add:
 * the current one, or the next). Start it with mwi_link_start.
 * @return MW_OK; MW_EINVAL as for mwi_link_add; or mwi_dtls_conn_create's error.
 */
MW_NODISCARD mw_err mwi_link_connect(mwi_link *l, mwi_dtls_ctx *ctx, const mw_addr_t *peer,
                                     mwi_dtls_send_fn *send, void *send_ctx);
/**
 * Client: sends the first ClientHello of the newest connection (the next if there is one, else
 * the current). A next that cannot start is destroyed; a current one that cannot is kept for
 * the caller to read, as for MWI_LINK_FAILED.
 * @return MW_EINPROGRESS, or the fatal error; MW_EINVAL if @p l holds no connection.
 */
MW_NODISCARD mw_err mwi_link_start(mwi_link *l, uint64_t now_ms);

/** Whether @p dgram goes to the next connection: one is being established and the datagram is
 *  a handshake flight (mwi_dtls_is_handshake_flight); application data goes to the current. */
bool mwi_link_routes_to_next(const mwi_link *l, const uint8_t *dgram, size_t len);
/** Server: whether @p dgram is a ClientHello opening a new session beside the established
 *  current one (no next yet): wolfSSL drops a ClientHello on an established session, so the
 *  caller accepts it (mwi_dtls_accept) and adds the connection as the next. */
bool mwi_link_hello_opens_next(const mwi_link *l, const uint8_t *dgram, size_t len);

/**
 * Feeds one datagram to the connection it belongs to (mwi_link_routes_to_next); its application
 * records go to @p on_record, called before any switch (so the caller's state still names the
 * current connection while it runs). Makes the switch when the next connection completes, and
 * destroys a next that fails.
 * @param[out] out what happened (required)
 * @return out->event. With no current connection: MWI_LINK_NONE and out->err MW_EINVAL.
 */
mwi_link_event mwi_link_input(mwi_link *l, const uint8_t *dgram, size_t len, uint64_t now_ms,
                              mwi_dtls_record_fn *on_record, void *record_ctx,
                              mwi_link_result *out);

/** Destroys the current connection (if any) and puts the next, if any, in its place. Returns
 *  whether a connection remains. */
bool mwi_link_drop_current(mwi_link *l);
/** Destroys the next connection, if any; the current one goes on. */
void mwi_link_drop_next(mwi_link *l);

/** The earlier of the two connections' handshake deadlines (UINT64_MAX: none). */
uint64_t mwi_link_deadline(const mwi_link *l);

#endif
