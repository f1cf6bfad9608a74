/*
 * The SQL migrations of schemas/sql/, compiled in by schemas/embed_sql.cmake. A migration file is
 * named NNNN_what.sql; NNNN is its version. Files are append-only: a shipped migration is never
 * edited, a change is a new file.
 */
#ifndef IMPACT_SCHEMAS_MIGRATIONS_H
#define IMPACT_SCHEMAS_MIGRATIONS_H

typedef struct {
    int version;
    const char *name;
    const char *sql;
} schema_migration_t;

extern const schema_migration_t schema_migrations[];
extern const int schema_migration_count;

#endif
