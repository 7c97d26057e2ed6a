/* Fuzzes the watch-stream reader: the input is fed to the line splitter in
 * chunks whose sizes come from the input's first byte, and every line is
 * decoded as a watch event and as a Status. Lines handed out must be
 * NUL-terminated at their length, never longer than the cap. */
#include "bindery/kubewatch.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_LINE_MAX 4096

static int on_line(const char *line, size_t len, void *data)
{
    (void)data;
    if (len == 0 || len > FUZZ_LINE_MAX || line[len] != '\0')
        abort();
    bdy_watch_type t;
    json_object *obj = NULL;
    bdy_errbuf eb;
    bdy_errbuf_clear(&eb);
    if (bdy_watch_event_parse(line, len, &t, &obj, &eb) == 0) {
        if (obj == NULL || bdy_watch_type_name(t)[0] == 'U')
            abort();
        bdy_kube_status st;
        (void)bdy_kube_status_from_json(obj, &st);
        json_object_put(obj);
    } else if (obj != NULL || eb.message[0] == '\0') {
        abort();
    }
    bdy_kube_status st;
    (void)bdy_kube_status_parse(line, len, &st);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 1 << 20)
        return 0;
    size_t chunk = (size_t)data[0] % 17 + 1;
    bdy_linesplit ls;
    bdy_linesplit_init(&ls, FUZZ_LINE_MAX);
    for (size_t i = 1; i < size; i += chunk) {
        size_t n = size - i < chunk ? size - i : chunk;
        if (bdy_linesplit_feed(&ls, (const char *)data + i, n, on_line, NULL) == BDY_ETOOBIG)
            break; /* a real client drops the stream here */
    }
    bdy_linesplit_free(&ls);
    return 0;
}
