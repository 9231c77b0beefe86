/* SPDX-License-Identifier: Apache-2.0 */
/* gateway_internal.h -- private to src/gateway: the gateway's state (struct mw_gateway), its
 * peers (one per address) and devices (one per authenticated identity), and what its files ask
 * of each other. gateway.c: create, poll, DTLS demultiplexing, the CoAP resources; peers.c: the
 * peer and device tables, identity admission and the sweeps; delivery.c: a batch judged and
 * delivered; custody.c: Acks held until the store commits; commands.c: commands to devices;
 * credentials.c: credentials and CRL, and their reload; audit.c: bounded audit lines. */
#ifndef MWI_GATEWAY_INTERNAL_H
#define MWI_GATEWAY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "medwire/gateway.h"

#include "coap/coap.h"
#include "coap/server.h"
#include "dtls/dtls.h"
#include "dtls/link.h"
#include "gateway/admission.h"
#include "gateway/store.h"
#include "session/codec.h"
#include "session/intake.h"
#include "session/replay.h"

/* Datagrams handled per poll before timers get their turn. */
#define RX_BURST 256
/* Responses (and devices touched) held per commit; a full list commits early. */
#define DEFER_MAX RX_BURST

struct mw_gateway;

/* Where a DTLS connection's output goes: the socket and the peer's address. */
struct route {
    struct mw_gateway *gw;
    mw_addr_t addr;
};

struct peer {
    struct route route;
    /* The current session, established or handshaking, and a new handshake beside it from the
     * same address (a reboot, a rekey) that replaces it once up (dtls/link.h). */
    mwi_link link;
    uint64_t last_rx_ms;
    char text[64];
    mwi_coap_dedup dedup; /* responses by MID, for duplicates (RFC 7252 4.5) */
    mwi_coap_block1 b1;   /* a Block1 body being reassembled */
    uint8_t *b1_buf;      /* max_body bytes while a transfer runs, else NULL */
    struct device *dv;    /* its identity's, once admitted (admit_identity) */
    bool admitted;        /* its identity was admitted: its records may be read */
    bool refused;         /* ... was refused: its session is being closed */
    uint64_t conn_started_ms, next_started_ms; /* to reap handshakes that never finish */
    mwi_bucket rate;                           /* datagrams it may still send now */
    /* A command POSTed to the device over this session, as a CON of ours: a connected device
     * runs it at once instead of at its next batch (docs/protocol.md 7). */
    struct push {
        mwi_coap_request r;
        size_t len;
        uint8_t buf[128];
    } push;
    struct peer *hnext;
};

/* Replay state per authenticated device, not per address: a device that
 * reconnects from another port is the same device. */
struct device {
    char id[MW_ID_MAX + 1];
    mwi_replay rp;                       /* which sequence numbers were delivered */
    uint64_t next_command;               /* ids increase over the device's life, across restarts */
    mw_command_t cmds[MWI_MAX_COMMANDS]; /* sent in every Ack until answered or expired */
    uint8_t ncmds;
    uint64_t last_seen_ms; /* monotonic: for the communication-loss condition */
    bool lost;             /* a communication_loss was delivered, no restore yet */
    struct peer *peer;     /* its one session (a newer one replaces it), while it lasts */
    mwi_bucket handshakes; /* completed per minute, whatever the address */
    bool handshakes_init;
    mwi_bucket rate; /* datagrams of its sessions, whatever the address */
    bool rate_init;
    uint64_t locked_in;   /* the transaction (gw->txn_serial) that holds its row, read again */
    uint64_t touched_in;  /* the last committed transaction that changed it */
    uint64_t warm_mark;   /* the transaction whose warm list holds it */
    uint64_t pushed_upto; /* commands with ids up to this were POSTed to it */
    bool push_due;        /* a command waits to be POSTed once committed */
    struct device *hnext;
};

struct mw_gateway {
    mwi_dtls_ctx *dtls;
    mw_transport_t tp;
    bool own_tp;
    mw_clock_t clock;
    mw_sink_fn *sink;
    void *sink_ctx;
    mw_audit_fn *audit;
    void *audit_ctx;
    uint32_t max_peers;
    uint32_t npeers;
    struct peer **peers;
    uint32_t peer_buckets;
    struct device **devices;
    uint32_t device_buckets;
    mwi_coap_parser *parser;
    uint16_t next_mid;
    uint64_t comm_loss_ms;
    uint64_t next_loss_scan_ms;
    uint32_t max_half_open;
    uint32_t half_open;       /* recounted every sweep, incremented on each accept */
    uint64_t idle_timeout_ms; /* 0: sessions are never reaped for silence */
    /* No timer of any peer is due before this (it may be earlier than needed, never
     * later): lowered as datagrams arm handshake timers, recomputed by each sweep. */
    uint64_t timers_at;
    mw_datagram_t *rxv; /* RX_BATCH slots when the transport has recv_many, else NULL */
    double rate_per_s, rate_burst;
    mwi_coap_params params;
    size_t max_body;
    uint64_t now_ms; /* the time of the datagram being handled */
    bool push_due;   /* some device has a command to POST after the next commit */
    uint64_t audit_window_ms;
    uint32_t audit_in_window;
    mwi_hosts hosts;
    mwi_audit_limiter *alim;
    uint32_t max_half_open_per_host;
    double host_hs_per_s, identity_hs_per_min;
    mw_gateway_stats_t st;
    /* What mw_gateway_reload_credentials reads again (copies: the caller's
     * configuration strings need not outlive mw_gateway_create). */
    char *ca_path, *cert_path, *key_path, *crl_path;
    /* Copies of the credentials given in memory (the key's wiped at the end), loaded again as
     * they are at every credentials reload. */
    mw_blob_t ca_buf, cert_buf, key_buf, crl_buf;
    bool allow_shared_key;         /* checked again at every reload */
    mw_est_issue_fn *est_issue;    /* EST (est.c); NULL: not served */
    uint32_t est_retry_after_s;    /* Max-Age of a 5.03 while the issuer works */
    void *est_ctx;
    uint64_t (*now_us)(void *ctx); /* times commits */

    /* Custody transfer, batched per poll: responses wait here until the
     * sink and the store have committed what they acknowledge. */
    mwi_store *store;
    mw_sink_commit_fn *sink_commit;
    mw_sink_recover_fn *sink_recover;
    uint64_t checkpoint; /* of the last successful commit */
    bool dirty;          /* something was staged since the last commit */
    bool txn_failed;
    struct deferred {
        mw_addr_t addr;
        size_t len;
        uint8_t bytes[MWI_DTLS_MAX_PLAINTEXT];
    } * deferred;
    size_t ndeferred;
    struct undo {
        struct device *dv;
        mwi_replay before;
    } * undo;
    size_t nundo;
    /* A shared store: the devices of the last few commits (WARM_TXNS), whose rows the next
     * transaction locks (and reads) together at its start, in one statement rather than one
     * each: a device streaming batches is changed by one poll in two or three. */
    struct device **warm;
    size_t nwarm;
    uint64_t txn_serial; /* counts transactions: 1, 2, ... (0 is none) */
    uint64_t ahead_in;   /* the transaction that locked the warm list */

    /* per-record scratch, reused: the gateway decodes one batch at a time */
    struct peer *cur;
    mw_message_t batch[MWI_MAX_BATCH];
    uint8_t rx[MWI_DTLS_MAX_DATAGRAM + 1];
};

/* Responses and resets are best effort: if the record cannot go out, the
 * peer's retransmission asks again. */
static inline void write_lossy(mwi_dtls_conn *c, const uint8_t *buf, size_t len)
{
    mw_err e = mwi_dtls_conn_write(c, buf, len);
    (void)e;
}

/* The wall clock, for what devices and operators read as a date; 0 without one. */
static inline uint64_t wall_ms(const mw_gateway_t *gw)
{
    int synced;
    return gw->clock.wall_ms ? gw->clock.wall_ms(gw->clock.ctx, &synced) : 0;
}

/* The wall clock for devices to set theirs by (Ack.gateway_time_ms): only while it is
 * synchronised, since a device would stamp clinical data with it as synchronised; 0 otherwise. */
static inline uint64_t synced_wall_ms(const mw_gateway_t *gw)
{
    int synced = 0;
    uint64_t t = gw->clock.wall_ms ? gw->clock.wall_ms(gw->clock.ctx, &synced) : 0;
    return synced ? t : 0;
}

/* ---- audit.c: audit lines, limited per identity and per second; handshake failures ---- */

/* Writes an audit line; events about an authenticated identity are limited per kind. */
void mwi_gw_audit(mw_gateway_t *gw, const char *event, const char *peer, const char *device,
                  mw_err e, int foreign, const char *reason);
/* Writes an audit line whatever the limits (for lines that report what the limits held). */
void mwi_gw_audit_raw(mw_gateway_t *gw, const char *event, const char *peer, const char *device,
                      mw_err e, int foreign, const char *reason);
/* One line for the @p held lines of slot @p s that the limiter held back. */
void mwi_gw_audit_held(mw_gateway_t *gw, const mwi_audit_slot *s, uint32_t held);
/* May a line about an unverified or abusive source be written now (a few per second)? */
bool mwi_gw_audit_allowed(mw_gateway_t *gw, uint64_t now);
/* Counts a failed handshake, in the total and by its reason. */
void mwi_gw_count_hs_failure(mw_gateway_t *gw, mw_err e);
/* Counts and audits the failed handshake of connection @p c of peer @p p. */
void mwi_gw_handshake_failed(mw_gateway_t *gw, struct peer *p, mwi_dtls_conn *c);
/* The same, for a handshake whose error was already read (@p d). */
void mwi_gw_handshake_failed_why(mw_gateway_t *gw, struct peer *p, mw_error_detail_t d);

/* ---- peers.c: the peer and device tables, their sweeps, communication loss ---- */

/* Allocates the (empty) tables for gw->max_peers peers. */
MW_NODISCARD mw_err mwi_gw_peers_init(mw_gateway_t *gw);
/* Closes every session (close_notify) and frees every peer and device. */
void mwi_gw_peers_fini(mw_gateway_t *gw);
/* The slot of the peer at address @p a: *slot is NULL if there is none. */
struct peer **mwi_gw_peer_slot(mw_gateway_t *gw, const mw_addr_t *a);
/* Unlinks and frees @p p. */
void mwi_gw_peer_remove(mw_gateway_t *gw, struct peer *p);
/* The device of identity @p id, created with its stored state if new; NULL if that state
 * cannot be read (audited) or memory is short. */
struct device *mwi_gw_device_get(mw_gateway_t *gw, const char *id);
/* Makes @p p the session of @p dv (and no longer of the device it spoke for before). */
void mwi_gw_bind(struct peer *p, struct device *dv);
/* Admits the identity of @p p's new session: within its handshakes per minute, replacing its
 * older session, within max_peers. False if the new session must be closed. */
bool mwi_gw_admit_identity(mw_gateway_t *gw, struct peer *p, uint64_t now);
/* The device was heard from: if it had been declared lost, its link is restored. */
void mwi_gw_seen(mw_gateway_t *gw, struct device *dv);
/* Declares lost the devices silent longer than gw->comm_loss_ms (at most once a second). */
void mwi_gw_scan_comm_loss(mw_gateway_t *gw, uint64_t now);
/* The sweep: DTLS and push timers, stalled handshakes, idle sessions, host table, held audit
 * lines; sets gw->timers_at to the next deadline. */
void mwi_gw_run_timers(mw_gateway_t *gw, uint64_t now);
/* Brings gw->timers_at forward to a handshake timer a datagram from @p from may have armed. */
void mwi_gw_note_timers(mw_gateway_t *gw, const mw_addr_t *from);

/* ---- delivery.c: one device's batch judged, delivered, counted ---- */

/* How the /batch resource answers a batch taken by mwi_gw_take_batch. */
typedef enum mwi_gw_batch_result {
    MWI_GW_BATCH_ACK,        /* an Ack of in->ranges with the device's commands and in->resync */
    MWI_GW_BATCH_RETIRED,    /* the batch's space was left: an Ack that asks for a resync only */
    MWI_GW_BATCH_UNREADABLE, /* the store cannot say whether its space was retired: try later */
    MWI_GW_BATCH_NOT_STORED, /* nothing could be delivered now: try later */
} mwi_gw_batch_result;

/* Takes msgs[0..n) of @p dv (sorted in place), received over @p p: enters its space, judges each
 * message with @p in and delivers the new ones to the store and the sink (committed with the
 * poll). The resynchronisations asked are audited. */
mwi_gw_batch_result mwi_gw_take_batch(mw_gateway_t *gw, struct peer *p, struct device *dv,
                                      mw_message_t *msgs, size_t n, const mwi_batch_head *head,
                                      mwi_intake *in);

/* ---- custody.c: what was accepted is committed before it is acknowledged ---- */

/* Holds a response to @p p until what it acknowledges is committed. */
void mwi_gw_defer(mw_gateway_t *gw, struct peer *p, const uint8_t *bytes, size_t len);
/* Remembers @p dv's replay state as it was before this commit's changes, after reading it (and
 * its pending commands) again from a shared store under the row's lock. */
void mwi_gw_touch(mw_gateway_t *gw, struct device *dv);
/* Stages @p m in the store for the next commit; false if that failed (the commit will then
 * fail and undo the poll). */
bool mwi_gw_stage_message(mw_gateway_t *gw, const mw_message_t *m);
/* Stages the retirement of @p dv's current space, as for mwi_gw_stage_message. */
bool mwi_gw_stage_retired_space(mw_gateway_t *gw, const struct device *dv);
/* Stages the record of a certificate issued over EST (its issued_ms is set here), as for
 * mwi_gw_stage_message: the answer that carries it leaves with the commit. True without a
 * store. */
bool mwi_gw_stage_certificate(mw_gateway_t *gw, mwi_store_cert *c);
/* Commits the sink and the store, then sends the held responses; on failure undoes it all and
 * returns the error (MW_OK when there was nothing to commit). */
mw_err mwi_gw_commit(mw_gateway_t *gw);

/* ---- commands.c: commands to devices, in Acks and POSTed over live sessions ---- */

/* Stops sending the commands of @p dv past their expiry (audited). */
void mwi_gw_expire_commands(mw_gateway_t *gw, struct device *dv);
/* A delivered command_result @p m: the command is no longer sent; a refusal is audited. */
void mwi_gw_command_answered(mw_gateway_t *gw, struct peer *p, struct device *dv,
                             const mw_message_t *m);
/* After a commit: POSTs the commands that became durable to their devices. */
void mwi_gw_push_due_commands(mw_gateway_t *gw);
/* A response @p m from the device to the command POSTed over @p p. */
void mwi_gw_push_answered(mw_gateway_t *gw, struct peer *p, const mwi_coap_msg *m);
/* Retransmits (or gives up) the command POSTed over @p p if its timer is due. */
void mwi_gw_push_timer(mw_gateway_t *gw, struct peer *p, uint64_t now);

/* ---- credentials.c: the gateway's certificate, key, CA and CRL, loaded and reloaded ---- */

/* Keeps copies of @p cfg's file names and loads the DTLS context from them into gw->dtls. */
MW_NODISCARD mw_err mwi_gw_credentials_init(mw_gateway_t *gw, const mw_gateway_config_t *cfg,
                                            mw_error_detail_t *d);
/* Releases the context (sessions made under it keep it while they last) and the file names. */
void mwi_gw_credentials_fini(mw_gateway_t *gw);

/* ---- EST over CoAP (est.c) ---- */

/** Largest EST answer: the CA certificates of /crts (sent block-wise), or one PKCS#7. */
#define MWI_GW_EST_ANSWER_MAX 8192

/** What an EST resource answers: a code, a Content-Format (-1: none) and a body. */
typedef struct mwi_gw_answer {
    uint8_t code;
    int32_t cf;
    uint32_t max_age; /* seconds, for a 5.03: when to ask again; 0: no Max-Age */
    size_t len;
    uint8_t body[MWI_GW_EST_ANSWER_MAX];
} mwi_gw_answer;

/** Whether @p uri_path is one of EST's resources (served or not). */
bool mwi_gw_est_path(const char *uri_path);
/** Answers the EST request @p req of the session @p p (its whole body, also one that came
 *  block-wise) in @p a, auditing and counting what it issues and refuses. */
void mwi_gw_est(mw_gateway_t *gw, struct peer *p, const mwi_coap_msg *req, mwi_gw_answer *a);

#endif
