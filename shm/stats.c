/*
 * Layout of the region (offsets in bytes; every multi-byte field is host-endian):
 *
 *   0       header (128): magic, major, minor, header_size, the two table descriptors,
 *           created_unix_ms, creator_pid
 *   128     process table:  SHM_PROC_SLOTS x 128     { seq, payload[12] }
 *   65664   campaign table: SHM_CAMPAIGN_SLOTS x 768 { owner, campaign_id, seq, payload[66] }
 *
 * Readers take every offset and size from the header, never from these constants, so a later
 * minor version can grow slots or append payload words without breaking an older reader.
 *
 * Every shared field is a lock-free 64-bit atomic: the region is mapped at a different address in
 * each process and by processes that may die at any instruction, so nothing may depend on a lock
 * or on a pointer.
 */
#include "shm/stats.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

_Static_assert(ATOMIC_LONG_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
               "cross-process atomics must be lock-free: a lock-based atomic lives in one process only");

#define S_MAGIC              UINT64_C(0x4d53544341504d49) /* "IMPACTSM" read as little-endian bytes */
#define S_HEADER_SIZE        128
#define S_PROC_SLOT_SIZE     128
#define S_CAMPAIGN_SLOT_SIZE 768
#define S_PROC_WORDS         (sizeof(shm_proc_t) / sizeof(uint64_t))
#define S_CAMPAIGN_WORDS     (sizeof(shm_campaign_stats_t) / sizeof(uint64_t))
#define S_MAX_REGION         (64u << 20) /* far above any layout we create; bounds a hostile st_size */
#define S_READ_SPINS         64
#define S_READ_YIELDS        64
#define S_CLAIM_ATTEMPTS     64
#define S_RETRY              1
/* An owner pid no process can have: the supervisor holds a slot with it while freeing it. */
#define S_RECOVERING UINT32_MAX

_Static_assert(sizeof(shm_proc_t) % sizeof(uint64_t) == 0, "process payload must be whole words");
_Static_assert(sizeof(shm_campaign_stats_t) % sizeof(uint64_t) == 0, "campaign payload must be whole words");
_Static_assert(offsetof(shm_campaign_stats_t, campaign_id) == 0, "the campaign stamp is payload word 0");

typedef struct {
    uint32_t offset;        /* from the start of the region */
    uint32_t slot_size;     /* bytes per slot */
    uint32_t slot_count;    /* slots in the table */
    uint32_t payload_words; /* 64-bit payload words per slot; minor versions only append */
} s_table_t;

typedef struct {
    _Atomic uint64_t magic; /* 0 until every other byte of the region is initialised */
    uint16_t major;
    uint16_t minor;
    uint32_t header_size;
    s_table_t proc;
    s_table_t campaign;
    int64_t created_unix_ms;
    int32_t creator_pid;
    uint8_t reserved[68];
} s_header_t;

_Static_assert(sizeof(s_header_t) == S_HEADER_SIZE, "the header layout is part of the cross-process ABI");
_Static_assert(offsetof(s_header_t, proc) == 16 && offsetof(s_header_t, campaign) == 32, "header layout");

typedef struct {
    _Atomic uint64_t seq;     /* odd while the supervisor is writing the payload */
    _Atomic uint64_t words[]; /* the region's payload_words of them */
} s_proc_slot_t;

typedef struct {
    _Atomic uint64_t owner;      /* generation << 32 | pid; pid 0 = free, S_RECOVERING = being freed */
    _Atomic int64_t campaign_id; /* 0 unless claimed; set after the payload is reset */
    _Atomic uint64_t seq;        /* odd while the owner is writing the payload */
    _Atomic uint64_t words[];    /* the region's payload_words of them */
} s_campaign_slot_t;

_Static_assert(sizeof(s_proc_slot_t) + S_PROC_WORDS * sizeof(uint64_t) <= S_PROC_SLOT_SIZE, "process slot overflows");
_Static_assert(sizeof(s_campaign_slot_t) + S_CAMPAIGN_WORDS * sizeof(uint64_t) <= S_CAMPAIGN_SLOT_SIZE, "campaign slot overflows");

struct shm_region_t {
    uint8_t *base;
    size_t size;
    bool writable;
    /* Validated copies of the header's descriptors: the shared header could change under us, so
     * only these are used to compute addresses. */
    s_table_t proc;
    s_table_t campaign;
};

static int64_t s_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static uint64_t s_owner(uint32_t pid, uint32_t generation)
{
    return (uint64_t)generation << 32 | pid;
}

static uint32_t s_owner_pid(uint64_t owner)
{
    return (uint32_t)owner;
}

static uint32_t s_owner_generation(uint64_t owner)
{
    return (uint32_t)(owner >> 32);
}

static bool s_holder(uint64_t owner)
{
    uint32_t pid = s_owner_pid(owner);
    return pid != 0 && pid != S_RECOVERING;
}

/* A zombie counts as alive: its slots are freed by the supervisor once it has reaped it. EPERM
 * means the pid exists under another user. The pid comes from shared memory, and kill() reads a
 * negative one as a process group, so anything beyond a positive pid_t is no process. */
static bool s_pid_alive(uint32_t pid)
{
    if (pid == 0 || pid > INT32_MAX)
        return false;
    int saved = errno;
    bool alive = kill((pid_t)pid, 0) == 0 || errno != ESRCH;
    errno = saved;
    return alive;
}

/*
 * Seqlock writer (one writer per slot): stores the `known` words of `src` and zeroes the rest of
 * the slot's `n`, so fields appended by a newer minor version read as zero rather than stale.
 * Starting from `seq | 1` lets a new writer finish what a dead one left odd: readers already treat
 * that value as "in progress", and the closing store moves past it. The release fence keeps the
 * odd store ahead of every payload store; the closing release store keeps every payload store
 * ahead of the even value.
 */
static void s_seq_write(_Atomic uint64_t *seq, _Atomic uint64_t *words, size_t n, const uint64_t *src, size_t known)
{
    uint64_t odd = atomic_load_explicit(seq, memory_order_relaxed) | 1;
    atomic_store_explicit(seq, odd, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    for (size_t i = 0; i < n; i++)
        atomic_store_explicit(&words[i], i < known ? src[i] : 0, memory_order_relaxed);
    atomic_store_explicit(seq, odd + 1, memory_order_release);
}

/*
 * Seqlock reader. The acquire fence keeps every payload load ahead of the second seq load, so an
 * unchanged even seq proves no write overlapped the copy. Spins briefly, then yields so a writer
 * preempted mid-write on a busy machine can finish; a writer that died mid-write never will,
 * hence the bound.
 */
static int s_seq_read(const _Atomic uint64_t *seq, const _Atomic uint64_t *words, uint64_t *dst, size_t n)
{
    for (int attempt = 0; attempt < S_READ_SPINS + S_READ_YIELDS; attempt++) {
        if (attempt >= S_READ_SPINS)
            sched_yield();
        uint64_t before = atomic_load_explicit(seq, memory_order_acquire);
        if (before & 1) {
            s_cpu_relax();
            continue;
        }
        for (size_t i = 0; i < n; i++)
            dst[i] = atomic_load_explicit(&words[i], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(seq, memory_order_relaxed) == before)
            return 0;
    }
    errno = EAGAIN;
    return -1;
}

static size_t s_min(size_t a, size_t b)
{
    return a < b ? a : b;
}

static s_proc_slot_t *s_proc_slot(const shm_region_t *self, uint32_t index)
{
    return (s_proc_slot_t *)(self->base + self->proc.offset + (size_t)index * self->proc.slot_size);
}

static s_campaign_slot_t *s_campaign_slot(const shm_region_t *self, uint32_t index)
{
    return (s_campaign_slot_t *)(self->base + self->campaign.offset + (size_t)index * self->campaign.slot_size);
}

/* Zeroes a campaign payload and stamps it with `campaign_id`; the caller owns the slot. */
static void s_campaign_reset(const shm_region_t *self, s_campaign_slot_t *slot, int64_t campaign_id)
{
    uint64_t words[S_CAMPAIGN_WORDS] = {(uint64_t)campaign_id};
    s_seq_write(&slot->seq, slot->words, self->campaign.payload_words, words, S_CAMPAIGN_WORDS);
}

static bool s_table_valid(const s_table_t *table, size_t head_bytes, uint32_t want_count, uint32_t header_size, size_t size)
{
    if (table->slot_count != want_count || table->payload_words == 0)
        return false;
    if (table->offset % sizeof(uint64_t) != 0 || table->slot_size % sizeof(uint64_t) != 0)
        return false;
    if (head_bytes + (uint64_t)table->payload_words * sizeof(uint64_t) > table->slot_size)
        return false;
    return table->offset >= header_size && (uint64_t)table->offset + (uint64_t)table->slot_count * table->slot_size <= size;
}

static uint64_t s_table_end(const s_table_t *table)
{
    return (uint64_t)table->offset + (uint64_t)table->slot_count * table->slot_size;
}

/* Checks the mapped header against the mapped size and keeps validated copies of its layout. */
static int s_adopt_header(shm_region_t *self)
{
    const s_header_t *header = (const s_header_t *)self->base;
    uint64_t magic = atomic_load_explicit(&header->magic, memory_order_acquire);
    if (magic == 0) {
        errno = EAGAIN;
        return -1;
    }
    uint16_t major = header->major;
    uint32_t header_size = header->header_size;
    self->proc = header->proc;
    self->campaign = header->campaign;
    bool valid = magic == S_MAGIC && major == SHM_VERSION_MAJOR && header_size >= sizeof(s_header_t) && header_size <= self->size &&
                 s_table_valid(&self->proc, offsetof(s_proc_slot_t, words), SHM_PROC_SLOTS, header_size, self->size) &&
                 s_table_valid(&self->campaign, offsetof(s_campaign_slot_t, words), SHM_CAMPAIGN_SLOTS, header_size, self->size) &&
                 (s_table_end(&self->proc) <= self->campaign.offset || s_table_end(&self->campaign) <= self->proc.offset);
    if (!valid) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

static int s_fallocate(int fd, off_t size)
{
    int rc;
    do
        rc = posix_fallocate(fd, 0, size);
    while (rc == EINTR);
    return rc;
}

/* Backs out of a failed create or open, keeping the errno that explains the failure. */
static void s_abandon(shm_region_t **self_p, int fd, const char *created_name)
{
    int saved = errno;
    if (fd >= 0)
        close(fd);
    if (created_name != NULL)
        shm_unlink(created_name);
    shm_region_destroy(self_p);
    errno = saved;
}

shm_region_t *shm_region_create(const char *name)
{
    if (name == NULL) {
        errno = EINVAL;
        return NULL;
    }
    shm_region_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->writable = true;
    self->proc = (s_table_t){S_HEADER_SIZE, S_PROC_SLOT_SIZE, SHM_PROC_SLOTS, S_PROC_WORDS};
    self->campaign = (s_table_t){(uint32_t)s_table_end(&self->proc), S_CAMPAIGN_SLOT_SIZE, SHM_CAMPAIGN_SLOTS, S_CAMPAIGN_WORDS};
    self->size = (size_t)s_table_end(&self->campaign);

    bool created = false;
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        goto Error;
    created = true;
    if (ftruncate(fd, (off_t)self->size) != 0)
        goto Error;
    /* tmpfs allocates on first touch; without this a full /dev/shm turns into SIGBUS in whichever
     * process touches a page first, instead of an error here. */
    int rc = s_fallocate(fd, (off_t)self->size);
    if (rc != 0) {
        errno = rc;
        goto Error;
    }
    void *base = mmap(NULL, self->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        goto Error;
    self->base = base;
    close(fd);
    fd = -1;

    /* ftruncate zero-filled the object: every seq is even, every slot free. */
    s_header_t *header = (s_header_t *)self->base;
    header->major = SHM_VERSION_MAJOR;
    header->minor = SHM_VERSION_MINOR;
    header->header_size = sizeof(s_header_t);
    header->proc = self->proc;
    header->campaign = self->campaign;
    header->created_unix_ms = s_unix_ms();
    header->creator_pid = (int32_t)getpid();
    /* Published last: a reader that sees the magic with acquire sees the whole header. */
    atomic_store_explicit(&header->magic, S_MAGIC, memory_order_release);
    return self;

Error:
    s_abandon(&self, fd, created ? name : NULL);
    return NULL;
}

shm_region_t *shm_region_open(const char *name, bool writable)
{
    if (name == NULL) {
        errno = EINVAL;
        return NULL;
    }
    shm_region_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->writable = writable;
    int fd = shm_open(name, writable ? O_RDWR : O_RDONLY, 0);
    if (fd < 0)
        goto Error;
    struct stat st;
    if (fstat(fd, &st) != 0)
        goto Error;
    if (st.st_size == 0) {
        /* Created but not sized yet. */
        errno = EAGAIN;
        goto Error;
    }
    if (st.st_size < (off_t)sizeof(s_header_t) || st.st_size > (off_t)S_MAX_REGION) {
        errno = EPROTO;
        goto Error;
    }
    self->size = (size_t)st.st_size;
    void *base = mmap(NULL, self->size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        goto Error;
    self->base = base;
    close(fd);
    fd = -1;
    if (s_adopt_header(self) != 0)
        goto Error;
    return self;

Error:
    s_abandon(&self, fd, NULL);
    return NULL;
}

void shm_region_destroy(shm_region_t **self_p)
{
    if (self_p == NULL || *self_p == NULL)
        return;
    shm_region_t *self = *self_p;
    if (self->base != NULL)
        munmap(self->base, self->size);
    free(self);
    *self_p = NULL;
}

int shm_region_unlink(const char *name)
{
    if (name == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (shm_unlink(name) != 0 && errno != ENOENT)
        return -1;
    return 0;
}

int shm_proc_write(shm_region_t *self, uint32_t index, const shm_proc_t *proc)
{
    if (self == NULL || proc == NULL || index >= self->proc.slot_count) {
        errno = EINVAL;
        return -1;
    }
    if (!self->writable) {
        errno = EBADF;
        return -1;
    }
    uint64_t words[S_PROC_WORDS];
    memcpy(words, proc, sizeof(words));
    s_proc_slot_t *slot = s_proc_slot(self, index);
    s_seq_write(&slot->seq, slot->words, self->proc.payload_words, words, S_PROC_WORDS);
    return 0;
}

int shm_proc_read(const shm_region_t *self, uint32_t index, shm_proc_t *out)
{
    if (self == NULL || out == NULL || index >= self->proc.slot_count) {
        errno = EINVAL;
        return -1;
    }
    uint64_t words[S_PROC_WORDS] = {0};
    const s_proc_slot_t *slot = s_proc_slot(self, index);
    if (s_seq_read(&slot->seq, slot->words, words, s_min(self->proc.payload_words, S_PROC_WORDS)) != 0)
        return -1;
    memcpy(out, words, sizeof(*out));
    /* The strings come from shared memory: terminate them so callers can treat them as C strings. */
    out->role[sizeof(out->role) - 1] = '\0';
    out->name[sizeof(out->name) - 1] = '\0';
    return 0;
}

/* Gives a slot back: campaign cleared, payload zeroed, then the owner word freed with release
 * ordering so a claimer that wins the slot sees it clean. Fails if the slot changed hands. */
static int s_campaign_free(shm_region_t *self, s_campaign_slot_t *slot, uint64_t owner)
{
    atomic_store_explicit(&slot->campaign_id, 0, memory_order_seq_cst);
    s_campaign_reset(self, slot, 0);
    if (!atomic_compare_exchange_strong_explicit(&slot->owner, &owner, s_owner(0, s_owner_generation(owner) + 1),
                                                 memory_order_acq_rel, memory_order_relaxed)) {
        errno = EPERM;
        return -1;
    }
    return 0;
}

/*
 * After a claim, refuses a second live holder of the same campaign. Each claimer publishes its
 * slot (owner CAS, then campaign id) before this scan, and both sides use seq_cst, so of two
 * racing claimers at least one sees the other: never two holders, at worst both refuse (two
 * dialers started for one campaign is the caller's bug). The campaign id is loaded before the
 * owner so a match is never paired with an owner older than the claim that published it.
 */
static bool s_campaign_contested(const shm_region_t *self, int64_t campaign_id, uint32_t mine)
{
    for (uint32_t i = 0; i < self->campaign.slot_count; i++) {
        if (i == mine)
            continue;
        const s_campaign_slot_t *slot = s_campaign_slot(self, i);
        if (atomic_load_explicit(&slot->campaign_id, memory_order_seq_cst) != campaign_id)
            continue;
        uint64_t owner = atomic_load_explicit(&slot->owner, memory_order_seq_cst);
        if (s_holder(owner) && s_pid_alive(s_owner_pid(owner)))
            return true;
    }
    return false;
}

/* The first slot currently held for `campaign_id`, with its owner word. */
static int s_campaign_lookup(const shm_region_t *self, int64_t campaign_id, uint32_t *index, uint64_t *owner)
{
    for (uint32_t i = 0; i < self->campaign.slot_count; i++) {
        const s_campaign_slot_t *slot = s_campaign_slot(self, i);
        if (atomic_load_explicit(&slot->campaign_id, memory_order_seq_cst) != campaign_id)
            continue;
        uint64_t word = atomic_load_explicit(&slot->owner, memory_order_seq_cst);
        if (s_holder(word)) {
            *index = i;
            *owner = word;
            return 0;
        }
    }
    return -1;
}

/* Claims the first free slot for `campaign_id`: 0, or -1 with ENOSPC. */
static int s_campaign_take_free(shm_region_t *self, int64_t campaign_id, uint32_t pid, uint32_t *index)
{
    for (uint32_t i = 0; i < self->campaign.slot_count; i++) {
        s_campaign_slot_t *slot = s_campaign_slot(self, i);
        uint64_t owner = atomic_load_explicit(&slot->owner, memory_order_acquire);
        if (s_owner_pid(owner) != 0)
            continue;
        if (!atomic_compare_exchange_strong_explicit(&slot->owner, &owner, s_owner(pid, s_owner_generation(owner) + 1),
                                                     memory_order_seq_cst, memory_order_relaxed))
            continue;
        /* The payload is stamped before the campaign id is published, so a reader that finds the
         * slot by campaign never reads a previous campaign's figures. */
        s_campaign_reset(self, slot, campaign_id);
        atomic_store_explicit(&slot->campaign_id, campaign_id, memory_order_seq_cst);
        *index = i;
        return 0;
    }
    errno = ENOSPC;
    return -1;
}

/* One claim attempt: 0, -1 with errno, or S_RETRY when a CAS lost to another process. */
static int s_campaign_claim_once(shm_region_t *self, int64_t campaign_id, uint32_t pid, uint32_t *slot_out)
{
    uint32_t index;
    uint64_t owner;
    if (s_campaign_lookup(self, campaign_id, &index, &owner) == 0) {
        uint32_t holder = s_owner_pid(owner);
        if (holder == pid) {
            *slot_out = index;
            return 0;
        }
        if (s_pid_alive(holder)) {
            errno = EBUSY;
            return -1;
        }
        /* The campaign's previous dialer died and the supervisor has not freed its slot yet: take
         * it over. The CAS against the exact owner word (generation included) fails if the
         * supervisor or another claimer got there first. */
        s_campaign_slot_t *slot = s_campaign_slot(self, index);
        if (!atomic_compare_exchange_strong_explicit(&slot->owner, &owner, s_owner(pid, s_owner_generation(owner) + 1),
                                                     memory_order_seq_cst, memory_order_relaxed))
            return S_RETRY;
        s_campaign_reset(self, slot, campaign_id);
    } else if (s_campaign_take_free(self, campaign_id, pid, &index) != 0) {
        return -1;
    }
    if (s_campaign_contested(self, campaign_id, index)) {
        s_campaign_slot_t *slot = s_campaign_slot(self, index);
        s_campaign_free(self, slot, atomic_load_explicit(&slot->owner, memory_order_relaxed));
        errno = EBUSY;
        return -1;
    }
    *slot_out = index;
    return 0;
}

int shm_campaign_claim(shm_region_t *self, int64_t campaign_id, pid_t pid, uint32_t *slot)
{
    if (self == NULL || slot == NULL || campaign_id <= 0 || pid <= 0) {
        errno = EINVAL;
        return -1;
    }
    if (!self->writable) {
        errno = EBADF;
        return -1;
    }
    for (int attempt = 0; attempt < S_CLAIM_ATTEMPTS; attempt++) {
        int rc = s_campaign_claim_once(self, campaign_id, (uint32_t)pid, slot);
        if (rc != S_RETRY)
            return rc;
    }
    errno = EAGAIN;
    return -1;
}

int shm_campaign_write(shm_region_t *self, uint32_t slot, const shm_campaign_stats_t *stats)
{
    if (self == NULL || stats == NULL || slot >= self->campaign.slot_count) {
        errno = EINVAL;
        return -1;
    }
    if (!self->writable) {
        errno = EBADF;
        return -1;
    }
    s_campaign_slot_t *entry = s_campaign_slot(self, slot);
    if (!s_holder(atomic_load_explicit(&entry->owner, memory_order_relaxed))) {
        errno = EPERM;
        return -1;
    }
    uint64_t words[S_CAMPAIGN_WORDS];
    memcpy(words, stats, sizeof(words));
    words[0] = (uint64_t)atomic_load_explicit(&entry->campaign_id, memory_order_relaxed);
    s_seq_write(&entry->seq, entry->words, self->campaign.payload_words, words, S_CAMPAIGN_WORDS);
    return 0;
}

int shm_campaign_release(shm_region_t *self, uint32_t slot)
{
    if (self == NULL || slot >= self->campaign.slot_count) {
        errno = EINVAL;
        return -1;
    }
    if (!self->writable) {
        errno = EBADF;
        return -1;
    }
    s_campaign_slot_t *entry = s_campaign_slot(self, slot);
    uint64_t owner = atomic_load_explicit(&entry->owner, memory_order_acquire);
    if (!s_holder(owner)) {
        errno = EINVAL;
        return -1;
    }
    return s_campaign_free(self, entry, owner);
}

int shm_campaign_find(const shm_region_t *self, int64_t campaign_id, uint32_t *slot)
{
    if (self == NULL || slot == NULL || campaign_id <= 0) {
        errno = EINVAL;
        return -1;
    }
    uint64_t owner;
    if (s_campaign_lookup(self, campaign_id, slot, &owner) != 0) {
        errno = ENOENT;
        return -1;
    }
    return 0;
}

int shm_campaign_read(const shm_region_t *self, uint32_t slot, shm_campaign_stats_t *out)
{
    if (self == NULL || out == NULL || slot >= self->campaign.slot_count) {
        errno = EINVAL;
        return -1;
    }
    uint64_t words[S_CAMPAIGN_WORDS] = {0};
    const s_campaign_slot_t *entry = s_campaign_slot(self, slot);
    if (s_seq_read(&entry->seq, entry->words, words, s_min(self->campaign.payload_words, S_CAMPAIGN_WORDS)) != 0)
        return -1;
    memcpy(out, words, sizeof(*out));
    return 0;
}

int shm_region_recover_pid(shm_region_t *self, pid_t pid)
{
    if (self == NULL || pid <= 0) {
        errno = EINVAL;
        return -1;
    }
    if (!self->writable) {
        errno = EBADF;
        return -1;
    }
    int freed = 0;
    for (uint32_t i = 0; i < self->campaign.slot_count; i++) {
        s_campaign_slot_t *slot = s_campaign_slot(self, i);
        uint64_t owner = atomic_load_explicit(&slot->owner, memory_order_acquire);
        if (s_owner_pid(owner) != (uint32_t)pid)
            continue;
        /* Marking the slot RECOVERING first makes us its only writer: a new dialer of the same
         * campaign racing to take the stale slot over loses this CAS (or we lose it, and the slot
         * is no longer the dead pid's), so two processes never drive one seqlock. */
        uint32_t generation = s_owner_generation(owner) + 1;
        if (!atomic_compare_exchange_strong_explicit(&slot->owner, &owner, s_owner(S_RECOVERING, generation), memory_order_seq_cst,
                                                     memory_order_relaxed))
            continue;
        atomic_store_explicit(&slot->campaign_id, 0, memory_order_seq_cst);
        s_campaign_reset(self, slot, 0);
        atomic_store_explicit(&slot->owner, s_owner(0, generation), memory_order_release);
        freed++;
    }
    return freed;
}

/* ---- latency histograms ---- */

/*
 * Log-linear buckets: below 8 us a bucket per microsecond; above, the doubling a value falls in
 * (its highest set bit e) split in four by the two bits after it. A value v >= 4 lands in
 * 4e + next-two-bits - 4, which is v itself for v < 8, so the two rules meet without a seam.
 */
uint32_t shm_latency_bucket(uint64_t us)
{
    if (us < 4)
        return (uint32_t)us;
    uint32_t e = 63u - (uint32_t)__builtin_clzll(us);
    uint32_t bucket = 4 * e + (uint32_t)((us >> (e - 2)) & 3) - 4;
    return bucket < SHM_LATENCY_BUCKETS ? bucket : SHM_LATENCY_BUCKETS - 1;
}

uint64_t shm_latency_bucket_max_us(uint32_t bucket)
{
    if (bucket < 4)
        return bucket;
    if (bucket >= SHM_LATENCY_BUCKETS - 1)
        return UINT64_MAX;
    uint32_t e = (bucket + 4) / 4, sub = (bucket + 4) % 4;
    return ((uint64_t)(5 + sub) << (e - 2)) - 1;
}

uint64_t shm_latency_quantile(const uint32_t buckets[SHM_LATENCY_BUCKETS], uint64_t total, uint64_t max_us, double q)
{
    if (total == 0 || !(q > 0))
        return 0;
    uint64_t want = (uint64_t)(q * (double)total + 0.999999), seen = 0;
    if (want > total)
        want = total;
    for (uint32_t b = 0; b < SHM_LATENCY_BUCKETS; b++) {
        seen += buckets[b];
        if (seen >= want) {
            uint64_t top = shm_latency_bucket_max_us(b);
            return top < max_us ? top : max_us;
        }
    }
    return max_us;
}
