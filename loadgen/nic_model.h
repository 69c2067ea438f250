/* nic_model.h - a modelled NIC (--nic-model FILE, with --preflight only): answers the ethtool ioctls and
 * the ring parameters of ethtool netlink from a state read from a JSON file instead of the kernel,
 * so that --setup-nic's order and its restore run on a machine without a zcrx NIC. A model never
 * measures anything: options.c accepts it with --preflight only, the preflight registers nothing,
 * and every record and line says the NIC is modelled.
 *
 * The file, one JSON object (unknown keys are refused; only "ifname" and "rx_queues" are required):
 *   "ifname": "eth2"            the interface the model answers for (others: ENODEV)
 *   "ifindex": 7                (default 2)
 *   "driver": "bnxt_en"         (default "model")
 *   "rx_queues": 8              combined channels; also the RSS ring count (ETHTOOL_GRXRINGS)
 *   "tcp_data_split": "off"     on | off | auto | n/a (n/a: no ring parameters, RINGS_GET EOPNOTSUPP)
 *   "auto_shows": "on"          what RINGS_GET shows while the setting is auto (default on)
 *   "hds_thresh": 256           (default 0; null: not reported)
 *   "rss": [0, 1, 2, ...]       the indirection table (default: 128 entries spread i % rx_queues)
 *   "ntuple": false             ntuple-filters (default false)
 *   "ntuple_fixed": false       ETHTOOL_SFLAGS cannot change ntuple: EOPNOTSUPP (default false)
 *   "rule_table": 1024          rule table size (default 1024)
 *   "rules": [{"location": 5, "dst_port": 9000, "queue": 7}]      tcp4 rules already there
 *   "fail": [{"op": "ETHTOOL_SRXFHINDIR", "errno": "EOPNOTSUPP", "times": 1}]
 *                               that operation fails with that errno (the first "times" calls; every
 *                               call without it); op names as in the transcript
 * The model keeps what the set operations change: the last state is what a later read answers.
 */
#ifndef LOADGEN_NIC_MODEL_H
#define LOADGEN_NIC_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "lgerror.h"

/* Read the model from path. 0, or -1 with one line naming the file and the first problem. */
int nic_model_load(const char *path, struct lg_error *err);
bool nic_model_active(void);

/* The operations, answered from the model: 0 or -errno, like the kernel's. op is the operation's
 * name (ETHTOOL_GRXFHINDIR, ETHTOOL_MSG_RINGS_SET, ...): a "fail" entry for it answers first. */
int nic_model_ifindex(const char *ifname, unsigned *ifindex);
int nic_model_ethtool(const char *op, const char *ifname, void *cmd);
/* split: ETHTOOL_TCP_DATA_SPLIT_* or -1 (not reported); hds: -1 not reported */
int nic_model_rings_get(const char *ifname, int *split, int64_t *hds);
/* split/hds < 0: left as they are. *notified: the setting changed (the kernel's RINGS_NTF). */
int nic_model_rings_set(const char *ifname, int split, int64_t hds, int *notified);

#endif
