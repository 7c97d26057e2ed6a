/* The client side of Kubernetes watch streams and Status errors.
 *
 * A watch answer is a chunked stream of JSON objects, one per line:
 * {"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}}. Chunk
 * boundaries fall anywhere, so bytes go through a line splitter that keeps
 * the unfinished line (capped: a line longer than the cap is an error, not
 * unbounded memory). Errors from the API server are Status objects
 * ({"kind":"Status","code":410,"reason":"Expired","message":...}), as HTTP
 * bodies or as the object of an ERROR event.
 */
#ifndef BINDERY_KUBEWATCH_H
#define BINDERY_KUBEWATCH_H

#include "bindery/error.h"
#include "bindery/util.h"

#include <json-c/json.h>
#include <stddef.h>

/* Default cap on one watch event line (one object, like a request body). */
#define BDY_WATCH_LINE_MAX ((size_t)4 * 1024 * 1024)

/* Splits a byte stream into lines. Embed it; not thread-safe (one stream,
 * one thread). */
typedef struct bdy_linesplit {
    bdy_buf pending; /* the unfinished line so far */
    size_t max_line;
} bdy_linesplit;

/* Called once per complete line (without "\n" and a trailing "\r"; empty
 * lines are skipped). line is NUL-terminated and valid during the call.
 * Returning non-zero stops the feed, which returns that value. */
typedef int (*bdy_line_cb)(const char *line, size_t len, void *data);

void bdy_linesplit_init(bdy_linesplit *ls, size_t max_line);
void bdy_linesplit_free(bdy_linesplit *ls);
/* Forgets an unfinished line (a new stream starts). */
void bdy_linesplit_reset(bdy_linesplit *ls);
/* Feeds a chunk. BDY_ETOOBIG when a line grows past max_line (the stream
 * must be dropped); otherwise 0 or the callback's value. */
int bdy_linesplit_feed(bdy_linesplit *ls, const char *chunk, size_t len, bdy_line_cb cb,
                       void *data);
/* Bytes of an unfinished line (a stream that ended here was cut short). */
size_t bdy_linesplit_pending(const bdy_linesplit *ls);

typedef enum bdy_watch_type {
    BDY_WATCH_ADDED,
    BDY_WATCH_MODIFIED,
    BDY_WATCH_DELETED,
    BDY_WATCH_BOOKMARK,
    BDY_WATCH_ERROR,
} bdy_watch_type;

const char *bdy_watch_type_name(bdy_watch_type t);

/* Parses one event line. On success *object is a new reference the caller
 * puts. BDY_EPARSE (not JSON, no type, unknown type, object missing or not
 * an object), with the reason in eb. */
int bdy_watch_event_parse(const char *line, size_t len, bdy_watch_type *type, json_object **object,
                          bdy_errbuf *eb);

/* A decoded Status. */
typedef struct bdy_kube_status {
    int code;        /* HTTP code the Status carries, 0 if none */
    char status[16]; /* "Success" / "Failure" */
    char reason[64]; /* "NotFound", "Expired", ... */
    char message[512];
} bdy_kube_status;

/* Reads a Status object (kind "Status"). BDY_EINVAL when obj is not one. */
int bdy_kube_status_from_json(json_object *obj, bdy_kube_status *out);
/* Same from an HTTP body. */
int bdy_kube_status_parse(const char *body, size_t len, bdy_kube_status *out);

#endif
