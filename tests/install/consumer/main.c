/* SPDX-License-Identifier: Apache-2.0 */
/* main.c -- a device program built against the installed SDK alone (tests/install): it
 * includes <medwire/medwire.h>, sends 3 SpO2 observations to the gateway and exits 0 only when
 * the gateway has acknowledged all three.
 *
 *   consumer GATEWAY_HOST:PORT CA_FILE CERT_FILE KEY_FILE [GATEWAY_NAME]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <medwire/medwire.h>

enum { SENT = 3, GIVE_UP_S = 30 };

typedef struct {
    int delivered;
    int lost;
} fates;

static void on_fate(void *ctx, const mw_fate_report_t *r)
{
    fates *f = ctx;
    if (r->fate == MW_FATE_DELIVERED) {
        f->delivered++;
    } else {
        f->lost++;
        fprintf(stderr, "consumer: message %llu not delivered: %s\n", (unsigned long long)r->seq,
                r->reason);
    }
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 6) {
        fprintf(stderr, "usage: %s GATEWAY_HOST:PORT CA_FILE CERT_FILE KEY_FILE [GATEWAY_NAME]\n",
                argv[0]);
        return 2;
    }
    fates f = {0, 0};
    mw_client_config_t cfg;
    mw_client_config_init(&cfg);
    cfg.gateway = argv[1];
    cfg.ca_file = argv[2];
    cfg.cert_file = argv[3];
    cfg.key_file = argv[4];
    cfg.gateway_name = argc == 6 ? argv[5] : "gateway";
    cfg.on_fate = on_fate;
    cfg.on_fate_ctx = &f;

    mw_client_t *c = NULL;
    mw_error_detail_t why;
    mw_err e = mw_client_open(&cfg, &c, &why);
    if (e != MW_OK) {
        fprintf(stderr, "consumer: %s: %s\n", mw_strerror(e), why.reason);
        return 1;
    }
    for (int i = 0; i < SENT; i++) {
        mw_observation_t o = {.mdc_code = MW_MDC_PULS_OXIM_SAT_O2, .mantissa = 95 + i, .unit = "%"};
        uint64_t seq;
        e = mw_client_send_observation(c, &o, &seq);
        if (e != MW_OK) {
            fprintf(stderr, "consumer: observation %d not queued: %s\n", i, mw_strerror(e));
            mw_client_close(&c);
            return 1;
        }
    }
    time_t give_up = time(NULL) + GIVE_UP_S;
    while (f.delivered + f.lost < SENT && time(NULL) < give_up) {
        e = mw_client_poll(c, 100);
        if (e != MW_OK && e != MW_EAGAIN) {
            mw_client_last_error(c, &why);
            fprintf(stderr, "consumer: poll: %s: %s\n", mw_strerror(e), why.reason);
            break;
        }
    }
    mw_client_close(&c);
    printf("consumer: %d of %d observations acknowledged\n", f.delivered, SENT);
    return f.delivered == SENT ? 0 : 1;
}
