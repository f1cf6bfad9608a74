/*
 * The data directory lock: a second holder is refused with the first one's pid, a clean exit
 * clears the record, and a record left by a dead supervisor gets its run dir and shared-memory
 * object removed.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "supervisor/instance.h"
#include "tests/support.h"

static long s_file_size(const char *dir)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, INSTANCE_LOCK_FILE);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

static void test_second_holder_is_refused(void **state)
{
    char *dir = support_tmpdir("impactd-instance");
    char err[256], pid[32];
    bool busy = true;
    instance_t *first = instance_lock(dir, &busy, err, sizeof(err));
    assert_non_null(first);
    assert_false(busy);
    assert_int_equal(instance_claim(first), 0);

    instance_t *second = instance_lock(dir, &busy, err, sizeof(err));
    assert_null(second);
    assert_true(busy);
    snprintf(pid, sizeof(pid), "pid %d", (int)getpid());
    assert_non_null(strstr(err, pid));

    assert_int_equal(instance_record(first, "/tmp/impactd-none", true, "/impactd-none"), 0);
    assert_true(s_file_size(dir) > 0);
    instance_destroy(&first);
    assert_null(first);
    instance_destroy(&first);
    assert_int_equal(s_file_size(dir), 0);

    second = instance_lock(dir, &busy, err, sizeof(err));
    assert_non_null(second);
    instance_destroy(&second);
    support_rmtree(&dir);
}

static void test_leftovers_of_a_dead_supervisor_are_removed(void **state)
{
    char *dir = support_tmpdir("impactd-instance");
    char *run_dir = support_tmpdir("impactd-run");
    char socket_file[512], shm_name[64], record[1024], path[512], err[256];
    snprintf(socket_file, sizeof(socket_file), "%s/broker-front.ipc", run_dir);
    FILE *f = fopen(socket_file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(shm_name, sizeof(shm_name), "/impactd-test-%d", (int)getpid());
    int fd = shm_open(shm_name, O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);

    /* What a supervisor killed with SIGKILL leaves in its lock file. */
    snprintf(path, sizeof(path), "%s/%s", dir, INSTANCE_LOCK_FILE);
    snprintf(record, sizeof(record), "pid=999999\nrun_dir=%s\nown_run_dir=1\nshm_name=%s\n", run_dir, shm_name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(record, f);
    fclose(f);

    bool busy;
    instance_t *instance = instance_lock(dir, &busy, err, sizeof(err));
    assert_non_null(instance);
    assert_int_equal(instance_claim(instance), 0);
    assert_int_equal(access(run_dir, F_OK), -1);
    assert_int_equal(shm_open(shm_name, O_RDONLY, 0), -1);
    instance_destroy(&instance);
    support_rmtree(&run_dir);
    support_rmtree(&dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_second_holder_is_refused),
        cmocka_unit_test(test_leftovers_of_a_dead_supervisor_are_removed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
