#include "actors/dialer/timerq.h"

#include <stdbool.h>
#include <stdlib.h>

struct timerq_timer_t {
    int64_t at_us;
    uint64_t seq; /* insertion order: the tie-breaker that makes equal times deterministic */
    size_t slot;  /* position in the heap, kept current so cancellation is O(log n) */
    timerq_fn *fn;
    void *arg;
};

struct timerq_t {
    timerq_timer_t **heap;
    size_t count, capacity;
    uint64_t next_seq;
    int64_t firing_due; /* the running callback's due time, TIMERQ_NEVER between callbacks */
};

timerq_t *timerq_new(void)
{
    timerq_t *self = calloc(1, sizeof(timerq_t));
    if (self)
        self->firing_due = TIMERQ_NEVER;
    return self;
}

void timerq_destroy(timerq_t **self_p)
{
    timerq_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++)
        free(self->heap[i]);
    free(self->heap);
    free(self);
    *self_p = NULL;
}

static bool earlier(const timerq_timer_t *a, const timerq_timer_t *b)
{
    return a->at_us < b->at_us || (a->at_us == b->at_us && a->seq < b->seq);
}

static void place(timerq_t *self, size_t slot, timerq_timer_t *timer)
{
    self->heap[slot] = timer;
    timer->slot = slot;
}

static void sift_up(timerq_t *self, size_t slot)
{
    timerq_timer_t *timer = self->heap[slot];
    while (slot > 0) {
        size_t parent = (slot - 1) / 2;
        if (!earlier(timer, self->heap[parent]))
            break;
        place(self, slot, self->heap[parent]);
        slot = parent;
    }
    place(self, slot, timer);
}

static void sift_down(timerq_t *self, size_t slot)
{
    timerq_timer_t *timer = self->heap[slot];
    for (;;) {
        size_t child = 2 * slot + 1;
        if (child >= self->count)
            break;
        if (child + 1 < self->count && earlier(self->heap[child + 1], self->heap[child]))
            child++;
        if (!earlier(self->heap[child], timer))
            break;
        place(self, slot, self->heap[child]);
        slot = child;
    }
    place(self, slot, timer);
}

timerq_timer_t *timerq_add(timerq_t *self, int64_t at_us, timerq_fn *fn, void *arg)
{
    if (self->count == self->capacity) {
        size_t capacity = self->capacity ? self->capacity * 2 : 64;
        timerq_timer_t **heap = realloc(self->heap, capacity * sizeof *heap);
        if (!heap)
            return NULL;
        self->heap = heap;
        self->capacity = capacity;
    }
    timerq_timer_t *timer = malloc(sizeof *timer);
    if (!timer)
        return NULL;
    *timer = (timerq_timer_t){.at_us = at_us, .seq = self->next_seq++, .fn = fn, .arg = arg};
    place(self, self->count++, timer);
    sift_up(self, timer->slot);
    return timer;
}

static void remove_slot(timerq_t *self, size_t slot)
{
    self->count--;
    if (slot == self->count)
        return;
    place(self, slot, self->heap[self->count]);
    sift_down(self, slot);
    sift_up(self, self->heap[slot]->slot);
}

void timerq_cancel(timerq_t *self, timerq_timer_t **timer_p)
{
    timerq_timer_t *timer = *timer_p;
    if (!timer)
        return;
    remove_slot(self, timer->slot);
    free(timer);
    *timer_p = NULL;
}

int64_t timerq_next(const timerq_t *self)
{
    return self->count ? self->heap[0]->at_us : TIMERQ_NEVER;
}

size_t timerq_run_due(timerq_t *self, int64_t now_us)
{
    size_t fired = 0;
    while (self->count && self->heap[0]->at_us <= now_us) {
        timerq_timer_t *timer = self->heap[0];
        remove_slot(self, 0);
        timerq_fn *fn = timer->fn;
        void *arg = timer->arg;
        self->firing_due = timer->at_us;
        free(timer);
        fn(arg, now_us);
        self->firing_due = TIMERQ_NEVER;
        fired++;
    }
    return fired;
}

int64_t timerq_firing_due(const timerq_t *self)
{
    return self->firing_due;
}

size_t timerq_size(const timerq_t *self)
{
    return self->count;
}
