#include "common/signals.h"

#include <czmq.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

static volatile sig_atomic_t s_stop;

static void s_on_stop_signal(int signo)
{
    s_stop = 1;
}

void signals_install(void)
{
    zsys_handler_set(NULL);
    /* czmq initialises its globals lazily on the first socket, which is not thread-safe: two
     * threads creating their first sockets at once trip its assertions. Do it here, once. */
    zsys_init();
    struct sigaction sa = {0};
    sa.sa_handler = s_on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool signals_stop_requested(void)
{
    return s_stop != 0;
}

int signals_run_actor(zactor_fn *actor_fn, void *args)
{
    zactor_t *actor = zactor_new(actor_fn, args);
    if (actor == NULL)
        return 1;
    /* An actor that returns by itself (lost its database, say) signals its pipe; that is a
     * failure of this process, which exits so the supervisor restarts it with backoff. */
    zpoller_t *poller = zpoller_new(actor, NULL);
    int rc = 0;
    while (!signals_stop_requested()) {
        if (zpoller_wait(poller, 100) == actor) {
            rc = 1;
            break;
        }
    }
    zpoller_destroy(&poller);
    zactor_destroy(&actor);
    return rc;
}
