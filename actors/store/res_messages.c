/*
 * Recorded messages: voicemail drops and the identification message played when a call is
 * abandoned. Uploaded as the raw body (Content-Type audio/wav or audio/mpeg, ?name=...), checked
 * to really be telephony-playable audio of that type, stored in PostgreSQL (as durable as the
 * rest of the account) and served back at <message>/audio.
 */
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "actors/store/input.h"
#include "actors/store/resource.h"
#include "common/problem.h"

#define COUNT(a)        (sizeof(a) / sizeof((a)[0]))
#define AUDIO_MIN_BYTES 64
#define MP3_SYNC_SCAN   65536 /* bytes searched for the first MPEG frame after an ID3 tag */

static const char *const s_types[] = {"audio/wav", "audio/mpeg", NULL};

static const field_def_t s_fields[] = {
    {.name = "name", .type = FIELD_TEXT, .flags = F_REQUIRED, .min = 1, .max = 200},
    {.name = "content_type", .type = FIELD_ENUM, .flags = F_READONLY, .choices = s_types},
    {.name = "size_bytes", .type = FIELD_INT, .flags = F_READONLY},
    {.name = "duration_ms", .type = FIELD_INT, .flags = F_READONLY},
    {.name = "sha256", .type = FIELD_TEXT, .flags = F_READONLY},
};

static uint32_t s_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t s_le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

/* A RIFF/WAVE file with PCM, A-law or mu-law samples that a phone network can play. Returns the
 * duration in ms, or -1 with `why`. */
static int64_t s_wav_duration(const unsigned char *b, size_t len, const char **why)
{
    if (len < 12 || memcmp(b, "RIFF", 4) != 0 || memcmp(b + 8, "WAVE", 4) != 0) {
        *why = "is not a RIFF/WAVE file";
        return -1;
    }
    uint32_t byte_rate = 0;
    for (size_t off = 12; off + 8 <= len;) {
        uint32_t size = s_le32(b + off + 4);
        const unsigned char *chunk = b + off + 8;
        if (size > len - off - 8) {
            *why = "has a chunk that runs past the end of the file";
            return -1;
        }
        if (memcmp(b + off, "fmt ", 4) == 0) {
            if (size < 16) {
                *why = "has a truncated fmt chunk";
                return -1;
            }
            uint16_t format = s_le16(chunk), channels = s_le16(chunk + 2), bits = s_le16(chunk + 14);
            uint32_t rate = s_le32(chunk + 4);
            byte_rate = s_le32(chunk + 8);
            bool known = format == 1 || format == 6 || format == 7 || format == 0xfffe;
            if (!known || channels < 1 || channels > 2 || rate < 8000 || rate > 48000 || (bits != 8 && bits != 16) ||
                byte_rate == 0) {
                *why = "must be PCM, A-law or mu-law, mono or stereo, 8 to 48 kHz, 8 or 16 bits";
                return -1;
            }
        } else if (memcmp(b + off, "data", 4) == 0) {
            if (byte_rate == 0) {
                *why = "has its data before its fmt chunk";
                return -1;
            }
            if (size == 0) {
                *why = "has no audio samples";
                return -1;
            }
            return (int64_t)size * 1000 / byte_rate;
        }
        off += 8 + (size_t)size + (size & 1);
    }
    *why = "has no data chunk";
    return -1;
}

/* MPEG audio: an optional ID3v2 tag, then a valid frame header. The duration assumes a constant
 * bit rate (the first frame's), which is what recorders of short prompts produce. */
static int64_t s_mp3_duration(const unsigned char *b, size_t len, const char **why)
{
    static const int bitrates_v1_l3[16] = {0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0};
    static const int bitrates_v2_l3[16] = {0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0};
    size_t off = 0;
    if (len >= 10 && memcmp(b, "ID3", 3) == 0) {
        if ((b[6] | b[7] | b[8] | b[9]) & 0x80) {
            *why = "has a malformed ID3 tag";
            return -1;
        }
        off = 10 + ((size_t)b[6] << 21 | (size_t)b[7] << 14 | (size_t)b[8] << 7 | b[9]);
    }
    for (size_t end = off + MP3_SYNC_SCAN < len ? off + MP3_SYNC_SCAN : len; off + 4 <= end; off++) {
        if (b[off] != 0xff || (b[off + 1] & 0xe0) != 0xe0)
            continue;
        int version = (b[off + 1] >> 3) & 3; /* 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5 */
        int layer = (b[off + 1] >> 1) & 3;   /* 1: layer III */
        int bitrate_index = b[off + 2] >> 4, rate_index = (b[off + 2] >> 2) & 3;
        if (version == 1 || layer != 1 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3)
            continue;
        int kbps = version == 3 ? bitrates_v1_l3[bitrate_index] : bitrates_v2_l3[bitrate_index];
        return (int64_t)(len - off) * 8 / kbps;
    }
    *why = "has no MPEG layer III frame";
    return -1;
}

static const char *s_canonical_type(const char *given)
{
    static const struct {
        const char *given, *canonical;
    } types[] = {
        {"audio/wav", "audio/wav"},      {"audio/x-wav", "audio/wav"}, {"audio/wave", "audio/wav"},
        {"audio/vnd.wave", "audio/wav"}, {"audio/mpeg", "audio/mpeg"}, {"audio/mp3", "audio/mpeg"},
    };
    size_t len = strcspn(given, "; ");
    for (size_t i = 0; i < COUNT(types); i++)
        if (strlen(types[i].given) == len && strncasecmp(given, types[i].given, len) == 0)
            return types[i].canonical;
    return NULL;
}

static void s_upload(resource_call_t *call)
{
    const api_request_t *req = call->req;
    char given[128], name[801], message[INPUT_MESSAGE_SIZE];
    const char *type = api_header(req, "content-type", given, sizeof(given)) == 0 ? s_canonical_type(given) : NULL;
    if (type == NULL) {
        api_reply_problem(call->reply, req, 415, "unsupported-media-type", "Unsupported media type",
                          "Send the recording as the body with Content-Type audio/wav or audio/mpeg, and its name as ?name=.");
        return;
    }
    const field_def_t *name_field = &s_fields[0];
    char *name_value = NULL;
    json_t *name_json =
        api_param(req, "name", name, sizeof(name)) == 0 && input_utf8_valid(name, strlen(name)) ? json_string(name) : NULL;
    if (name_json == NULL || input_field_value(name_field, name_json, true, &name_value, message, sizeof(message)) != 0) {
        json_t *p =
            problem_new(422, "invalid-fields", "Invalid fields", "Name the message with the query parameter ?name=.", req->path);
        problem_add_error(p, "name", name_json ? message : "is required (as the query parameter name)");
        api_reply_problem_object(call->reply, req, p);
        json_decref(name_json);
        return;
    }
    json_decref(name_json);

    const unsigned char *audio = (const unsigned char *)req->msg.body.ptr;
    size_t len = req->msg.has_body ? req->msg.body.len : 0;
    const char *why = "is shorter than any real recording";
    int64_t duration = len < AUDIO_MIN_BYTES            ? -1
                       : strcmp(type, "audio/wav") == 0 ? s_wav_duration(audio, len, &why)
                                                        : s_mp3_duration(audio, len, &why);
    if (duration < 0) {
        json_t *p = problem_new(422, "invalid-fields", "Invalid fields", NULL, req->path);
        snprintf(message, sizeof(message), "The body %s.", why);
        json_object_set_new(p, "detail", json_string(message));
        problem_add_error(p, "body", why);
        api_reply_problem_object(call->reply, req, p);
        free(name_value);
        return;
    }

    unsigned char digest[32];
    char sha[65], account[24], size[24], ms[24];
    EVP_Digest(audio, len, digest, NULL, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        sprintf(sha + 2 * i, "%02x", digest[i]);
    snprintf(account, sizeof(account), "%" PRId64, call->account->account_id);
    snprintf(size, sizeof(size), "%zu", len);
    snprintf(ms, sizeof(ms), "%" PRId64, duration);
    const char *values[] = {account, name_value, type, size, ms, sha, (const char *)audio};
    int lengths[] = {0, 0, 0, 0, 0, 0, (int)len};
    int formats[] = {0, 0, 0, 0, 0, 0, 1}; /* the audio goes as binary: no escaping, no doubling */
    PGresult *res = PQexecParams(call->route->conn,
                                 "INSERT INTO messages (account_id, name, content_type, size_bytes, duration_ms, sha256, audio) "
                                 "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                                 7, NULL, values, lengths, formats, 0);
    free(name_value);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        resource_reply_db_error(call, res);
        PQclear(res);
        return;
    }
    call->ids[0] = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    call->id_count = 1;
    PQclear(res);
    resource_reply_row(call, 201);
    char path[64], uri[400];
    snprintf(path, sizeof(path), "/v1/messages/%" PRId64, call->ids[0]);
    snprintf(uri, sizeof(uri), "%s%s", req->base_url, path);
    api_reply_header(call->reply, "Location", uri);
}

static void s_audio(resource_call_t *call)
{
    char account[24], id[24];
    snprintf(account, sizeof(account), "%" PRId64, call->account->account_id);
    snprintf(id, sizeof(id), "%" PRId64, call->ids[0]);
    const char *params[] = {account, id};
    PGresult *res =
        PQexecParams(call->route->conn, "SELECT content_type, sha256, audio FROM messages WHERE account_id = $1 AND id = $2", 2,
                     NULL, params, NULL, NULL, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        resource_reply_db_error(call, res);
        PQclear(res);
        return;
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        api_reply_problem(call->reply, call->req, 404, "not-found", "Not found", "No message with this id in this account.");
        return;
    }
    const char *type =
        s_canonical_type(PQgetvalue(res, 0, 0)) ? s_canonical_type(PQgetvalue(res, 0, 0)) : "application/octet-stream";
    char etag[80];
    snprintf(etag, sizeof(etag), "\"%.*s\"", PQgetlength(res, 0, 1), PQgetvalue(res, 0, 1));
    size_t len = (size_t)PQgetlength(res, 0, 2);
    char *body = malloc(len ? len : 1);
    if (body == NULL) {
        PQclear(res);
        api_reply_problem(call->reply, call->req, 500, "internal", "Internal error", "out of memory");
        return;
    }
    memcpy(body, PQgetvalue(res, 0, 2), len);
    PQclear(res);
    api_reply_take(call->reply, 200, type, body, len);
    api_reply_header(call->reply, "ETag", etag);
    api_reply_header(call->reply, "Cache-Control", "private, max-age=3600");
}

static const action_def_t s_actions[] = {
    {"audio", "The recording itself", s_audio, "GET"},
};

const resource_def_t res_messages = {
    .collection = "messages",
    .singular = "message",
    .table = "messages",
    .name_column = "name",
    .fields = s_fields,
    .field_count = COUNT(s_fields),
    .actions = s_actions,
    .action_count = COUNT(s_actions),
    .archivable = true,
    .create = s_upload,
};
