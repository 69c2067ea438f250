/* backends.c - find a receive backend by name. */
#include <string.h>

#include "backend.h"
#include "vocab.h"

static const struct rx_backend *const backends[] = { &rx_backend_copy, &rx_backend_zcrx_nodev, &rx_backend_zcrx };

_Static_assert(sizeof(backends) / sizeof(backends[0]) == LG_NBACKENDS, "one rx_backend per vocab.h backend");

const struct rx_backend *backend_find(const char *name, struct lg_error *err)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (!strcmp(name, backends[i]->name))
			return backends[i];
	lg_error_set(err, NULL, 0, "unknown --backend '%s' (" LG_BACKEND_LIST ")", name);
	return NULL;
}
