/* The background thread that posts activity reports to the controller,
 * reads the server's own signals for them (server.h) and applies the size
 * the controller answers with.
 *
 * It sleeps in poll() on an eventfd; the audit hook writes that eventfd on a
 * 0<->1 connection change (a non-blocking write, the only syscall the hook
 * ever makes), SET GLOBAL wake_activity_interval and plugin deinit write it
 * too.  Everything slow (DNS, connect, HTTP) happens here, never on a
 * client thread. */
#ifndef WA_REPORTER_H
#define WA_REPORTER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "hook.h"
#include "server.h"

struct wa_reporter {
    /* settings, copied at start */
    char url[WA_URL_MAX + 128]; /* room for the appended contract path */
    char token[WA_TOKEN_MAX + 1];
    char compute_id[WA_COMPUTE_ID_MAX + 1];
    _Atomic unsigned interval_s;

    struct wa_hook *hook;
    struct wa_server server; /* the local SQL session: signals and targets */
    int64_t process_start_boot_ms; /* -1: fall back to plugin start */
    int64_t plugin_start_boot_ms;

    int efd;
    pthread_t thread;
    int running;
    _Atomic int stop;

    /* shown as status variables */
    _Atomic uint64_t seq;
    _Atomic uint64_t sent;
    _Atomic uint64_t failed;
    _Atomic long last_status;     /* HTTP status of the last attempt, 0 = none */
    _Atomic int64_t last_ok_ms;   /* wall clock of the last accepted report */
    _Atomic int64_t backoff_ms;   /* current retry delay, 0 when healthy */
};

/* Start the thread.  With an empty url it idles until stopped.  0 or -1. */
int wa_reporter_start(struct wa_reporter *r, struct wa_hook *hook);
/* Stop and join; safe to call when start failed or never ran. */
void wa_reporter_stop(struct wa_reporter *r);
/* Non-blocking wake-up (hook transitions, interval changes). */
void wa_reporter_poke(void *r);

#endif
