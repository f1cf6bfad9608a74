/*
 * The people who make the calls. A caller works on one campaign at a time; a caller group moves
 * all its callers together (the database triggers in schemas/sql/0002_admin.sql keep a grouped
 * caller's campaign equal to the group's). Passwords are kept only as Argon2id hashes.
 */
#include "actors/store/resource.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const field_def_t s_caller_group_fields[] = {
    {.name = "name", .type = FIELD_TEXT, .flags = F_REQUIRED, .min = 1, .max = 200},
    {.name = "campaign_id",
     .type = FIELD_REF,
     .flags = F_REQUIRED | F_FILTER,
     .ref_path = "campaigns",
     .doc = "Changing it moves every caller of the group to that campaign"},
};

static const constraint_def_t s_caller_group_constraints[] = {
    {"caller_groups_campaign_id_fkey", "campaign_id", "is not a campaign of this account"},
};

static const link_def_t s_caller_group_links[] = {
    {"callers", "callers", "caller_group_id"},
};

const resource_def_t res_caller_groups = {
    .collection = "caller_groups",
    .singular = "caller_group",
    .table = "caller_groups",
    .name_column = "name",
    .fields = s_caller_group_fields,
    .field_count = COUNT(s_caller_group_fields),
    .constraints = s_caller_group_constraints,
    .constraint_count = COUNT(s_caller_group_constraints),
    .links = s_caller_group_links,
    .link_count = COUNT(s_caller_group_links),
};

static const field_def_t s_caller_fields[] = {
    {.name = "name", .type = FIELD_TEXT, .min = 0, .max = 200},
    {.name = "username", .type = FIELD_TEXT, .flags = F_REQUIRED, .min = 1, .max = 100, .doc = "Unique within the account"},
    {.name = "password",
     .column = "password_hash",
     .type = FIELD_PASSWORD,
     .flags = F_REQUIRED,
     .min = 8,
     .max = 128,
     .doc = "Write-only; stored as an Argon2id hash"},
    {.name = "pin",
     .type = FIELD_DIGITS,
     .min = 4,
     .max = 8,
     .doc = "Identifies the caller when dialing in by phone; random 6 digits when not given"},
    {.name = "phones_only", .type = FIELD_BOOL, .doc = "Works by phone keypad only, without the web app"},
    {.name = "caller_group_id",
     .type = FIELD_REF,
     .flags = F_NULLABLE | F_FILTER,
     .ref_path = "caller_groups",
     .doc = "A grouped caller works on the group's campaign"},
    {.name = "campaign_id",
     .type = FIELD_REF,
     .flags = F_NULLABLE | F_FILTER,
     .ref_path = "campaigns",
     .doc = "Ignored while the caller is in a group"},
};

static const constraint_def_t s_caller_constraints[] = {
    {"callers_username_key", "username", "is already used by another caller of this account"},
    {"callers_pin_key", "pin", "is already used by another caller of this account"},
    {"callers_caller_group_id_fkey", "caller_group_id", "is not a caller group of this account"},
    {"callers_campaign_id_fkey", "campaign_id", "is not a campaign of this account"},
};

const resource_def_t res_callers = {
    .collection = "callers",
    .singular = "caller",
    .table = "callers",
    .name_column = "coalesce(nullif(name, ''), username)",
    .fields = s_caller_fields,
    .field_count = COUNT(s_caller_fields),
    .constraints = s_caller_constraints,
    .constraint_count = COUNT(s_caller_constraints),
    .archivable = true,
};
