/* SPDX-License-Identifier: Apache-2.0 */
/* command.c -- the device's guard against replayed and expired commands. */
#include "session/command.h"

mwi_cmd_verdict mwi_cmd_check(const mwi_cmd_guard *g, const mw_command_t *c, uint64_t now_wall_ms)
{
    for (uint8_t i = 0; i < g->n; i++)
        if (g->recent[i] == c->id)
            return MWI_CMD_DUPLICATE;
    /* Ids grow with the gateways' clocks: one far older than the newest handled, and not a
     * repeat we remember, is an old command played again, e.g. by a gateway restored from an
     * old backup (docs/protocol.md 7). */
    uint64_t window = (uint64_t)MWI_CMD_WINDOW_MS << 16;
    if (c->id == 0 || (g->last > window && c->id < g->last - window))
        return MWI_CMD_REPLAY;
    if (c->expires_ms != 0 && now_wall_ms >= c->expires_ms)
        return MWI_CMD_EXPIRED;
    return MWI_CMD_RUN;
}

void mwi_cmd_done(mwi_cmd_guard *g, uint64_t id)
{
    if (id > g->last)
        g->last = id;
    g->recent[g->pos] = id;
    g->pos = (uint8_t)((g->pos + 1) % MWI_CMD_RECENT);
    if (g->n < MWI_CMD_RECENT)
        g->n++;
}
