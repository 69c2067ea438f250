/* nic.h - NIC preflight and set-up for the hardware zcrx backend (--backend zcrx).
 *
 * Preflight reads only (ifindex, driver, channel count): it changes nothing. nic_setup() applies
 * what zcrx needs (tcp-data-split on, hds-thresh 0, RSS away from the queue, a flow rule steering
 * the listen port to it) with the `ethtool` program, remembering every previous value; nic_restore()
 * puts each one back and is safe to call on every exit path (it does nothing when nothing changed).
 */
#ifndef LOADGEN_NIC_H
#define LOADGEN_NIC_H

#include <net/if.h>
#include <stdbool.h>

#include "lgerror.h"

struct nic_state {
	bool applied;                   /* nic_setup changed something */
	char ifname[IF_NAMESIZE];
	char old_split[16];             /* previous tcp-data-split ("on"/"off"/"auto"), "" = untouched */
	char old_hds[16];               /* previous hds-thresh, "" = untouched */
	bool rss_changed;               /* RSS indirection was changed (restored with "default") */
	int rule_id;                    /* ntuple rule added, -1 = none */
};

/* ifindex, driver name and a queue range check; -1 with one precise line. */
int nic_preflight(const char *ifname, unsigned queue, unsigned *ifindex, char *driver, int driver_len,
		  struct lg_error *err);
/* Apply header split, hds-thresh 0, RSS away from queue, flow rule for addr's port (if any). */
int nic_setup(const char *ifname, unsigned queue, const char *addr, struct nic_state *st, struct lg_error *err);
/* Undo everything nic_setup changed. */
void nic_restore(struct nic_state *st);

#endif
