/* backends.c - find a receive backend by name. */
#include <string.h>

#include "backend.h"

const struct rx_backend *backend_find(const char *name, struct lg_error *err)
{
	if (!strcmp(name, "copy"))
		return &rx_backend_copy;
	if (!strcmp(name, "zcrx")) {
		if (&rx_backend_zcrx)
			return &rx_backend_zcrx;
		lg_error_set(err, NULL, 0, "--backend zcrx is not built into this binary "
			     "(loadgen/rx_zcrx*.c not present yet); use --backend copy");
		return NULL;
	}
	if (!strcmp(name, "zcrx-nodev")) {
		if (&rx_backend_zcrx_nodev)
			return &rx_backend_zcrx_nodev;
		lg_error_set(err, NULL, 0, "--backend zcrx-nodev is not built into this binary "
			     "(loadgen/rx_zcrx*.c not present yet); use --backend copy");
		return NULL;
	}
	lg_error_set(err, NULL, 0, "unknown --backend '%s' (copy, zcrx, zcrx-nodev)", name);
	return NULL;
}
