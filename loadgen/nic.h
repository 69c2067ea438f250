/* nic.h - the NIC side of the hardware zcrx backend (--backend zcrx --ifname IF --queue Q).
 *
 * nic_prepare() reads, before anything is registered: ifindex, driver, RX queue count, the ring
 * parameters tcp-data-split and hds-thresh (ethtool netlink: Debian 12's ethtool 6.1 can neither
 * set tcp-data-split nor show hds-thresh), ntuple-filters, the RSS indirection table and the
 * ntuple rules. zcrx needs: an RX queue besides its own, tcp-data-split set on, hds-thresh 0, no
 * RSS entry on any of its queues, and (with --listen) ntuple on and a rule directing flows to each
 * (--setup-nic adds one per queue: destination port PORT+i to queue i). Without --setup-nic the first
 * wrong setting fails with one line naming it and the command that fixes it; nothing is changed.
 * With --setup-nic each wrong setting is applied up front, its previous value (the RSS table entry
 * by entry, tcp-data-split "auto" when the driver chose it) remembered, and nic_restore() puts every
 * one back; a failure part-way restores what was applied before returning.
 *
 * A device that reports no tcp-data-split at all (veth, lo, virtio_net) cannot host zcrx; nothing
 * is checked or changed and the registration attempt (which changes nothing either) gives the
 * kernel's own reason.
 */
#ifndef LOADGEN_NIC_H
#define LOADGEN_NIC_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#include "lgerror.h"

#define NIC_SPLIT_NONE (-1)     /* the driver reports no tcp-data-split */
#define NIC_MAX_QUEUES 64       /* = LG_MAX_RINGS: one queue per ring at most */

struct nic_state {
	char ifname[IF_NAMESIZE];
	unsigned ifindex;
	char driver[32];
	unsigned queue;                 /* the first of queues[] (messages name it) */
	unsigned queues[NIC_MAX_QUEUES];        /* zcrx's queues: one, or one per ring (ifq-per-ring) */
	unsigned nqueues;
	char qtext[48];                 /* "queue 4" or "queues 4,5,6" for the messages */
	unsigned rx_queues;             /* from ETHTOOL_GCHANNELS; 0 = not reported */
	int split;                      /* as read: NIC_SPLIT_NONE or ETHTOOL_TCP_DATA_SPLIT_* */
	int64_t hds;                    /* hds-thresh as read; -1 = not reported */
	bool setup;                     /* --setup-nic */
	/* what --setup-nic changed; nic_restore() undoes each */
	bool split_changed;
	uint8_t split_old;              /* config to put back (ETHTOOL_TCP_DATA_SPLIT_UNKNOWN = auto) */
	bool hds_changed;
	uint32_t hds_old;
	bool ntuple_changed;
	bool rss_changed;
	bool rss_was_default;           /* the table was the driver's default spread: reset, not set */
	uint32_t rss_size;
	uint32_t *rss_old;              /* the previous indirection table (rss_size entries) */
	uint32_t rule_ids[NIC_MAX_QUEUES];      /* the ntuple rules added (their locations), in order */
	unsigned nrules;
	bool reported;                  /* the "before" nic event went out: nic_restore() reports "after" */
};

/* --nic-transcript FILE: from now on every operation on the NIC (ethtool ioctl, ethtool netlink ring
 * parameters, the interface lookup) is one JSON line there: seq, op, ifname, answered_by ("kernel" or
 * "model"), write (the values sent), read (the values answered), result ("ok" or the errno's name),
 * extack, and notified (RINGS_SET). -1 with one line when the file cannot be written. */
int nic_transcript_open(const char *path, struct lg_error *err);
/* The registration's line in the transcript (err: positive errno, 0 = registered). */
void nic_transcribe_registration(const struct nic_state *st, unsigned queue, int err);

/* Read (and with setup apply) what zcrx needs on ifname's RX queues queues[0..n-1]; listen is the
 * --listen ADDR:PORT (NULL in loopback mode: no flow to steer): queues[i] gets the flows to PORT+i
 * (one rule each). -1 with one precise line. */
int nic_prepare(const char *ifname, const unsigned *queues, unsigned n, const char *listen, bool setup,
		struct nic_state *st, struct lg_error *err);
/* After a failed registration: an EINVAL the NIC settings explain gets that explanation. */
void nic_explain_register_error(const struct nic_state *st, struct lg_error *err);
/* Undo everything nic_prepare changed (safe on every exit path; nothing when nothing changed).
 * nic_prepare() prints a `nic` event with the state as found ("before"), nic_restore() one with
 * the state once restored ("after", with the list of what --setup-nic had changed). */
void nic_restore(struct nic_state *st);

#endif
