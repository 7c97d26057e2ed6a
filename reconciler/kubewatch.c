/* Watch-stream line splitting, watch-event and Status decoding. */
#include "bindery/kubewatch.h"

#include "bindery/jsonutil.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

void bdy_linesplit_init(bdy_linesplit *ls, size_t max_line)
{
    ls->max_line = max_line;
    bdy_buf_init(&ls->pending, max_line);
}

void bdy_linesplit_free(bdy_linesplit *ls)
{
    if (ls != NULL)
        bdy_buf_free(&ls->pending);
}

void bdy_linesplit_reset(bdy_linesplit *ls)
{
    bdy_buf_reset(&ls->pending);
}

size_t bdy_linesplit_pending(const bdy_linesplit *ls)
{
    return ls->pending.len;
}

/* Hands one complete line to cb, cutting a trailing "\r" (the line is
 * the splitter's own buffer, so it can be terminated in place). */
static int emit(char *line, size_t len, bdy_line_cb cb, void *data)
{
    if (len > 0 && line[len - 1] == '\r')
        line[--len] = '\0';
    if (len == 0)
        return 0;
    return cb(line, len, data);
}

int bdy_linesplit_feed(bdy_linesplit *ls, const char *chunk, size_t len, bdy_line_cb cb, void *data)
{
    int rc = 0;
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(chunk + i, '\n', len - i);
        size_t part = nl != NULL ? (size_t)(nl - (chunk + i)) : len - i;
        if ((rc = bdy_buf_append(&ls->pending, chunk + i, part)) != 0) {
            bdy_buf_reset(&ls->pending);
            return rc;
        }
        if (nl == NULL)
            return 0;
        rc = emit(ls->pending.data, ls->pending.len, cb, data);
        bdy_buf_reset(&ls->pending);
        if (rc != 0)
            return rc;
        i += part + 1;
    }
    return 0;
}

static const char *const type_names[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"};

const char *bdy_watch_type_name(bdy_watch_type t)
{
    return (unsigned)t < sizeof(type_names) / sizeof(type_names[0]) ? type_names[t] : "UNKNOWN";
}

int bdy_watch_event_parse(const char *line, size_t len, bdy_watch_type *type, json_object **object,
                          bdy_errbuf *eb)
{
    int rc = 0;
    *object = NULL;
    json_tokener *tok = json_tokener_new();
    json_object *ev = NULL;
    if (tok == NULL)
        return BDY_ENOMEM;
    if (len > (size_t)INT32_MAX) {
        rc = bdy_fail(eb, BDY_EPARSE, "watch event too long");
        goto out;
    }
    ev = json_tokener_parse_ex(tok, line, (int)len);
    /* One object per line and nothing after it. */
    if (ev == NULL || json_tokener_get_error(tok) != json_tokener_success ||
        json_tokener_get_parse_end(tok) != len) {
        rc = bdy_fail(eb, BDY_EPARSE, "watch event is not one JSON object");
        goto out;
    }
    const char *t = bdy_jstr(ev, "type");
    if (t == NULL) {
        rc = bdy_fail(eb, BDY_EPARSE, "watch event without a type");
        goto out;
    }
    size_t i = 0;
    while (i < sizeof(type_names) / sizeof(type_names[0]) && strcmp(type_names[i], t) != 0)
        i++;
    if (i == sizeof(type_names) / sizeof(type_names[0])) {
        rc = bdy_fail(eb, BDY_EPARSE, "unknown watch event type \"%.40s\"", t);
        goto out;
    }
    json_object *obj = bdy_jget(ev, "object");
    if (obj == NULL || !json_object_is_type(obj, json_type_object)) {
        rc = bdy_fail(eb, BDY_EPARSE, "%s event without an object", type_names[i]);
        goto out;
    }
    *type = (bdy_watch_type)i;
    *object = json_object_get(obj);
out:
    json_object_put(ev);
    json_tokener_free(tok);
    return rc;
}

int bdy_kube_status_from_json(json_object *obj, bdy_kube_status *out)
{
    memset(out, 0, sizeof(*out));
    const char *kind = bdy_jstr(obj, "kind");
    if (kind == NULL || strcmp(kind, "Status") != 0)
        return BDY_EINVAL;
    int64_t code = bdy_jint(obj, "code", 0);
    out->code = code >= 0 && code < 1000 ? (int)code : 0;
    const char *s = bdy_jstr(obj, "status");
    snprintf(out->status, sizeof(out->status), "%s", s ? s : "");
    s = bdy_jstr(obj, "reason");
    snprintf(out->reason, sizeof(out->reason), "%s", s ? s : "");
    s = bdy_jstr(obj, "message");
    snprintf(out->message, sizeof(out->message), "%s", s ? s : "");
    return 0;
}

int bdy_kube_status_parse(const char *body, size_t len, bdy_kube_status *out)
{
    memset(out, 0, sizeof(*out));
    if (body == NULL || len == 0 || len > (size_t)INT32_MAX)
        return BDY_EINVAL;
    json_tokener *tok = json_tokener_new();
    if (tok == NULL)
        return BDY_ENOMEM;
    json_object *o = json_tokener_parse_ex(tok, body, (int)len);
    int rc = o != NULL ? bdy_kube_status_from_json(o, out) : BDY_EINVAL;
    json_object_put(o);
    json_tokener_free(tok);
    return rc;
}
