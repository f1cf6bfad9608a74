#include "broker/broker.h"

#include "common/log.h"
#include "common/signals.h"

int broker_main(const impact_config_t *config)
{
    char front[128], back[128];
    log_init("broker");
    signals_install();
    if (config_endpoint(config, BRK_FRONT_ENDPOINT, front, sizeof(front)) != 0 ||
        config_endpoint(config, BRK_BACK_ENDPOINT, back, sizeof(back)) != 0) {
        log_error("run directory path too long: %s", config->run_dir);
        return 1;
    }
    /* A broker restarted after a crash finds its old socket files; binding over them is what
     * lets actors and front ends reconnect without being restarted themselves. */
    brk_config_t brk = {.front_endpoint = front, .back_endpoint = back};
    log_info("routing on %s and %s", front, back);
    int rc = signals_run_actor(brk_actor, &brk);
    log_info("stopped");
    return rc;
}
