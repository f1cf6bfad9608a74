#include "actors/store/statements.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t hash;
    char *sql; /* NULL: free slot */
} slot_t;

struct stmt_cache_t {
    slot_t slots[STMT_CACHE_SLOTS];
    int used;
};

stmt_cache_t *stmt_cache_new(void)
{
    return calloc(1, sizeof(stmt_cache_t));
}

void stmt_cache_clear(stmt_cache_t *self)
{
    for (int i = 0; i < STMT_CACHE_SLOTS; i++) {
        free(self->slots[i].sql);
        self->slots[i].sql = NULL;
    }
    self->used = 0;
}

void stmt_cache_destroy(stmt_cache_t **self_p)
{
    if (*self_p == NULL)
        return;
    stmt_cache_clear(*self_p);
    free(*self_p);
    *self_p = NULL;
}

static uint64_t s_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

PGresult *stmt_exec(stmt_cache_t *self, PGconn *conn, const char *sql, int nparams, const char *const *params)
{
    uint64_t hash = s_hash(sql);
    int i = (int)(hash % STMT_CACHE_SLOTS);
    /* Open addressing: the slot of the text, or the first free one on its probe path. */
    for (int probe = 0; probe < STMT_CACHE_SLOTS; probe++, i = (i + 1) % STMT_CACHE_SLOTS) {
        slot_t *slot = &self->slots[i];
        char name[16];
        snprintf(name, sizeof(name), "s%d", i);
        if (slot->sql && slot->hash == hash && strcmp(slot->sql, sql) == 0)
            return PQexecPrepared(conn, name, nparams, params, NULL, NULL, 0);
        if (slot->sql == NULL) {
            /* Keep a quarter free so probe paths stay short; past that, run unprepared. */
            if (self->used >= STMT_CACHE_SLOTS * 3 / 4)
                break;
            PGresult *prepared = PQprepare(conn, name, sql, nparams, NULL);
            if (PQresultStatus(prepared) != PGRES_COMMAND_OK)
                return prepared;
            PQclear(prepared);
            if ((slot->sql = strdup(sql)) == NULL) {
                PQclear(PQexec(conn, "DEALLOCATE ALL"));
                stmt_cache_clear(self);
                break;
            }
            slot->hash = hash;
            self->used++;
            return PQexecPrepared(conn, name, nparams, params, NULL, NULL, 0);
        }
    }
    return PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
}
