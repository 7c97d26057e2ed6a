/* Internal to the runtime backends: checks every backend makes the same way.
 */
#ifndef BINDERY_RECONCILER_RUNTIME_INTERNAL_H
#define BINDERY_RECONCILER_RUNTIME_INTERNAL_H

#include "bindery/error.h"

/* Kubernetes limits: a namespace is a DNS label, a name a DNS subdomain. */
#define BDY__WORLD_NS_MAX 63
#define BDY__WORLD_NAME_MAX 253

/* Checks that ns and name are usable as a world's identity: present, within
 * the Kubernetes lengths, and safe inside a file name (no '/', no control
 * characters, not "." or ".."), since the process runtime names a log file
 * after them. Returns 0 or BDY_EINVAL with the detail in eb. */
int bdy__runtime_check_names(const char *ns, const char *name, bdy_errbuf *eb);

#endif
