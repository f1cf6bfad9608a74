/*
 * The shared-memory stats region: one per impactd instance, created by the supervisor, mapped
 * read-write by the processes that own slots and read-only by everyone else (the HTTP front end
 * answers /v1/health and campaign stats from it without a round trip).
 *
 * Two tables of fixed-size slots follow a versioned header:
 *   - process slots: one per supervised child; the supervisor is their only writer.
 *   - campaign slots: one per running campaign; the dialer that claimed the slot is its only
 *     writer, so a slot never needs a lock, only a seqlock so readers get a consistent copy.
 *
 * A writer killed mid-write leaves its seqlock odd; readers give up after bounded retries instead
 * of spinning, and the supervisor (which sees the death through waitpid) calls
 * shm_region_recover_pid() to zero the dead writer's slots and make them readable again.
 *
 * Everything read from the region is treated as untrusted: sizes and offsets are checked against
 * the mapped length before use.
 */
#ifndef IMPACT_SHM_STATS_H
#define IMPACT_SHM_STATS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SHM_VERSION_MAJOR  1
#define SHM_VERSION_MINOR  2
#define SHM_PROC_SLOTS     512
#define SHM_CAMPAIGN_SLOTS 1024
#define SHM_NAME_MAX       48
/* Latency histograms: four buckets per doubling (each bucket at most 19% wide), exact below
 * 8 us, the last bucket holding everything from about 29 s up. */
#define SHM_LATENCY_BUCKETS 96

typedef struct shm_region_t shm_region_t;

typedef enum {
    SHM_PROC_EMPTY = 0,
    SHM_PROC_STARTING,
    SHM_PROC_RUNNING,
    SHM_PROC_BACKOFF, /* exited unexpectedly; restart pending */
    SHM_PROC_STOPPING,
    SHM_PROC_STOPPED,
} shm_proc_state_t;

/* What the supervisor knows about one child. */
typedef struct {
    char role[16];           /* "http", "broker", "store", "fanout", "dialer" */
    char name[SHM_NAME_MAX]; /* unique instance name: "store.1", "dialer:42" */
    int32_t pid;
    uint32_t state; /* shm_proc_state_t */
    uint32_t restarts;
    int32_t last_exit; /* wait status of the last exit, -1 if none */
    int64_t started_unix_ms;
    int64_t updated_unix_ms;
} shm_proc_t;

/* What a dialer publishes about its campaign. Counters are totals since the dialer started the
 * campaign; rates are over the windows the names give. Minor versions only append fields. */
typedef struct {
    int64_t campaign_id;
    int64_t updated_unix_ms;
    uint32_t callers_on_hold;
    uint32_t callers_on_call;
    uint32_t callers_wrap_up;
    uint32_t lines_ringing;
    uint64_t dials;
    uint64_t answered_human;
    uint64_t answered_machine;
    uint64_t abandoned;
    double answer_rate; /* live answers per dial, current estimate */
    double abandon_rate_24h;
    double abandon_rate_30d;
    double dial_ratio; /* current pacing decision: lines per available caller */
    /* minor 1 */
    int64_t account_id; /* the campaign's account: the front end answers only that account's keys */
    uint32_t callers_preview;
    uint32_t paused;         /* 1 while the campaign is paused */
    double pacing_threshold; /* the predictive policy's aggressiveness now; 0 in Preview and Power */
    uint64_t talked;         /* calls put through to a caller that ended normally */
    /* minor 2: how long the dialer took, in real microseconds, from the event that made a bridge
     * possible (a live answer, a caller becoming free) to ordering it; since the dialer started */
    uint64_t bridge_decisions;
    uint64_t bridge_decision_max_us;
    uint32_t bridge_decision_buckets[SHM_LATENCY_BUCKETS];
} shm_campaign_stats_t;

/** The histogram bucket of a latency of `us` microseconds. */
uint32_t shm_latency_bucket(uint64_t us);

/** The largest latency bucket `bucket` holds, in microseconds. */
uint64_t shm_latency_bucket_max_us(uint32_t bucket);

/** The `q` quantile (0 < q <= 1) of a histogram of `total` samples, as the largest value of the
 *  bucket that reaches it (an upper bound, never below the truth), capped at `max_us`. 0 when
 *  empty. */
uint64_t shm_latency_quantile(const uint32_t buckets[SHM_LATENCY_BUCKETS], uint64_t total, uint64_t max_us, double q);

/*
 * Every function below that fails sets errno. Names are POSIX shared-memory names ("/impactd-42").
 */

/** Creates the region (fails if it exists), sized for the slot counts above. Supervisor only.
 *  NULL with errno EEXIST when the name is taken, or the error of shm_open/ftruncate/
 *  posix_fallocate/mmap (ENOSPC when /dev/shm is full); a failed create leaves no object behind. */
shm_region_t *shm_region_create(const char *name);

/** Maps an existing region; NULL if absent (ENOENT), still initialising (EAGAIN: retry later), or
 *  of another major version, other slot counts, or a header inconsistent with its size (EPROTO).
 *  A read-only mapping refuses every write with EBADF instead of faulting. */
shm_region_t *shm_region_open(const char *name, bool writable);

/** Unmaps (the object stays until shm_region_unlink). */
void shm_region_destroy(shm_region_t **self_p);

/** Removes the named object. 0 or -1 (ENOENT counts as success). */
int shm_region_unlink(const char *name);

/** Supervisor: publishes process slot `index` (< SHM_PROC_SLOTS); it is the slot's only writer. */
int shm_proc_write(shm_region_t *self, uint32_t index, const shm_proc_t *proc);

/** Reads process slot `index`. 0, or -1 when torn after bounded retries (errno EAGAIN: a writer
 *  died mid-write, or kept being preempted mid-write). role and name are always NUL-terminated. */
int shm_proc_read(const shm_region_t *self, uint32_t index, shm_proc_t *out);

/** Dialer: claims a free slot for `campaign_id` (> 0) as writer `pid` (or re-claims its own).
 *  A slot the campaign still holds under a dead (reaped) pid not yet recovered is taken over. The
 *  slot's payload starts zeroed. -1 with ENOSPC when full, EBUSY when a live process holds the campaign
 *  (also when two processes race to claim one campaign: then neither may get it). */
int shm_campaign_claim(shm_region_t *self, int64_t campaign_id, pid_t pid, uint32_t *slot);

/** Dialer: publishes its slot. stats->campaign_id is ignored: the slot's campaign is stamped on
 *  every write. -1 with EPERM when the slot is not claimed (released or recovered). */
int shm_campaign_write(shm_region_t *self, uint32_t slot, const shm_campaign_stats_t *stats);

/** Dialer: gives the slot back on clean exit (only its owner may). Payload zeroed, campaign cleared. */
int shm_campaign_release(shm_region_t *self, uint32_t slot);

/** Finds the slot of a campaign. 0 or -1 (ENOENT). */
int shm_campaign_find(const shm_region_t *self, int64_t campaign_id, uint32_t *slot);

/** Reads a campaign slot consistently. 0, or -1 when torn after bounded retries (EAGAIN). The
 *  slot may have changed hands since shm_campaign_find: out->campaign_id tells whose figures these
 *  are (0 for a free slot). */
int shm_campaign_read(const shm_region_t *self, uint32_t slot, shm_campaign_stats_t *out);

/** Supervisor: after `pid` died, frees its campaign slots, bumps their
 *  generation and repairs any seqlock it left odd. Returns slots freed, or -1. */
int shm_region_recover_pid(shm_region_t *self, pid_t pid);

#endif
