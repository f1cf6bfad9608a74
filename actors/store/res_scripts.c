/*
 * Scripts and what they contain: the texts a caller reads, the survey questions with their
 * possible responses, free-text notes, transfer targets; and the account's custom lead fields,
 * which a script may show next to the system fields.
 */
#include "actors/store/resource.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const field_def_t s_script_fields[] = {
    {.name = "name", .type = FIELD_TEXT, .flags = F_REQUIRED, .min = 1, .max = 200},
    {.name = "selected_fields",
     .type = FIELD_NAMES,
     .max = 50,
     .doc = "Lead fields a caller sees, in order: system fields (phone, first_name, ...) and custom field names"},
};

static const constraint_def_t s_script_constraints[] = {
    {"scripts_selected_fields_check", "selected_fields",
     "names a field that is neither a system field (phone, custom_id, first_name, middle_name, last_name, suffix, email, "
     "address, city, state, zip_code, country) nor a custom field of this account"},
};

static const link_def_t s_script_links[] = {
    {"script_texts", "script_texts", NULL}, {"questions", "questions", NULL},        {"notes", "notes", NULL},
    {"transfers", "transfers", NULL},       {"campaigns", "campaigns", "script_id"},
};

const resource_def_t res_scripts = {
    .collection = "scripts",
    .singular = "script",
    .table = "scripts",
    .name_column = "name",
    .fields = s_script_fields,
    .field_count = COUNT(s_script_fields),
    .constraints = s_script_constraints,
    .constraint_count = COUNT(s_script_constraints),
    .links = s_script_links,
    .link_count = COUNT(s_script_links),
    .archivable = true,
};

static const field_def_t s_script_text_fields[] = {
    {.name = "content", .type = FIELD_LONG_TEXT, .flags = F_REQUIRED, .min = 1, .max = 65536, .doc = "Markdown"},
    {.name = "position", .type = FIELD_INT, .min = 0, .max = 10000, .doc = "Order within the script"},
};

const resource_def_t res_script_texts = {
    .collection = "script_texts",
    .singular = "script_text",
    .table = "script_texts",
    .parent = &res_scripts,
    .parent_column = "script_id",
    .name_column = "left(content, 60)",
    .order_by = "position, id",
    .fields = s_script_text_fields,
    .field_count = COUNT(s_script_text_fields),
};

static const field_def_t s_question_fields[] = {
    {.name = "text", .type = FIELD_TEXT, .flags = F_REQUIRED, .min = 1, .max = 1000},
    {.name = "position", .type = FIELD_INT, .min = 0, .max = 10000},
    {.name = "external_id",
     .type = FIELD_TEXT,
     .flags = F_NULLABLE,
     .min = 1,
     .max = 200,
     .doc = "Your identifier for this question, carried into results"},
};

static const link_def_t s_question_links[] = {
    {"possible_responses", "possible_responses", NULL},
};

const resource_def_t res_questions = {
    .collection = "questions",
    .singular = "question",
    .table = "questions",
    .parent = &res_scripts,
    .parent_column = "script_id",
    .name_column = "text",
    .order_by = "position, id",
    .fields = s_question_fields,
    .field_count = COUNT(s_question_fields),
    .links = s_question_links,
    .link_count = COUNT(s_question_links),
};

static const field_def_t s_possible_response_fields[] = {
    {.name = "value", .type = FIELD_TEXT, .flags = F_REQUIRED, .min = 1, .max = 500},
    {.name = "keypad",
     .type = FIELD_INT,
     .flags = F_NULLABLE,
     .min = 0,
     .max = 9,
     .doc = "Digit a phones-only caller presses for this answer"},
    {.name = "retry", .type = FIELD_BOOL, .doc = "true: choosing this answer leaves the lead to be called again"},
    {.name = "position", .type = FIELD_INT, .min = 0, .max = 10000},
    {.name = "external_id", .type = FIELD_TEXT, .flags = F_NULLABLE, .min = 1, .max = 200},
};

static const constraint_def_t s_possible_response_constraints[] = {
    {"possible_responses_keypad_key", "keypad", "is already the digit of another response to this question"},
};

const resource_def_t res_possible_responses = {
    .collection = "possible_responses",
    .singular = "possible_response",
    .table = "possible_responses",
    .parent = &res_questions,
    .parent_column = "question_id",
    .name_column = "value",
    .order_by = "position, id",
    .fields = s_possible_response_fields,
    .field_count = COUNT(s_possible_response_fields),
    .constraints = s_possible_response_constraints,
    .constraint_count = COUNT(s_possible_response_constraints),
};

static const field_def_t s_note_fields[] = {
    {.name = "label",
     .type = FIELD_TEXT,
     .flags = F_REQUIRED,
     .min = 1,
     .max = 500,
     .doc = "Label of a free-text field the caller fills in"},
    {.name = "position", .type = FIELD_INT, .min = 0, .max = 10000},
};

const resource_def_t res_notes = {
    .collection = "notes",
    .singular = "note",
    .table = "notes",
    .parent = &res_scripts,
    .parent_column = "script_id",
    .name_column = "label",
    .order_by = "position, id",
    .fields = s_note_fields,
    .field_count = COUNT(s_note_fields),
};

static const char *const s_transfer_types[] = {"warm", "cold", NULL};

static const field_def_t s_transfer_fields[] = {
    {.name = "label", .type = FIELD_TEXT, .flags = F_REQUIRED, .min = 1, .max = 200},
    {.name = "phone_number", .type = FIELD_PHONE, .flags = F_REQUIRED},
    {.name = "transfer_type",
     .type = FIELD_ENUM,
     .choices = s_transfer_types,
     .doc = "warm: the caller stays on a three-way call; cold: the caller leaves"},
};

const resource_def_t res_transfers = {
    .collection = "transfers",
    .singular = "transfer",
    .table = "transfers",
    .parent = &res_scripts,
    .parent_column = "script_id",
    .name_column = "label",
    .fields = s_transfer_fields,
    .field_count = COUNT(s_transfer_fields),
};

static const field_def_t s_custom_field_fields[] = {
    {.name = "name",
     .type = FIELD_TEXT,
     .flags = F_REQUIRED | F_IMMUTABLE,
     .min = 1,
     .max = 64,
     .doc = "Letters, digits and '_'; not a system field name"},
};

static const constraint_def_t s_custom_field_constraints[] = {
    {"custom_fields_name_key", "name", "is already a custom field of this account"},
    {"custom_fields_name_check", "name", "must be letters, digits and '_', and not the name of a system field"},
};

const resource_def_t res_custom_fields = {
    .collection = "custom_fields",
    .singular = "custom_field",
    .table = "custom_fields",
    .name_column = "name",
    .order_by = "name, id",
    .fields = s_custom_field_fields,
    .field_count = COUNT(s_custom_field_fields),
    .constraints = s_custom_field_constraints,
    .constraint_count = COUNT(s_custom_field_constraints),
    .no_update = true,
};
