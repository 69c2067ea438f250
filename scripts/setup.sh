#!/usr/bin/env bash
# Set up everything zcrxprof needs on a Debian machine, as root. Idempotent: each step checks
# whether it is done and skips; a second run takes seconds.
#   scripts/setup.sh            base set-up (packages, liburing sysroot, venv, BCC link, loadgen)
#   scripts/setup.sh --lab      also prepare the kernel lab (guest kernel, modules, headers)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
source scripts/versions.env
lab=0
for a in "$@"; do case "$a" in --lab) lab=1 ;; *) echo "setup.sh: unknown option $a" >&2; exit 2 ;; esac; done
say() { printf 'setup: %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { echo "setup.sh: run as root (apt-get, BPF, network namespaces need it)" >&2; exit 1; }

# 1. Debian packages (bookworm). python3-bpfcc is BCC; PyPI's 'bcc' is an unrelated package.
#    strace: a test counts the load generator's io_uring waits; stress-ng: the CPU-hog neighbour
#    the suite is checked beside (`stress-ng --cpu 1 & make test`). openssh-client drives
#    `record --peer`; openssh-server is the remote-sender tests' peers (started by the tests only).
pkgs=(build-essential pkg-config iproute2 procps kmod xz-utils zstd netcat-openbsd
      python3 python3-venv python3-bpfcc libbpfcc bpftool linux-perf iperf3
      qemu-system-x86 busybox-static chromium ethtool strace stress-ng openssh-client openssh-server)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. liburing >= 2.15 and matching uapi headers from Debian's newer suites, extracted (never
#    installed) under .build/sysroot; the load generator links liburing statically from there.
sysroot=.build/sysroot
stamp=$sysroot/.versions
if [ ! -s "$stamp" ] || ! grep -q "^liburing-dev=" "$stamp"; then
  say "fetching liburing >= $LIBURING_MIN and linux-libc-dev >= $LINUX_LIBC_DEV_MIN into $sysroot"
  rm -rf "$sysroot"; mkdir -p "$sysroot"
  python3 scripts/debarchive.py extract liburing-dev liburing2 --min "$LIBURING_MIN" --dest "$sysroot" >"$stamp.tmp"
  python3 scripts/debarchive.py extract linux-libc-dev --min "$LINUX_LIBC_DEV_MIN" --dest "$sysroot" >>"$stamp.tmp"
  mv "$stamp.tmp" "$stamp"
fi

# 3. The project's venv (Debian's python3), installed editable; redone when pyproject.toml changes.
venv=.venv
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x $venv/bin/python ] || [ "$(cat $venv/.pyproject.sha 2>/dev/null)" != "$want" ]; then
  say "creating $venv and installing zcrxprof with its dependencies"
  [ -x $venv/bin/python ] || /usr/bin/python3 -m venv $venv
  $venv/bin/pip install -q --upgrade pip >/dev/null
  $venv/bin/pip install -q -e '.[dev]'
  echo "$want" >$venv/.pyproject.sha
fi

# 4. BCC inside the venv: a directory holding only a link to Debian's bcc package, named by a .pth
#    file, so nothing else of Debian's dist-packages leaks in.
site=$($venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -e .build/bcc-link/bcc ]; then
  mkdir -p .build/bcc-link
  ln -sfn /usr/lib/python3/dist-packages/bcc .build/bcc-link/bcc
fi
pth="$top/.build/bcc-link"
[ "$(cat "$site/zcrxprof-bcc.pth" 2>/dev/null)" = "$pth" ] || echo "$pth" >"$site/zcrxprof-bcc.pth"

# 4b. (probes) A kernel header tree for BCC, which needs one even for tracepoint programs: on a host
#     without /lib/modules/$(uname -r)/build, bookworm's linux-headers-amd64 with its -common and
#     linux-kbuild packages, downloaded into the cache and joined under .build/kheaders (idempotent).
#     The lab kernel's tree is made by `zcrxprof lab prepare` (step 6).
if [ ! -f "/lib/modules/$(uname -r)/build/include/linux/kconfig.h" ]; then
  $venv/bin/python scripts/host_headers.py >/dev/null
fi

# 5. The load generator (make decides what is stale).
make -s -C loadgen

# 6. The kernel lab, when asked for (make test / make run need it).
if [ $lab = 1 ]; then
  $venv/bin/python -m zcrxprof lab prepare --quiet-if-ready
fi
