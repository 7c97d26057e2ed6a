/* Fuzz driver for reconciler/selector.c.
 *
 * The input, as text, is parsed as a label selector and matched against a
 * fixed label set, parsed as a field selector and matched against a fixed
 * object, and, when it is JSON, compiled as a JSON LabelSelector. Parsing
 * the same text twice must give the same answer, so nondeterminism (reads of
 * uninitialised memory that happen to work) aborts.
 */
#include "bindery/selector.h"
#include "fuzz_text.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Inputs beyond the parser's own cap only exercise the length check. */
#define FUZZ_MAX_INPUT (BDY_SELECTOR_MAX_TEXT + 64)

static const char *const fuzz_allowed[] = {"metadata.name", "metadata.namespace", "status.phase",
                                           "spec.count", NULL};

static json_object *fixed_labels(void)
{
    static json_object *labels;
    if (labels == NULL)
        labels =
            json_tokener_parse("{\"app\":\"demo\",\"tier\":\"web\",\"gen\":\"5\","
                               "\"example.com/role\":\"gold\",\"empty\":\"\",\"in\":\"notin\"}");
    return labels;
}

static json_object *fixed_object(void)
{
    static json_object *obj;
    if (obj == NULL)
        obj =
            json_tokener_parse("{\"metadata\":{\"name\":\"w,1=x\\\\y\",\"namespace\":\"default\"},"
                               "\"status\":{\"phase\":\"Ready\"},\"spec\":{\"count\":3}}");
    return obj;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = NULL;
    bdy_label_selector *ls = NULL;
    bdy_label_selector *ls2 = NULL;
    bdy_field_selector *fs = NULL;
    json_object *json = NULL;
    bdy_errbuf eb;

    text = fuzz_text(data, size, FUZZ_MAX_INPUT);
    if (text == NULL)
        return 0;

    int rc1 = bdy_label_selector_parse(text, &ls, &eb);
    int rc2 = bdy_label_selector_parse(text, &ls2, NULL);
    if (rc1 != rc2 || (rc1 == 0) != (ls != NULL))
        abort();
    if (ls != NULL) {
        if (bdy_label_selector_matches(ls, fixed_labels()) !=
            bdy_label_selector_matches(ls2, fixed_labels()))
            abort();
        (void)bdy_label_selector_matches(ls, NULL);
        (void)bdy_label_selector_is_empty(ls);
    }

    if (bdy_field_selector_parse(text, fuzz_allowed, &fs, &eb) == 0) {
        (void)bdy_field_selector_matches(fs, fixed_object());
        (void)bdy_field_selector_matches(fs, NULL);
    }
    (void)bdy_json_path_get(fixed_object(), text);

    json_tokener *tok = json_tokener_new();
    if (tok != NULL) {
        json = json_tokener_parse_ex(tok, text, (int)size);
        if (json_tokener_get_error(tok) == json_tokener_success && json != NULL) {
            bdy_label_selector *js = NULL;
            if (bdy_label_selector_from_json(json, &js, &eb) == 0)
                (void)bdy_label_selector_matches(js, fixed_labels());
            bdy_label_selector_free(js);
        }
        json_tokener_free(tok);
    }

    json_object_put(json);
    bdy_field_selector_free(fs);
    bdy_label_selector_free(ls2);
    bdy_label_selector_free(ls);
    free(text);
    return 0;
}
