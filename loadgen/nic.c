/* nic.c - NIC preflight (ethtool ioctl) and set-up/restore (the ethtool program); see nic.h. */
#include <ctype.h>
#include <errno.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nic.h"

static int ethtool_ioctl(const char *ifname, void *cmd)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret;

	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_data = cmd;
	ret = ioctl(fd, SIOCETHTOOL, &ifr) < 0 ? -errno : 0;
	close(fd);
	return ret;
}

static bool valid_ifname(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= IF_NAMESIZE)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("-_.@", *s))
			return false;
	return true;
}

int nic_preflight(const char *ifname, unsigned queue, unsigned *ifindex, char *driver, int driver_len,
		  struct lg_error *err)
{
	struct ethtool_drvinfo di = { .cmd = ETHTOOL_GDRVINFO };
	struct ethtool_channels ch = { .cmd = ETHTOOL_GCHANNELS };
	unsigned nq;
	int ret;

	if (!valid_ifname(ifname)) {
		lg_error_set(err, NULL, 0, "--ifname '%s' is not an interface name", ifname);
		return -1;
	}
	*ifindex = if_nametoindex(ifname);
	if (!*ifindex) {
		lg_error_set(err, "if_nametoindex", errno, "no network interface %s here", ifname);
		return -1;
	}
	ret = ethtool_ioctl(ifname, &di);
	snprintf(driver, (size_t)driver_len, "%s", ret == 0 && di.driver[0] ? di.driver : "no driver");
	ret = ethtool_ioctl(ifname, &ch);
	if (ret == 0) {
		nq = ch.combined_count + ch.rx_count;
		if (queue >= nq) {
			lg_error_set(err, NULL, 0, "%s (%s) has %u RX queue(s): --queue %u is out of range", ifname,
				     driver, nq, queue);
			return -1;
		}
	}
	/* no channel info (lo, veth): the registration attempt says precisely why it cannot work */
	return 0;
}

/* Run `ethtool ARGS...`; returns its exit status (or -1); its stdout goes to out (may be NULL). */
static int ethtool_run(char *out, size_t out_len, const char *const argv[])
{
	int pfd[2], status;
	pid_t pid;
	size_t n = 0;
	ssize_t r;

	if (pipe(pfd) < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execvp("ethtool", (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	while (out && n + 1 < out_len && (r = read(pfd[0], out + n, out_len - n - 1)) > 0)
		n += (size_t)r;
	if (out)
		out[n] = 0;
	close(pfd[0]);
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Value after "label:" on the "Current hardware settings" part of `ethtool -g`. */
static void ring_setting(const char *text, const char *label, char *val, size_t len)
{
	const char *cur = strstr(text, "Current hardware settings"), *p;

	val[0] = 0;
	if (!cur || !(p = strstr(cur, label)))
		return;
	p += strlen(label);
	while (*p == ' ' || *p == '\t')
		p++;
	snprintf(val, len, "%.*s", (int)strcspn(p, " \t\n"), p);
}

int nic_setup(const char *ifname, unsigned queue, const char *addr, struct nic_state *st, struct lg_error *err)
{
	char text[8192], qs[16], port[16] = "";
	const char *colon = addr ? strrchr(addr, ':') : NULL;
	int ret;

	memset(st, 0, sizeof(*st));
	st->rule_id = -1;
	snprintf(st->ifname, sizeof(st->ifname), "%s", ifname);
	snprintf(qs, sizeof(qs), "%u", queue);
	if (ethtool_run(text, sizeof(text), (const char *const[]){ "ethtool", "-g", ifname, NULL }) != 0) {
		lg_error_set(err, NULL, 0, "--setup-nic: `ethtool -g %s` failed (is ethtool installed?)", ifname);
		return -1;
	}
	ring_setting(text, "TCP data split:", st->old_split, sizeof(st->old_split));
	ring_setting(text, "HDS thresh:", st->old_hds, sizeof(st->old_hds));
	if (!st->old_split[0] || !strcmp(st->old_split, "n/a")) {
		lg_error_set(err, NULL, 0, "--setup-nic: %s reports no tcp-data-split setting: the driver "
			     "cannot split headers, which zcrx needs", ifname);
		return -1;
	}
	st->applied = true;
	ret = ethtool_run(NULL, 0, (const char *const[]){ "ethtool", "-G", ifname, "tcp-data-split", "on",
							  st->old_hds[0] ? "hds-thresh" : NULL, "0", NULL });
	if (ret != 0) {
		lg_error_set(err, NULL, 0, "--setup-nic: `ethtool -G %s tcp-data-split on hds-thresh 0` failed", ifname);
		nic_restore(st);
		return -1;
	}
	/* RSS over queues 0..queue-1 only (the zcrx queue is the last one RSS may use) */
	if (queue > 0 && ethtool_run(NULL, 0, (const char *const[]){ "ethtool", "-X", ifname, "equal", qs, NULL }) == 0)
		st->rss_changed = true;
	if (colon && colon[1]) {
		snprintf(port, sizeof(port), "%s", colon + 1);
		ret = ethtool_run(text, sizeof(text), (const char *const[]){ "ethtool", "-N", ifname, "flow-type",
				  strchr(addr, '[') || strchr(addr, ':') != colon ? "tcp6" : "tcp4", "dst-port", port,
				  "action", qs, NULL });
		if (ret != 0 || sscanf(strstr(text, "ID") ? strstr(text, "ID") : "", "ID %d", &st->rule_id) != 1) {
			lg_error_set(err, NULL, 0, "--setup-nic: cannot steer port %s to queue %u on %s (ntuple off?)",
				     port, queue, ifname);
			nic_restore(st);
			return -1;
		}
	}
	return 0;
}

void nic_restore(struct nic_state *st)
{
	char id[16];

	if (!st->applied)
		return;
	if (st->rule_id >= 0) {
		snprintf(id, sizeof(id), "%d", st->rule_id);
		ethtool_run(NULL, 0, (const char *const[]){ "ethtool", "-N", st->ifname, "delete", id, NULL });
	}
	if (st->rss_changed)
		ethtool_run(NULL, 0, (const char *const[]){ "ethtool", "-X", st->ifname, "default", NULL });
	if (st->old_split[0])
		ethtool_run(NULL, 0, (const char *const[]){ "ethtool", "-G", st->ifname, "tcp-data-split", st->old_split,
							    st->old_hds[0] ? "hds-thresh" : NULL, st->old_hds, NULL });
	st->applied = false;
}
