/* SPDX-License-Identifier: Apache-2.0 */
/* test_control.c -- the reference gateway's control socket, on a real Unix socket under a fake
 * clock: idle clients, a full house, and what its JSON parser refuses. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "support/proc.h"

/* The requests below never reach the gateway: every one is refused before a command is made. */
#define NO_GATEWAY NULL

static void open_control(control_t *c)
{
    char path[300];
    snprintf(path, sizeof path, "%s/ctl.sock", mwt_tmpdir());
    cr_assert_eq(control_open(c, path), 0, "control_open: %s", strerror(errno));
}

static int connect_client(const control_t *c)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", c->path);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect: %s",
                 strerror(errno));
    return fd;
}

static void send_text(int fd, const char *text)
{
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
}

/* What the control socket has written to @p fd so far, without waiting: control_service
 * writes its replies before it returns. "<eof>" is appended once the socket is closed. */
static const char *received(int fd)
{
    static char buf[1024];
    size_t n = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + n, sizeof buf - 1 - n, MSG_DONTWAIT);
        if (r > 0) {
            n += (size_t)r;
            continue;
        }
        if (r == 0 && n + 6 < sizeof buf) {
            memcpy(buf + n, "<eof>", 5);
            n += 5;
        }
        break;
    }
    buf[n] = '\0';
    return buf;
}

Test(control, a_client_that_completes_no_line_for_30_s_is_closed_and_told_why)
{
    control_t c;
    open_control(&c);
    int fd = connect_client(&c);
    control_service(&c, NO_GATEWAY, 1000);
    cr_assert_eq(control_timeout_ms(&c, 1000), 30000, "due 30 s after it came");
    /* Half a line is not a line: it does not put the deadline off. */
    send_text(fd, "{\"device\":");
    control_service(&c, NO_GATEWAY, 30999);
    cr_assert_str_eq(received(fd), "", "still open one millisecond before");
    cr_assert_eq(control_timeout_ms(&c, 30999), 1);
    control_service(&c, NO_GATEWAY, 31000);
    cr_assert_str_eq(received(fd),
                     "{\"ok\":false,\"error\":\"closed: no complete line for 30 s\"}\n<eof>");
    cr_assert_eq(control_timeout_ms(&c, 31000), -1, "no client left");
    close(fd);
    control_close(&c);
}

Test(control, each_complete_line_puts_the_idle_deadline_off)
{
    control_t c;
    open_control(&c);
    int fd = connect_client(&c);
    control_service(&c, NO_GATEWAY, 0);
    for (uint64_t t = 20000; t <= 100000; t += 20000) {
        send_text(fd, "{}\n");
        control_service(&c, NO_GATEWAY, t);
        const char *r = received(fd);
        cr_assert(strstr(r, "\"ok\":false") != NULL && strstr(r, "<eof>") == NULL, "at %llu: %s",
                  (unsigned long long)t, r);
    }
    control_service(&c, NO_GATEWAY, 129999);
    cr_assert_str_eq(received(fd), "");
    control_service(&c, NO_GATEWAY, 130000);
    cr_assert(strstr(received(fd), "<eof>") != NULL, "30 s after its last line");
    close(fd);
    control_close(&c);
}

/* @req IEC62443-CR7.1 */
Test(control, a_new_client_takes_the_place_of_the_one_idle_longest_when_all_are_taken)
{
    control_t c;
    open_control(&c);
    int fds[CONTROL_MAX_CLIENTS];
    for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
        fds[i] = connect_client(&c);
        control_service(&c, NO_GATEWAY, 1000u * (unsigned)i);
    }
    /* The first comes back to life: the second is now the one idle longest. */
    send_text(fds[0], "{}\n");
    control_service(&c, NO_GATEWAY, 10000);
    cr_assert(strstr(received(fds[0]), "\"ok\":false") != NULL);
    int late = connect_client(&c);
    send_text(late, "{\"device\":\"dev-1\",\"command\":\"reboot\"}\n");
    control_service(&c, NO_GATEWAY, 11000);
    cr_assert_str_eq(received(late), "{\"ok\":false,\"error\":\"unknown command\"}\n",
                     "the newcomer is served at once");
    cr_assert_str_eq(received(fds[1]),
                     "{\"ok\":false,\"error\":\"closed: idle the longest when all places were "
                     "taken and another client came\"}\n<eof>");
    for (int i = 2; i < CONTROL_MAX_CLIENTS; i++)
        cr_assert_str_eq(received(fds[i]), "", "client %d keeps its place", i);
    cr_assert_str_eq(received(fds[0]), "");
    for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
        close(fds[i]);
    close(late);
    control_close(&c);
}

/* @req IEC62443-CR3.5 */
Test(control, a_key_given_twice_is_refused_with_a_reply_naming_it)
{
    control_t c;
    open_control(&c);
    int fd = connect_client(&c);
    control_service(&c, NO_GATEWAY, 0);
    send_text(fd, "{\"device\":\"dev-1\",\"command\":\"rotate_keys\",\"device\":\"dev-2\"}\n");
    control_service(&c, NO_GATEWAY, 1);
    cr_assert_str_eq(received(fd), "{\"ok\":false,\"error\":\"duplicate key \\\"device\\\": each "
                                   "key may appear once\"}\n");
    send_text(fd, "{\"command\":\"a\",\"command\":\"b\"}\n");
    control_service(&c, NO_GATEWAY, 2);
    cr_assert(strstr(received(fd), "duplicate key \\\"command\\\"") != NULL);
    /* A key that would need escaping is not echoed: the reply stays valid JSON. */
    send_text(fd, "{\"k\xc3\xa9\":1,\"k\xc3\xa9\":2}\n");
    control_service(&c, NO_GATEWAY, 3);
    cr_assert_str_eq(received(fd),
                     "{\"ok\":false,\"error\":\"duplicate key: each key may appear once\"}\n");
    close(fd);
    control_close(&c);
}

/* associate and dissociate change the gateway's associations, without a gateway: they are the
 * program's, not the library's. */
Test(control, associate_and_dissociate_change_the_associations_and_say_where_they_are_kept)
{
    control_t c;
    open_control(&c);
    associations_t a;
    memset(&a, 0, sizeof a);
    int fd = connect_client(&c);
    control_service(&c, NO_GATEWAY, 0);
    send_text(fd, "{\"device\":\"dev-1\",\"command\":\"associate\",\"patient_id\":\"MRN1\"}\n");
    control_service(&c, NO_GATEWAY, 1);
    cr_assert_str_eq(received(fd), "{\"ok\":false,\"error\":\"associations are used only with "
                                   "--hl7: this gateway does not keep them\"}\n");
    c.assoc = &a;
    send_text(fd, "{\"device\":\"dev-1\",\"command\":\"associate\",\"patient_id\":\"MRN1\","
                  "\"patient_name\":\"Doe^Jane\",\"location\":\"ICU^1^\\\"A\\\"\"}\n");
    control_service(&c, NO_GATEWAY, 2);
    cr_assert_str_eq(received(fd), "{\"ok\":true,\"device\":\"dev-1\",\"kept\":\"in memory only "
                                   "(no --associations file): lost when the gateway stops\"}\n");
    const association_t *x = associations_find(&a, "dev-1");
    cr_assert_not_null(x);
    cr_expect_str_eq(x->patient_id, "MRN1");
    cr_expect_str_eq(x->patient_name, "Doe^Jane");
    cr_expect_str_eq(x->location, "ICU^1^\"A\"");
    /* Refusals are the checks' own sentences, escaped for JSON. */
    send_text(fd, "{\"device\":\"dev 1\",\"command\":\"associate\",\"patient_id\":\"MRN1\"}\n");
    control_service(&c, NO_GATEWAY, 3);
    cr_assert_str_eq(received(fd),
                     "{\"ok\":false,\"error\":\"DEVICE-ID is not a device id: it must match "
                     "[A-Za-z0-9][A-Za-z0-9._-]{0,63}, the device certificate's CN\"}\n");
    send_text(fd, "{\"device\":\"dev-2\",\"command\":\"associate\"}\n");
    control_service(&c, NO_GATEWAY, 4);
    cr_assert(strstr(received(fd), "\"error\":\"PATIENT-ID is empty") != NULL);
    send_text(fd, "{\"device\":\"dev-2\",\"command\":\"associate\",\"patient_id\":7}\n");
    control_service(&c, NO_GATEWAY, 5);
    cr_assert_str_eq(received(fd), "{\"ok\":false,\"error\":\"patient_id, patient_name and "
                                   "location are strings\"}\n");
    send_text(fd, "{\"device\":\"dev-2\",\"command\":\"associate\",\"patient_id\":\"M\","
                  "\"location\":\"a^b^c^d\"}\n");
    control_service(&c, NO_GATEWAY, 6);
    cr_assert_str_eq(received(fd), "{\"ok\":false,\"error\":\"LOCATION has 4 components separated "
                                   "by '^', at most 3: write PointOfCare^Room^Bed\"}\n");
    cr_expect_null(associations_find(&a, "dev-2"));
    send_text(fd, "{\"device\":\"dev-1\",\"command\":\"dissociate\"}\n");
    control_service(&c, NO_GATEWAY, 7);
    cr_assert(strstr(received(fd), "{\"ok\":true,\"device\":\"dev-1\"") != NULL);
    cr_expect_null(associations_find(&a, "dev-1"));
    send_text(fd, "{\"device\":\"dev-1\",\"command\":\"dissociate\"}\n");
    control_service(&c, NO_GATEWAY, 8);
    cr_assert_str_eq(received(fd), "{\"ok\":false,\"error\":\"the device has no association\"}\n");
    close(fd);
    control_close(&c);
    associations_free(&a);
}
