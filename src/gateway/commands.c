/* SPDX-License-Identifier: Apache-2.0 */
/* commands.c -- commands to devices (docs/protocol.md 7): queued per device with ids that stay
 * unique across restarts, kept in the store with the device's state (so that a restarted
 * gateway, or another one on a shared store, sends them), sent in every Ack until answered or
 * expired, and POSTed at once over a device's live session once they are committed. */
#include <stdio.h>
#include <string.h>

#include "gateway/gateway_internal.h"
#include "session/protocol.h"

static void drop_command(struct device *dv, uint64_t id)
{
    for (uint8_t i = 0; i < dv->ncmds; i++)
        if (dv->cmds[i].id == id) {
            memmove(&dv->cmds[i], &dv->cmds[i + 1],
                    (size_t)(dv->ncmds - i - 1) * sizeof dv->cmds[0]);
            dv->ncmds--;
            return;
        }
}

/* A command past its expiry would only be refused: stop sending it. */
void mwi_gw_expire_commands(mw_gateway_t *gw, struct device *dv)
{
    if (dv->ncmds == 0)
        return;
    uint64_t now = wall_ms(gw);
    for (uint8_t i = 0; i < dv->ncmds;) {
        if (dv->cmds[i].expires_ms != 0 && now >= dv->cmds[i].expires_ms) {
            char why[120];
            snprintf(why, sizeof why, "command %llu expired before the device answered",
                     (unsigned long long)dv->cmds[i].id);
            mwi_gw_audit(gw, MW_AUDIT_COMMAND_EXPIRED, "", dv->id, MW_ETIMEDOUT, 0, why);
            drop_command(dv, dv->cmds[i].id);
        } else {
            i++;
        }
    }
}

void mwi_gw_command_answered(mw_gateway_t *gw, struct peer *p, struct device *dv,
                             const mw_message_t *m)
{
    drop_command(dv, m->u.command_result.command_id);
    if (m->u.command_result.status == MW_CMD_DONE)
        return;
    /* The operator who sent it must learn, not only the output's reader. */
    char why[240];
    const char *st = mw_command_status_name(m->u.command_result.status);
    snprintf(why, sizeof why, "the device answered command %llu with %s%s%.47s",
             (unsigned long long)m->u.command_result.command_id, st ? st : "?",
             m->u.command_result.detail[0] ? ": " : "", m->u.command_result.detail);
    mwi_gw_audit(gw, MW_AUDIT_COMMAND_REFUSED, p->text, dv->id, MW_OK, 0, why);
}

static mw_random_t gw_random(mw_gateway_t *gw)
{
    mw_random_t r = {.ctx = gw->dtls, .fill = mwi_dtls_random};
    return r;
}

/* POSTs the oldest command not yet pushed to the device over its live session. A push is an
 * optimisation: the command keeps riding in every Ack until its result arrives, so a push
 * that is lost, refused or given up costs only time. */
static void push_command(mw_gateway_t *gw, struct device *dv)
{
    struct peer *p = dv->peer;
    if (p == NULL || !mwi_dtls_conn_established(p->link.conn) || p->push.r.active)
        return;
    const mw_command_t *cmd = NULL;
    for (uint8_t i = 0; i < dv->ncmds && cmd == NULL; i++)
        if (dv->cmds[i].id > dv->pushed_upto)
            cmd = &dv->cmds[i];
    if (cmd == NULL)
        return;
    uint8_t body[64];
    size_t blen = 0;
    mwi_coap_msg m;
    mwi_coap_msg_init(&m);
    m.type = MWI_COAP_CON;
    m.code = MWI_COAP_POST;
    m.mid = gw->next_mid++;
    m.token_len = MWI_COAP_MAX_TOKEN;
    snprintf(m.uri_path, sizeof m.uri_path, "%s", MWI_PATH_COMMAND);
    m.content_format = MWI_COAP_CF_MEDWIRE_COMMAND;
    mw_random_t rnd = gw_random(gw);
    if (mwi_command_encode(cmd, body, sizeof body, &blen) != MW_OK ||
        rnd.fill(rnd.ctx, m.token, m.token_len) != MW_OK)
        return;
    m.payload = body;
    m.payload_len = blen;
    if (mwi_coap_encode(&m, p->push.buf, sizeof p->push.buf, &p->push.len) != MW_OK ||
        mwi_coap_request_start(&p->push.r, &gw->params, rnd, m.mid, m.token, m.token_len,
                               gw->now_ms) != MW_OK)
        return;
    dv->pushed_upto = cmd->id;
    write_lossy(p->link.conn, p->push.buf, p->push.len);
    uint64_t at = mwi_coap_request_deadline(&p->push.r);
    if (at < gw->timers_at)
        gw->timers_at = at;
}

/* After a commit: the ids of new commands are durable, so they may leave. */
void mwi_gw_push_due_commands(mw_gateway_t *gw)
{
    if (!gw->push_due)
        return;
    gw->push_due = false;
    for (uint32_t b = 0; b < gw->device_buckets; b++)
        for (struct device *dv = gw->devices[b]; dv; dv = dv->hnext)
            if (dv->push_due) {
                dv->push_due = false;
                push_command(gw, dv);
            }
}

/* The device's answer to a push: the command is run (its result comes as a message) or
 * refused; either way the next one may go. */
void mwi_gw_push_answered(mw_gateway_t *gw, struct peer *p, const mwi_coap_msg *m)
{
    mw_err e = mwi_coap_request_match(&p->push.r, m);
    if (e == MW_EAGAIN || e == MW_EINPROGRESS)
        return;
    p->push.r.active = false;
    if (p->dv != NULL)
        push_command(gw, p->dv);
}

void mwi_gw_push_timer(mw_gateway_t *gw, struct peer *p, uint64_t now)
{
    if (!p->push.r.active || p->link.conn == NULL || now < mwi_coap_request_deadline(&p->push.r))
        return;
    mw_err e = mwi_coap_request_timer(&p->push.r, &gw->params, now);
    if (e == MW_OK)
        write_lossy(p->link.conn, p->push.buf, p->push.len);
    else if (e != MW_EAGAIN)
        p->push.r.active = false; /* given up: the command rides in Acks */
}

mw_err mw_gateway_send_command(mw_gateway_t *gw, const char *device_id, const mw_command_t *cmd,
                               uint64_t *out_id)
{
    if (gw == NULL || device_id == NULL || cmd == NULL || !mwi_device_id_valid(device_id))
        return MW_EINVAL;
    if (cmd->kind != MW_CMD_SET_INTERVAL && cmd->kind != MW_CMD_ACK_ALARM &&
        cmd->kind != MW_CMD_ROTATE_KEYS)
        return MW_EINVAL;
    struct device *dv = mwi_gw_device_get(gw, device_id);
    if (dv == NULL)
        return MW_EIO;
    /* First, so that a shared store's counter and pending commands are read again before an
     * id is taken or a place counted. The command is committed with the next poll, before it
     * can reach the device (in an Ack, which waits for the commit, or POSTed right after it). */
    mwi_gw_touch(gw, dv);
    gw->dirty = true; /* the transaction the touch began ends with this poll's commit */
    mwi_gw_expire_commands(gw, dv);
    if (dv->ncmds == MWI_MAX_COMMANDS)
        return MW_EFULL;
    mw_command_t c = *cmd;
    /* Unique across gateways and across a gateway's new store, not a counter from 1: the wall
     * clock's milliseconds above 16 random bits, and above every id this store gave before
     * (docs/protocol.md 7). */
    uint64_t now = wall_ms(gw);
    uint16_t salt = 0;
    mw_random_t rnd = gw_random(gw);
    if (rnd.fill(rnd.ctx, (uint8_t *)&salt, sizeof salt) != MW_OK)
        return MW_EINTERNAL;
    c.id = (now << 16) | salt;
    if (c.id < dv->next_command)
        c.id = dv->next_command;
    dv->next_command = c.id + 1;
    if (c.expires_ms == 0)
        c.expires_ms = now + 60000u;
    dv->cmds[dv->ncmds++] = c;
    /* Committed before the operator hears "queued": what a restart would lose is refused. */
    if (mwi_gw_commit(gw) != MW_OK) {
        drop_command(dv, c.id);
        return MW_EIO;
    }
    dv->push_due = gw->push_due = true;
    if (out_id)
        *out_id = c.id;
    return MW_OK;
}
