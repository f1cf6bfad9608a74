/*
 * /app/: the ImpactDialer caller app (apps/caller), plain files served by h2o's file handler
 * from --app-dir.
 *
 * The app runs on the caller's session cookie (HttpOnly, SameSite=Strict), so what decides its
 * safety is what the browser lets a page do: its pages allow scripts, styles, images and
 * connections from this origin only (no inline script, so an injected string cannot run), may
 * not be framed (no clickjacking of the Hang up button), and tell the browser not to guess
 * content types or send the URL to other sites. Every file is revalidated on each load
 * (no-cache, ETags): an update of the app reaches callers at their next reload, never half of it.
 *
 * h2o normalises the path before matching it, so /app/../anything never leaves the directory.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "http/server.h"

#define APP_PATH "/app"

static h2o_iovec_t s_name_nosniff = {H2O_STRLIT("x-content-type-options")};
static h2o_iovec_t s_name_frames = {H2O_STRLIT("x-frame-options")};
static h2o_iovec_t s_name_csp = {H2O_STRLIT("content-security-policy")};
static h2o_iovec_t s_name_referrer = {H2O_STRLIT("referrer-policy")};

/* Set on every answer under /app/ (h2o keeps the table: static). */
static h2o_headers_command_t s_headers[] = {
    {H2O_HEADERS_CMD_SET, &H2O_TOKEN_CACHE_CONTROL->buf, {H2O_STRLIT("no-cache")}},
    {H2O_HEADERS_CMD_SET, &s_name_nosniff, {H2O_STRLIT("nosniff")}},
    {H2O_HEADERS_CMD_SET, &s_name_frames, {H2O_STRLIT("DENY")}},
    {H2O_HEADERS_CMD_SET,
     &s_name_csp,
     {H2O_STRLIT("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
                 "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")}},
    {H2O_HEADERS_CMD_SET, &s_name_referrer, {H2O_STRLIT("no-referrer")}},
    {H2O_HEADERS_CMD_NULL, NULL, {NULL, 0}},
};

static int on_app_redirect_req(h2o_handler_t *self, h2o_req_t *req)
{
    size_t len = req->query_at < req->path.len ? req->query_at : req->path.len;
    if (!h2o_memis(req->path.base, len, H2O_STRLIT(APP_PATH)))
        return -1; /* "/apple": not ours */
    h2o_send_redirect(req, 301, "Moved Permanently", H2O_STRLIT(APP_PATH "/"));
    return 0;
}

void http_app_register(h2o_hostconf_t *host, const char *app_dir)
{
    struct stat st;
    if (stat(app_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        log_warn("no app directory %s: /app/ answers 404 (set --app-dir)", app_dir);
        return;
    }
    h2o_pathconf_t *files = h2o_config_register_path(host, APP_PATH "/", 0);
    h2o_headers_register(files, s_headers);
    h2o_mimemap_t *types = h2o_mimemap_create();
    h2o_mimemap_define_mimetype(types, "js", "text/javascript; charset=utf-8", NULL);
    h2o_mimemap_define_mimetype(types, "mjs", "text/javascript; charset=utf-8", NULL);
    h2o_mimemap_define_mimetype(types, "css", "text/css; charset=utf-8", NULL);
    h2o_mimemap_define_mimetype(types, "html", "text/html; charset=utf-8", NULL);
    h2o_mimemap_define_mimetype(types, "svg", "image/svg+xml", NULL);
    static const char *index_files[] = {"index.html", NULL};
    h2o_file_register(files, app_dir, index_files, types, 0);
    h2o_mem_release_shared(types);
    h2o_pathconf_t *bare = h2o_config_register_path(host, APP_PATH, 0);
    h2o_handler_t *redirect = h2o_create_handler(bare, sizeof(*redirect));
    redirect->on_req = on_app_redirect_req;
    log_info("serving the caller app from %s at " APP_PATH "/", app_dir);
}
