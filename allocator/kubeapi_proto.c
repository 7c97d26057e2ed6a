/* Kubernetes protobuf request bodies of Secrets, ConfigMaps and Namespaces:
 * what kubectl's typed clients send (`kubectl create secret generic`,
 * `kubectl create configmap`, `kubectl create namespace` post protobuf, not
 * JSON), decoded into the JSON object
 * a JSON client would have sent, so that both meet the same validation in
 * the store.
 *
 * The format (k8s.io/apimachinery runtime/serializer/protobuf): the magic
 * "k8s\0", then a runtime.Unknown {1: TypeMeta {1: apiVersion, 2: kind},
 * 2: raw, the object's own message, 3: contentEncoding, 4: contentType}.
 * The messages are those of k8s.io/api/core/v1/generated.proto; a map is
 * a repeated entry message {1: key, 2: value}.
 *
 * All of it is outside input: every read is bounded by the body (which the
 * HTTP server caps), nesting is fixed by the message types (Unknown, the
 * object, ObjectMeta, a map entry or OwnerReference), strings must be UTF-8
 * without NUL like JSON bodies, and fields these kinds do not have are
 * skipped as every protobuf reader skips them. tests/fuzz/fuzz_kubeproto.c
 * drives it. */
#include "kubeapi_internal.h"

#include "bindery/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROTO_MAGIC "k8s\0"
#define PROTO_MAGIC_LEN 4

enum wire_type {
    WIRE_VARINT = 0,
    WIRE_FIXED64 = 1,
    WIRE_LEN = 2,
    WIRE_FIXED32 = 5,
};

/* A slice of the body being read. */
typedef struct pb {
    const uint8_t *p;
    const uint8_t *end;
} pb;

/* One field as read: its number and wire type, and its value (varint) or
 * contents (length-delimited). */
typedef struct pb_field {
    uint32_t num;
    int wire;
    uint64_t varint;
    pb sub;
} pb_field;

typedef enum proto_kind {
    PROTO_NONE,
    PROTO_SECRET,
    PROTO_CONFIGMAP,
    PROTO_NAMESPACE,
    PROTO_ACCESS_REVIEW, /* SelfSubjectAccessReview (kubectl auth can-i) */
    PROTO_SELF_REVIEW,   /* SelfSubjectReview (kubectl auth whoami) */
    PROTO_RULES_REVIEW,  /* SelfSubjectRulesReview (kubectl auth can-i --list) */
} proto_kind;

static proto_kind kind_of(const bdy_resource_info *info)
{
    if (strcmp(info->group, "authorization.k8s.io") == 0 &&
        strcmp(info->resource, "selfsubjectaccessreviews") == 0)
        return PROTO_ACCESS_REVIEW;
    if (strcmp(info->group, "authorization.k8s.io") == 0 &&
        strcmp(info->resource, "selfsubjectrulesreviews") == 0)
        return PROTO_RULES_REVIEW;
    if (strcmp(info->group, "authentication.k8s.io") == 0 &&
        strcmp(info->resource, "selfsubjectreviews") == 0)
        return PROTO_SELF_REVIEW;
    if (info->group[0] != '\0')
        return PROTO_NONE;
    if (strcmp(info->resource, "secrets") == 0)
        return PROTO_SECRET;
    if (strcmp(info->resource, "configmaps") == 0)
        return PROTO_CONFIGMAP;
    if (strcmp(info->resource, "namespaces") == 0)
        return PROTO_NAMESPACE;
    return PROTO_NONE;
}

bool bdy__kube_proto_accepts(const bdy_resource_info *info)
{
    proto_kind k = kind_of(info);
    return k == PROTO_SECRET || k == PROTO_CONFIGMAP || k == PROTO_NAMESPACE;
}

static bool read_varint(pb *r, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64 && r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *out = v;
            return true;
        }
    }
    return false; /* cut short, or longer than ten bytes */
}

/* Reads the next field of r. Returns 1 with f filled, 0 at the end of r,
 * -1 when what follows is not a field (groups, wire types 3 and 4, are
 * not in these messages either). */
static int next_field(pb *r, pb_field *f)
{
    uint64_t key = 0;
    uint64_t len = 0;
    /* Every member set whatever the wire type, so that no reader of a
     * field of another type than it expects reads garbage. */
    f->varint = 0;
    f->sub.p = f->sub.end = r->end;
    if (r->p >= r->end)
        return 0;
    if (!read_varint(r, &key) || (key >> 3) == 0 || (key >> 3) > UINT32_MAX)
        return -1;
    f->num = (uint32_t)(key >> 3);
    f->wire = (int)(key & 7);
    switch (f->wire) {
    case WIRE_VARINT:
        return read_varint(r, &f->varint) ? 1 : -1;
    case WIRE_FIXED64:
    case WIRE_FIXED32: {
        size_t n = f->wire == WIRE_FIXED64 ? 8 : 4;
        if ((size_t)(r->end - r->p) < n)
            return -1;
        r->p += n;
        return 1;
    }
    case WIRE_LEN:
        if (!read_varint(r, &len) || len > (uint64_t)(r->end - r->p))
            return -1;
        f->sub.p = r->p;
        f->sub.end = r->p + len;
        r->p += len;
        return 1;
    default:
        return -1;
    }
}

static int malformed(bdy_errbuf *eb, const char *kind, const char *what)
{
    return bdy_fail(eb, BDY_EINVAL, "the protobuf request body is not a valid %s: %s", kind, what);
}

/* A string field as a JSON string: UTF-8 without NUL, as JSON bodies must
 * be (every client reads the stored object back as JSON). */
static int pb_string(const pb_field *f, const char *kind, json_object **out, bdy_errbuf *eb)
{
    *out = NULL;
    if (f->wire != WIRE_LEN)
        return malformed(eb, kind, "a string field is not length-delimited");
    size_t n = (size_t)(f->sub.end - f->sub.p);
    if (!bdy_utf8_valid((const char *)f->sub.p, n) || memchr(f->sub.p, '\0', n) != NULL)
        return malformed(eb, kind, "a string is not UTF-8 or holds a NUL");
    *out = json_object_new_string_len((const char *)f->sub.p, (int)n);
    return *out != NULL ? 0 : BDY_ENOMEM;
}

/* A bytes field as JSON shows it: standard base64. */
static int pb_bytes(const pb_field *f, const char *kind, json_object **out, bdy_errbuf *eb)
{
    *out = NULL;
    if (f->wire != WIRE_LEN)
        return malformed(eb, kind, "a bytes field is not length-delimited");
    size_t n = (size_t)(f->sub.end - f->sub.p);
    char *b64 = NULL;
    int rc = bdy_base64_encode(f->sub.p, n, &b64);
    if (rc != 0)
        return rc;
    *out = json_object_new_string(b64);
    free(b64);
    return *out != NULL ? 0 : BDY_ENOMEM;
}

/* Adds value under key to parent (taking value). */
static int put(json_object *parent, const char *key, json_object *value)
{
    if (json_object_object_add(parent, key, value) != 0) {
        json_object_put(value);
        return BDY_ENOMEM;
    }
    return 0;
}

/* parent[key], made an empty object or array (array true) when absent. */
static json_object *child(json_object *parent, const char *key, bool array)
{
    json_object *c = NULL;
    if (json_object_object_get_ex(parent, key, &c))
        return c;
    c = array ? json_object_new_array() : json_object_new_object();
    if (c != NULL && put(parent, key, c) != 0)
        return NULL;
    return c;
}

/* One map entry {1: key, 2: value} into parent[name]; bytes: the value is
 * bytes (base64 in JSON), else a string. A later entry of the same key
 * wins, as in Go. */
static int map_entry(json_object *parent, const char *name, const pb_field *f, bool bytes,
                     const char *kind, bdy_errbuf *eb)
{
    json_object *key = NULL;
    json_object *value = NULL;
    pb r = f->sub;
    pb_field e;
    int more = 0;
    int rc = 0;
    if (f->wire != WIRE_LEN)
        return malformed(eb, kind, "a map entry is not a message");
    while (rc == 0 && (more = next_field(&r, &e)) > 0) {
        json_object **slot = e.num == 1 ? &key : e.num == 2 ? &value : NULL;
        if (slot == NULL)
            continue;
        json_object_put(*slot);
        *slot = NULL;
        rc = e.num == 2 && bytes ? pb_bytes(&e, kind, slot, eb) : pb_string(&e, kind, slot, eb);
    }
    if (rc == 0 && more < 0)
        rc = malformed(eb, kind, "a map entry is cut short");
    json_object *map = rc == 0 ? child(parent, name, false) : NULL;
    if (rc == 0 && map == NULL)
        rc = BDY_ENOMEM;
    if (rc == 0) {
        rc = put(map, key != NULL ? json_object_get_string(key) : "",
                 value != NULL ? value : json_object_new_string(""));
        value = NULL;
    }
    json_object_put(key);
    json_object_put(value);
    return rc;
}

/* A string field into obj[name]; an empty one is left out, as Go's JSON
 * encoding leaves out empty strings. */
static int string_member(json_object *obj, const char *name, const pb_field *f, const char *kind,
                         bdy_errbuf *eb)
{
    json_object *s = NULL;
    int rc = pb_string(f, kind, &s, eb);
    if (rc != 0)
        return rc;
    if (json_object_get_string_len(s) == 0) {
        json_object_put(s);
        json_object_object_del(obj, name);
        return 0;
    }
    return put(obj, name, s);
}

/* A repeated string field's next item, appended to obj[name]. */
static int list_string(json_object *obj, const char *name, const pb_field *f, const char *kind,
                       bdy_errbuf *eb)
{
    json_object *s = NULL;
    json_object *list = NULL;
    int rc = pb_string(f, kind, &s, eb);
    if (rc == 0 &&
        ((list = child(obj, name, true)) == NULL || json_object_array_add(list, s) != 0)) {
        json_object_put(s);
        rc = BDY_ENOMEM;
    }
    return rc;
}

/* A Namespace's spec {1: finalizers}; kubectl sends an empty one, which
 * JSON leaves out too. */
static int namespace_spec(json_object *obj, const pb_field *f, const char *kind, bdy_errbuf *eb)
{
    pb r = f->sub;
    pb_field e;
    int more = 0;
    int rc = 0;
    if (f->wire != WIRE_LEN)
        return malformed(eb, kind, "spec is not a message");
    json_object *spec = NULL;
    while (rc == 0 && (more = next_field(&r, &e)) > 0) {
        if (e.num != 1)
            continue;
        if (spec == NULL && (spec = child(obj, "spec", false)) == NULL)
            return BDY_ENOMEM;
        rc = list_string(spec, "finalizers", &e, kind, eb);
    }
    if (rc == 0 && more < 0)
        rc = malformed(eb, kind, "spec is cut short");
    return rc;
}

static int bool_member(json_object *obj, const char *name, const pb_field *f, const char *kind,
                       bdy_errbuf *eb)
{
    if (f->wire != WIRE_VARINT)
        return malformed(eb, kind, "a bool field is not a varint");
    json_object *b = json_object_new_boolean(f->varint != 0);
    return b != NULL ? put(obj, name, b) : BDY_ENOMEM;
}

/* An OwnerReference into metadata.ownerReferences. */
static int owner_reference(json_object *meta, const pb_field *f, const char *kind, bdy_errbuf *eb)
{
    static const char *const names[] = {
        [1] = "kind", [3] = "name", [4] = "uid", [5] = "apiVersion"};
    json_object *ref = json_object_new_object();
    pb r = f->sub;
    pb_field e;
    int more = 0;
    int rc = 0;
    if (ref == NULL)
        return BDY_ENOMEM;
    if (f->wire != WIRE_LEN) {
        json_object_put(ref);
        return malformed(eb, kind, "an owner reference is not a message");
    }
    while (rc == 0 && (more = next_field(&r, &e)) > 0) {
        if (e.num < sizeof(names) / sizeof(names[0]) && names[e.num] != NULL)
            rc = string_member(ref, names[e.num], &e, kind, eb);
        else if (e.num == 6)
            rc = bool_member(ref, "controller", &e, kind, eb);
        else if (e.num == 7)
            rc = bool_member(ref, "blockOwnerDeletion", &e, kind, eb);
    }
    if (rc == 0 && more < 0)
        rc = malformed(eb, kind, "an owner reference is cut short");
    json_object *list = rc == 0 ? child(meta, "ownerReferences", true) : NULL;
    if (rc == 0 && (list == NULL || json_object_array_add(list, ref) != 0))
        rc = BDY_ENOMEM;
    if (rc != 0)
        json_object_put(ref);
    return rc;
}

/* ObjectMeta into obj.metadata. What the server sets itself (selfLink,
 * generation, the timestamps, deletionGracePeriodSeconds, managedFields)
 * is skipped: the store sets or keeps it whatever a client sends. */
static int object_meta(json_object *obj, const pb_field *f, const char *kind, bdy_errbuf *eb)
{
    static const char *const strings[] = {[1] = "name",
                                          [2] = "generateName",
                                          [3] = "namespace",
                                          [5] = "uid",
                                          [6] = "resourceVersion"};
    pb r = f->sub;
    pb_field e;
    int more = 0;
    int rc = 0;
    if (f->wire != WIRE_LEN)
        return malformed(eb, kind, "metadata is not a message");
    json_object *meta = child(obj, "metadata", false);
    if (meta == NULL)
        return BDY_ENOMEM;
    while (rc == 0 && (more = next_field(&r, &e)) > 0) {
        if (e.num < sizeof(strings) / sizeof(strings[0]) && strings[e.num] != NULL) {
            rc = string_member(meta, strings[e.num], &e, kind, eb);
        } else if (e.num == 11 || e.num == 12) {
            rc = map_entry(meta, e.num == 11 ? "labels" : "annotations", &e, false, kind, eb);
        } else if (e.num == 13) {
            rc = owner_reference(meta, &e, kind, eb);
        } else if (e.num == 14) {
            rc = list_string(meta, "finalizers", &e, kind, eb);
        }
    }
    if (rc == 0 && more < 0)
        rc = malformed(eb, kind, "metadata is cut short");
    return rc;
}

/* The object's own message (Unknown.raw) into obj. */
/* A SelfSubjectAccessReview's spec {1: resourceAttributes {1: namespace,
 * 2: verb, 3: group, 4: version, 5: resource, 6: subresource, 7: name},
 * 2: nonResourceAttributes {1: path, 2: verb}} (k8s.io/api/authorization/
 * v1/generated.proto); its other fields are not read. */
static int access_review_spec(json_object *obj, const pb_field *f, const char *kind, bdy_errbuf *eb)
{
    static const char *const resource_fields[] = {NULL,      "namespace", "verb",        "group",
                                                  "version", "resource",  "subresource", "name"};
    static const char *const path_fields[] = {NULL, "path", "verb"};
    if (f->wire != WIRE_LEN)
        return malformed(eb, kind, "its spec is not a message");
    json_object *spec = child(obj, "spec", false);
    if (spec == NULL)
        return BDY_ENOMEM;
    pb r = f->sub;
    pb_field e;
    int more = 0;
    int rc = 0;
    while (rc == 0 && (more = next_field(&r, &e)) > 0) {
        if ((e.num != 1 && e.num != 2) || e.wire != WIRE_LEN)
            continue;
        json_object *attrs =
            child(spec, e.num == 1 ? "resourceAttributes" : "nonResourceAttributes", false);
        if (attrs == NULL)
            return BDY_ENOMEM;
        pb a = e.sub;
        pb_field g;
        int inner = 0;
        size_t nfields = e.num == 1 ? 8 : 3;
        const char *const *names = e.num == 1 ? resource_fields : path_fields;
        while (rc == 0 && (inner = next_field(&a, &g)) > 0) {
            if (g.num >= 1 && g.num < nfields && g.wire == WIRE_LEN)
                rc = string_member(attrs, names[g.num], &g, kind, eb);
        }
        if (rc == 0 && inner < 0)
            rc = malformed(eb, kind, "its attributes are cut short");
    }
    if (rc == 0 && more < 0)
        rc = malformed(eb, kind, "its spec is cut short");
    return rc;
}

static int decode_object(proto_kind k, json_object *obj, pb raw, const char *kind, bdy_errbuf *eb)
{
    pb_field e;
    int more = 0;
    int rc = 0;
    while (rc == 0 && (more = next_field(&raw, &e)) > 0) {
        if (e.num == 1) {
            rc = object_meta(obj, &e, kind, eb);
        } else if (k == PROTO_ACCESS_REVIEW || k == PROTO_SELF_REVIEW || k == PROTO_RULES_REVIEW) {
            /* {2: spec, 3: status}; a SelfSubjectReview has no spec, a
             * SelfSubjectRulesReview's is {1: namespace}. */
            if (k == PROTO_ACCESS_REVIEW && e.num == 2) {
                rc = access_review_spec(obj, &e, kind, eb);
            } else if (k == PROTO_RULES_REVIEW && e.num == 2 && e.wire == WIRE_LEN) {
                json_object *spec = child(obj, "spec", false);
                pb r = e.sub;
                pb_field g;
                int inner = 0;
                if (spec == NULL)
                    rc = BDY_ENOMEM;
                while (rc == 0 && (inner = next_field(&r, &g)) > 0)
                    if (g.num == 1 && g.wire == WIRE_LEN)
                        rc = string_member(spec, "namespace", &g, kind, eb);
                if (rc == 0 && inner < 0)
                    rc = malformed(eb, kind, "its spec is cut short");
            }
        } else if (k == PROTO_NAMESPACE) {
            /* Namespace {2: spec, 3: status}: a status is the server's
             * to set, as the store does for a JSON body's. */
            if (e.num == 2)
                rc = namespace_spec(obj, &e, kind, eb);
        } else if (k == PROTO_SECRET) {
            /* Secret {2: data (bytes), 3: type, 4: stringData, 5: immutable} */
            if (e.num == 2 || e.num == 4)
                rc = map_entry(obj, e.num == 2 ? "data" : "stringData", &e, e.num == 2, kind, eb);
            else if (e.num == 3)
                rc = string_member(obj, "type", &e, kind, eb);
            else if (e.num == 5)
                rc = bool_member(obj, "immutable", &e, kind, eb);
        } else {
            /* ConfigMap {2: data, 3: binaryData (bytes), 4: immutable} */
            if (e.num == 2 || e.num == 3)
                rc = map_entry(obj, e.num == 2 ? "data" : "binaryData", &e, e.num == 3, kind, eb);
            else if (e.num == 4)
                rc = bool_member(obj, "immutable", &e, kind, eb);
        }
    }
    if (rc == 0 && more < 0)
        rc = malformed(eb, kind, "the object is cut short");
    return rc;
}

int bdy__kube_proto_decode(const bdy_resource_info *info, const char *body, size_t len,
                           json_object **out, bdy_errbuf *eb)
{
    proto_kind k = kind_of(info);
    const char *kind = info->kind;
    json_object *obj = NULL;
    pb r = {(const uint8_t *)body, (const uint8_t *)body + len};
    pb raw = {NULL, NULL};
    pb_field f;
    int more = 0;
    int rc = 0;
    *out = NULL;
    if (k == PROTO_NONE)
        return bdy_fail(eb, BDY_EUNSUPPORTED, "%s cannot be sent as protobuf", info->resource);
    if (len < PROTO_MAGIC_LEN || memcmp(body, PROTO_MAGIC, PROTO_MAGIC_LEN) != 0)
        return malformed(eb, kind, "it does not start with the Kubernetes protobuf prefix");
    r.p += PROTO_MAGIC_LEN;
    if ((obj = json_object_new_object()) == NULL)
        return BDY_ENOMEM;
    while (rc == 0 && (more = next_field(&r, &f)) > 0) {
        if (f.num == 1 && f.wire == WIRE_LEN) {
            /* TypeMeta {1: apiVersion, 2: kind}: checked against the
             * resource where JSON bodies' are, in the store. */
            pb t = f.sub;
            pb_field e;
            int tm = 0;
            while (rc == 0 && (tm = next_field(&t, &e)) > 0) {
                if (e.num == 1 || e.num == 2)
                    rc = string_member(obj, e.num == 1 ? "apiVersion" : "kind", &e, kind, eb);
            }
            if (rc == 0 && tm < 0)
                rc = malformed(eb, kind, "its type is cut short");
        } else if (f.num == 2 && f.wire == WIRE_LEN) {
            raw = f.sub;
        } else if (f.num <= 4 && f.wire != WIRE_LEN) {
            rc = malformed(eb, kind, "a field of the envelope is not length-delimited");
        } else if ((f.num == 3 || f.num == 4) && f.sub.p != f.sub.end) {
            /* contentEncoding or contentType: only a plain protobuf object
             * (both empty) is what these clients send. */
            rc = malformed(eb, kind, "a content encoding or type is set");
        }
    }
    if (rc == 0 && more < 0)
        rc = malformed(eb, kind, "the envelope is cut short");
    if (rc == 0 && raw.p == NULL)
        rc = malformed(eb, kind, "the envelope holds no object");
    if (rc == 0)
        rc = decode_object(k, obj, raw, kind, eb);
    if (rc != 0) {
        json_object_put(obj);
        return rc;
    }
    *out = obj;
    return 0;
}
