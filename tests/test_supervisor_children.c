/*
 * The child table with real processes (/bin/sh, /bin/sleep, /bin/false): spawning, state
 * changes, restart backoff, ordered shutdown with SIGKILL escalation, and death with the parent.
 * Policies use short delays so nothing waits long; no assertion depends on how fast things run.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "supervisor/children.h"
#include "tests/support.h"

#define EVENTS_MAX 64

typedef struct {
    int count;
    uint32_t index[EVENTS_MAX];
    shm_proc_t proc[EVENTS_MAX];
    pid_t died[EVENTS_MAX];
} events_t;

static void s_record(uint32_t index, const shm_proc_t *proc, pid_t died, void *arg)
{
    events_t *events = arg;
    if (events->count < EVENTS_MAX) {
        events->index[events->count] = index;
        events->proc[events->count] = *proc;
        events->died[events->count] = died;
        events->count++;
    }
}

static void s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Reaps until entry `index` has exited once; the bound only turns a hang into a failure. */
static void s_wait_exit(children_t *children, int index)
{
    for (int i = 0; i < 10000; i++) {
        shm_proc_t proc;
        children_reap(children);
        assert_int_equal(children_get(children, index, &proc), 0);
        if (proc.pid == 0)
            return;
        s_sleep_ms(1);
    }
    fail_msg("child %d never exited", index);
}

/* Ticks until the pending restart of `index` has happened. */
static void s_wait_restart(children_t *children, int index)
{
    for (int i = 0; i < 10000; i++) {
        int timeout = children_timeout_ms(children);
        if (timeout > 0)
            s_sleep_ms(timeout);
        children_tick(children);
        shm_proc_t proc;
        children_get(children, index, &proc);
        if (proc.state != SHM_PROC_BACKOFF)
            return;
    }
    fail_msg("child %d never restarted", index);
}

static void test_states_of_a_healthy_child(void **state)
{
    events_t events = {0};
    children_policy_t policy = children_default_policy;
    policy.running_after_ms = 0;
    children_t *children = children_new(&policy, s_record, &events);
    assert_non_null(children);
    char *argv[] = {"sleep", "30", NULL};
    assert_int_equal(children_add(children, "sleeper", "sleeper.0", "/bin/sleep", argv), 0);
    assert_int_equal(children_count(children), 1);

    assert_int_equal(children_start_all(children), 0);
    shm_proc_t proc;
    assert_int_equal(children_get(children, 0, &proc), 0);
    assert_true(proc.pid > 0);
    assert_int_equal(proc.state, SHM_PROC_STARTING);
    assert_string_equal(proc.role, "sleeper");
    assert_string_equal(proc.name, "sleeper.0");
    pid_t pid = proc.pid;

    children_tick(children);
    children_get(children, 0, &proc);
    assert_int_equal(proc.state, SHM_PROC_RUNNING);
    assert_int_equal(children_reap(children), 0);

    children_stop_all(children);
    children_get(children, 0, &proc);
    assert_int_equal(proc.state, SHM_PROC_STOPPED);
    assert_int_equal(proc.pid, 0);
    assert_true(WIFSIGNALED(proc.last_exit));
    assert_int_equal(WTERMSIG(proc.last_exit), SIGTERM);
    assert_int_equal(proc.restarts, 0);

    /* STARTING, RUNNING, STOPPING, STOPPED, and only the last one reports the death. */
    assert_int_equal(events.count, 4);
    assert_int_equal(events.proc[0].state, SHM_PROC_STARTING);
    assert_int_equal(events.proc[1].state, SHM_PROC_RUNNING);
    assert_int_equal(events.proc[2].state, SHM_PROC_STOPPING);
    assert_int_equal(events.proc[3].state, SHM_PROC_STOPPED);
    assert_int_equal(events.died[2], 0);
    assert_int_equal(events.died[3], pid);
    assert_int_equal(kill(pid, 0), -1);

    children_destroy(&children);
    assert_null(children);
    children_destroy(&children);
}

static void test_backoff_doubles_up_to_the_cap(void **state)
{
    events_t events = {0};
    children_policy_t policy = {.backoff_initial_ms = 5,
                                .backoff_max_ms = 20,
                                .backoff_reset_ms = 3600 * 1000,
                                .running_after_ms = 3600 * 1000,
                                .stop_timeout_ms = 5000};
    children_t *children = children_new(&policy, s_record, &events);
    char *argv[] = {"false", NULL};
    assert_int_equal(children_add(children, "failing", "failing", "/bin/false", argv), 0);
    assert_int_equal(children_start_all(children), 0);

    const int64_t expected[] = {5, 10, 20, 20, 20};
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        shm_proc_t proc;
        children_get(children, 0, &proc);
        pid_t pid = proc.pid;
        assert_true(pid > 0);
        s_wait_exit(children, 0);
        children_get(children, 0, &proc);
        assert_int_equal(proc.state, SHM_PROC_BACKOFF);
        assert_true(WIFEXITED(proc.last_exit));
        assert_int_equal(WEXITSTATUS(proc.last_exit), 1);
        assert_int_equal(proc.restarts, i);
        assert_int_equal(children_backoff_ms(children, 0), expected[i]);
        assert_int_equal(events.proc[events.count - 1].state, SHM_PROC_BACKOFF);
        assert_int_equal(events.died[events.count - 1], pid);
        s_wait_restart(children, 0);
    }
    children_stop_all(children);
    children_destroy(&children);
}

static void test_backoff_resets_after_a_stable_run(void **state)
{
    children_policy_t policy = {.backoff_initial_ms = 5,
                                .backoff_max_ms = 1000,
                                .backoff_reset_ms = 1, /* the child always lives longer than this */
                                .running_after_ms = 3600 * 1000,
                                .stop_timeout_ms = 5000};
    children_t *children = children_new(&policy, NULL, NULL);
    char *argv[] = {"sh", "-c", "sleep 0.02; exit 3", NULL};
    assert_int_equal(children_add(children, "flaky", "flaky", "/bin/sh", argv), 0);
    assert_int_equal(children_start_all(children), 0);
    for (int i = 0; i < 3; i++) {
        s_wait_exit(children, 0);
        assert_int_equal(children_backoff_ms(children, 0), 5);
        s_wait_restart(children, 0);
    }
    shm_proc_t proc;
    children_get(children, 0, &proc);
    assert_int_equal(proc.restarts, 3);
    children_stop_all(children);
    children_destroy(&children);
}

static void test_killed_child_is_restarted(void **state)
{
    events_t events = {0};
    children_policy_t policy = children_default_policy;
    policy.backoff_initial_ms = 1;
    children_t *children = children_new(&policy, s_record, &events);
    char *argv[] = {"sleep", "30", NULL};
    assert_int_equal(children_add(children, "sleeper", "sleeper", "/bin/sleep", argv), 0);
    children_start_all(children);
    shm_proc_t proc;
    children_get(children, 0, &proc);
    pid_t first = proc.pid;

    assert_int_equal(kill(first, SIGKILL), 0);
    s_wait_exit(children, 0);
    children_get(children, 0, &proc);
    assert_int_equal(proc.state, SHM_PROC_BACKOFF);
    assert_true(WIFSIGNALED(proc.last_exit));
    assert_int_equal(WTERMSIG(proc.last_exit), SIGKILL);

    s_wait_restart(children, 0);
    children_get(children, 0, &proc);
    assert_int_equal(proc.state, SHM_PROC_STARTING);
    assert_true(proc.pid > 0);
    assert_int_not_equal(proc.pid, first);
    assert_int_equal(proc.restarts, 1);
    children_stop_all(children);
    children_destroy(&children);
}

static void test_missing_program_is_a_spawn_error(void **state)
{
    children_policy_t policy = children_default_policy;
    policy.backoff_initial_ms = 1000;
    children_t *children = children_new(&policy, NULL, NULL);
    char *argv[] = {"nothing", NULL};
    assert_int_equal(children_add(children, "ghost", "ghost", "/nonexistent/impactd-test-program", argv), 0);
    assert_int_equal(children_start_all(children), -1);
    shm_proc_t proc;
    children_get(children, 0, &proc);
    assert_int_equal(proc.pid, 0);
    assert_int_equal(proc.state, SHM_PROC_BACKOFF);
    assert_true(children_timeout_ms(children) >= 0);
    children_stop_all(children);
    children_get(children, 0, &proc);
    assert_int_equal(proc.state, SHM_PROC_STOPPED);
    assert_int_equal(children_timeout_ms(children), -1);
    children_destroy(&children);
}

/* Waits until `path` exists: the child's way of saying its trap is set (the bound only turns a hang into a failure). */
static void s_wait_file(const char *path)
{
    for (int i = 0; i < 10000 && access(path, F_OK) != 0; i++)
        s_sleep_ms(1);
    assert_int_equal(access(path, F_OK), 0);
}

static void test_stop_escalates_to_sigkill(void **state)
{
    children_policy_t policy = children_default_policy;
    policy.stop_timeout_ms = 100;
    children_t *children = children_new(&policy, NULL, NULL);
    char *dir = support_tmpdir("impactd-children");
    char script[512], ready[300];
    snprintf(ready, sizeof(ready), "%s/ready", dir);
    /* An ignored signal stays ignored across exec, so this sleep cannot be stopped politely. */
    snprintf(script, sizeof(script), "trap '' TERM; touch %s; exec sleep 30", ready);
    char *argv[] = {"sh", "-c", script, NULL};
    assert_int_equal(children_add(children, "stubborn", "stubborn", "/bin/sh", argv), 0);
    children_start_all(children);
    s_wait_file(ready);
    children_stop_all(children);
    shm_proc_t proc;
    children_get(children, 0, &proc);
    assert_int_equal(proc.state, SHM_PROC_STOPPED);
    assert_true(WIFSIGNALED(proc.last_exit));
    assert_int_equal(WTERMSIG(proc.last_exit), SIGKILL);
    children_destroy(&children);
    support_rmtree(&dir);
}

static char *s_read_file(const char *path)
{
    static char buf[256];
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_stop_order_is_reverse_and_pools_stop_together(void **state)
{
    char *dir = support_tmpdir("impactd-children");
    char file[256];
    snprintf(file, sizeof(file), "%s/order", dir);
    children_t *children = children_new(NULL, NULL, NULL);
    const char *roles[] = {"broker", "store", "store", "http"};
    const char *names[] = {"broker", "store.0", "store.1", "http"};
    for (int i = 0; i < 4; i++) {
        char script[768];
        /* The trap runs between sleeps, so each child appends its role once and exits. */
        snprintf(script, sizeof(script), "trap 'echo %s >> %s; exit 0' TERM; touch %s/ready.%s; while :; do sleep 0.01; done",
                 roles[i], file, dir, names[i]);
        char *argv[] = {"sh", "-c", script, NULL};
        assert_int_equal(children_add(children, roles[i], names[i], "/bin/sh", argv), i);
    }
    children_start_all(children);
    for (int i = 0; i < 4; i++) {
        char ready[300];
        snprintf(ready, sizeof(ready), "%s/ready.%s", dir, names[i]);
        s_wait_file(ready);
    }
    children_stop_all(children);
    assert_string_equal(s_read_file(file), "http\nstore\nstore\nbroker\n");
    for (int i = 0; i < 4; i++) {
        shm_proc_t proc;
        children_get(children, i, &proc);
        assert_int_equal(proc.state, SHM_PROC_STOPPED);
        assert_true(WIFEXITED(proc.last_exit));
        assert_int_equal(WEXITSTATUS(proc.last_exit), 0);
    }
    children_destroy(&children);
    support_rmtree(&dir);
}

static void test_children_die_with_the_supervisor(void **state)
{
    /* The test process becomes the subreaper, so the orphaned grandchild is ours to wait for. */
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t supervisor = fork();
    assert_true(supervisor >= 0);
    if (supervisor == 0) {
        children_t *children = children_new(NULL, NULL, NULL);
        char *argv[] = {"sleep", "30", NULL};
        children_add(children, "sleeper", "sleeper", "/bin/sleep", argv);
        children_start_all(children);
        shm_proc_t proc;
        children_get(children, 0, &proc);
        ssize_t ignored = write(fds[1], &proc.pid, sizeof(proc.pid));
        (void)ignored;
        for (;;)
            pause();
    }
    close(fds[1]);
    int32_t grandchild = 0;
    assert_int_equal(read(fds[0], &grandchild, sizeof(grandchild)), sizeof(grandchild));
    close(fds[0]);
    assert_true(grandchild > 0);

    kill(supervisor, SIGKILL);
    assert_int_equal(waitpid(supervisor, NULL, 0), supervisor);
    int status = 0;
    pid_t r = 0;
    for (int i = 0; i < 10000 && r == 0; i++) {
        r = waitpid(grandchild, &status, WNOHANG);
        if (r == 0)
            s_sleep_ms(1);
    }
    assert_int_equal(r, grandchild);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGTERM);
    prctl(PR_SET_CHILD_SUBREAPER, 0);
}

static void test_add_rejects_overlong_names(void **state)
{
    children_t *children = children_new(NULL, NULL, NULL);
    char *argv[] = {"true", NULL};
    char name[SHM_NAME_MAX + 8];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    assert_int_equal(children_add(children, "role", name, "/bin/true", argv), -1);
    assert_int_equal(children_add(children, "a-role-name-too-long", "x", "/bin/true", argv), -1);
    assert_int_equal(children_count(children), 0);
    children_destroy(&children);
}

/* A dynamic entry that exits 0 has finished its work: it is removed, not restarted, and its
 * slot is the next spawn's. One that crashes is restarted like a fixed entry. */
static void test_spawned_entries_end_on_exit_zero_and_restart_on_failure(void **state)
{
    events_t events = {0};
    children_policy_t policy = children_default_policy;
    policy.backoff_initial_ms = 1;
    children_t *children = children_new(&policy, s_record, &events);
    char *fixed_argv[] = {"sleep", "30", NULL};
    assert_int_equal(children_add(children, "broker", "broker", "/bin/sleep", fixed_argv), 0);
    children_start_all(children);

    char *done_argv[] = {"true", NULL};
    assert_int_equal(children_spawn(children, "dialer", "dialer:1", "/bin/true", done_argv), 1);
    assert_int_equal(children_find(children, "dialer:1"), 1);
    s_wait_exit(children, 1);
    shm_proc_t proc;
    assert_int_equal(children_get(children, 1, &proc), 0);
    assert_int_equal(proc.state, SHM_PROC_EMPTY);
    assert_int_equal(children_find(children, "dialer:1"), -1);
    assert_int_equal(events.proc[events.count - 1].state, SHM_PROC_EMPTY);
    assert_string_equal(events.proc[events.count - 1].name, "dialer:1");
    assert_true(events.died[events.count - 1] > 0);

    /* The freed slot is reused; a failing entry goes to BACKOFF and starts again. */
    char *fail_argv[] = {"false", NULL};
    assert_int_equal(children_spawn(children, "dialer", "dialer:2", "/bin/false", fail_argv), 1);
    assert_int_equal(children_count(children), 2);
    errno = 0;
    assert_int_equal(children_spawn(children, "dialer", "dialer:2", "/bin/false", fail_argv), -1);
    assert_int_equal(errno, EEXIST);
    s_wait_exit(children, 1);
    children_get(children, 1, &proc);
    assert_int_equal(proc.state, SHM_PROC_BACKOFF);
    s_wait_restart(children, 1);
    children_get(children, 1, &proc);
    assert_int_equal(proc.restarts, 1);

    /* Removing an entry with no process frees it at once. */
    s_wait_exit(children, 1);
    assert_int_equal(children_remove(children, "dialer:2"), 0);
    children_get(children, 1, &proc);
    assert_int_equal(proc.state, SHM_PROC_EMPTY);
    errno = 0;
    assert_int_equal(children_remove(children, "dialer:2"), -1);
    assert_int_equal(errno, ENOENT);
    children_stop_all(children);
    children_destroy(&children);
}

/* Removal stops a running process politely, escalates to SIGKILL, and frees the slot. */
static void test_remove_stops_a_running_entry(void **state)
{
    events_t events = {0};
    children_policy_t policy = children_default_policy;
    policy.stop_timeout_ms = 50;
    children_t *children = children_new(&policy, s_record, &events);
    char *polite_argv[] = {"sleep", "30", NULL};
    char *stubborn_argv[] = {"sh", "-c", "trap '' TERM; while :; do sleep 0.01; done", NULL};
    assert_int_equal(children_spawn(children, "dialer", "dialer:1", "/bin/sleep", polite_argv), 0);
    assert_int_equal(children_spawn(children, "dialer", "dialer:2", "/bin/sh", stubborn_argv), 1);
    s_sleep_ms(100); /* the shell must have set its trap before it is signalled */
    shm_proc_t polite, stubborn;
    children_get(children, 0, &polite);
    children_get(children, 1, &stubborn);

    assert_int_equal(children_remove(children, "dialer:1"), 0);
    assert_int_equal(children_remove(children, "dialer:2"), 0);
    shm_proc_t proc;
    children_get(children, 1, &proc);
    assert_int_equal(proc.state, SHM_PROC_STOPPING);
    for (int i = 0; i < 10000 && (children_find(children, "dialer:1") >= 0 || children_find(children, "dialer:2") >= 0); i++) {
        int timeout = children_timeout_ms(children);
        s_sleep_ms(timeout >= 0 && timeout < 5 ? timeout : 5);
        children_tick(children);
        children_reap(children);
    }
    assert_int_equal(children_find(children, "dialer:1"), -1);
    assert_int_equal(children_find(children, "dialer:2"), -1);
    assert_int_equal(kill(polite.pid, 0), -1);
    assert_int_equal(kill(stubborn.pid, 0), -1);
    bool killed = false;
    for (int i = 0; i < events.count; i++)
        if (events.died[i] == stubborn.pid && events.proc[i].state == SHM_PROC_EMPTY)
            killed = WIFSIGNALED(events.proc[i].last_exit) && WTERMSIG(events.proc[i].last_exit) == SIGKILL;
    assert_true(killed);
    children_destroy(&children);
}

/* Dynamic entries come after the fixed ones and stop first, as one pool across free slots. */
static void test_stop_order_puts_spawned_entries_first(void **state)
{
    char *dir = support_tmpdir("impactd-children");
    char file[256];
    snprintf(file, sizeof(file), "%s/order", dir);
    children_t *children = children_new(NULL, NULL, NULL);
    const char *roles[] = {"broker", "http", "dialer", "dialer", "dialer"};
    const char *names[] = {"broker", "http", "dialer:1", "dialer:2", "dialer:3"};
    for (int i = 0; i < 5; i++) {
        char script[768];
        snprintf(script, sizeof(script), "trap 'echo %s >> %s; exit 0' TERM; touch %s/ready.%s; while :; do sleep 0.01; done",
                 roles[i], file, dir, names[i]);
        char *argv[] = {"sh", "-c", script, NULL};
        if (i < 2)
            assert_int_equal(children_add(children, roles[i], names[i], "/bin/sh", argv), i);
        else
            assert_int_equal(children_spawn(children, roles[i], names[i], "/bin/sh", argv), i);
        if (i == 1)
            children_start_all(children);
    }
    for (int i = 0; i < 5; i++) {
        char ready[300];
        snprintf(ready, sizeof(ready), "%s/ready.%s", dir, names[i]);
        s_wait_file(ready);
    }
    /* A hole between dialers does not split their group. */
    assert_int_equal(children_remove(children, "dialer:2"), 0);
    while (children_find(children, "dialer:2") >= 0) {
        s_sleep_ms(1);
        children_reap(children);
    }
    children_stop_all(children);
    assert_string_equal(s_read_file(file), "dialer\ndialer\ndialer\nhttp\nbroker\n");
    children_destroy(&children);
    support_rmtree(&dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_states_of_a_healthy_child),
        cmocka_unit_test(test_backoff_doubles_up_to_the_cap),
        cmocka_unit_test(test_backoff_resets_after_a_stable_run),
        cmocka_unit_test(test_killed_child_is_restarted),
        cmocka_unit_test(test_missing_program_is_a_spawn_error),
        cmocka_unit_test(test_stop_escalates_to_sigkill),
        cmocka_unit_test(test_stop_order_is_reverse_and_pools_stop_together),
        cmocka_unit_test(test_children_die_with_the_supervisor),
        cmocka_unit_test(test_add_rejects_overlong_names),
        cmocka_unit_test(test_spawned_entries_end_on_exit_zero_and_restart_on_failure),
        cmocka_unit_test(test_remove_stops_a_running_entry),
        cmocka_unit_test(test_stop_order_puts_spawned_entries_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
