/* Fuzz driver: bytes → bdy_yaml_to_json() and bdy_yaml_parse_one().
 *
 * Both must either succeed or fail with one of their documented codes and a
 * "line N: ..." message, never crash, hang or leak. A successful result is
 * serialised too, so every json-c object it built is visited.
 */
#include "bindery/yaml.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_code(int rc, const bdy_errbuf *eb)
{
    if (rc == 0)
        return;
    if (rc != BDY_EPARSE && rc != BDY_ETOOBIG && rc != BDY_ENOMEM)
        abort();
    if (eb->message[0] == '\0')
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_object *docs = NULL;
    bdy_ynode *root = NULL;
    bdy_errbuf eb;

    bdy_errbuf_clear(&eb);
    int rc = bdy_yaml_to_json((const char *)data, size, &docs, &eb);
    check_code(rc, &eb);
    if (rc == 0) {
        if (!json_object_is_type(docs, json_type_array))
            abort();
        const char *s = json_object_to_json_string_ext(docs, JSON_C_TO_STRING_PLAIN);
        if (s == NULL)
            abort();
        json_object_put(docs);
    } else if (docs != NULL) {
        abort();
    }

    bdy_errbuf_clear(&eb);
    rc = bdy_yaml_parse_one((const char *)data, size, &root, &eb);
    check_code(rc, &eb);
    if (rc == 0) {
        if (root->kind == BDY_YNODE_MAP) {
            for (size_t i = 0; i < root->count; i++) {
                if (bdy_ynode_get(root, root->keys[i]) != root->items[i])
                    abort();
            }
        }
        bdy_ynode_free(root);
    } else if (root != NULL) {
        abort();
    }
    return 0;
}
