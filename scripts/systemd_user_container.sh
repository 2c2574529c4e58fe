#!/usr/bin/env bash
# Runs a command as an ordinary user under a real systemd user manager, in a
# systemd-nspawn container: for hosts whose PID 1 is not systemd (these CI
# machines), so that virtdev's systemd supervisor meets the real
# systemd-run, systemctl, journalctl and loginctl. Run as root.
#
#   scripts/systemd_user_container.sh [--bind-ro HOST:CONTAINER]... [--copy-in HOST:CONTAINER]... -- COMMAND...
#
# --copy-in copies a host directory into the container, owned by the user
# (a reflink where the file system allows): for files the user must read
# that only root may read on the host.
#
# The command runs as user 'tester' (lingering, so its user manager runs),
# with XDG_RUNTIME_DIR set, in /virtdev (this checkout, bound read-write, or
# a copy where only root may enter the checkout),
# with the checkout's Deno on PATH. The root file system (Debian bookworm,
# systemd and virtdev's tools) is built once in $VIRTDEV_NSPAWN_ROOT
# (default /var/tmp/virtdev-nspawn) and reused. Exit: the command's.
set -uo pipefail

root=${VIRTDEV_NSPAWN_ROOT:-/var/tmp/virtdev-nspawn}
repo=$(cd "$(dirname "$0")/.." && pwd)
machine=virtdev-systemd-$$
binds=()
copies=()
while (($#)); do
  case $1 in
    --bind-ro) binds+=("--bind-ro=$2"); shift 2 ;;
    --copy-in) copies+=("$2"); shift 2 ;;
    --) shift; break ;;
    *) echo "systemd_user_container: unknown argument $1" >&2; exit 64 ;;
  esac
done
(($#)) || { echo "usage: $0 [--bind-ro HOST:CONTAINER]... [--copy-in HOST:CONTAINER]... -- COMMAND..." >&2; exit 64; }
((EUID == 0)) || { echo "systemd_user_container: run as root (systemd-nspawn)" >&2; exit 77; }

say() { echo "systemd_user_container: $*" >&2; }
started=$SECONDS

command -v systemd-nspawn >/dev/null || {
  say "installing systemd-container"
  apt-get install -y -qq systemd-container >/dev/null || exit 69
}

# The root file system: systemd with a user manager, and what virtdev drives.
packages=systemd,systemd-sysv,dbus,dbus-user-session,libpam-systemd,qemu-system-x86,qemu-utils,ovmf,openssh-client,rsync,passt,procps,iproute2
stamp="$root/.virtdev-packages"
if [[ ! -x $root/lib/systemd/systemd || $(cat "$stamp" 2>/dev/null) != "$packages" ]]; then
  say "building $root (debootstrap, about two minutes)"
  rm -rf "$root"
  mirror=$(awk '/^URIs:/ && !/security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null)
  if ! debootstrap --variant=minbase --include="$packages" bookworm "$root" ${mirror:+"$mirror"} >/tmp/virtdev-debootstrap.log 2>&1; then
    say "debootstrap failed; see /tmp/virtdev-debootstrap.log"
    tail -5 /tmp/virtdev-debootstrap.log >&2
    exit 1
  fi
  echo virtdev-systemd >"$root/etc/hostname"
  rm -f "$root/etc/machine-id"
  chroot "$root" useradd --create-home --shell /bin/bash tester
  chroot "$root" useradd --create-home --shell /bin/bash nolinger
  echo "$packages" >"$stamp"
fi
for copy in "${copies[@]}"; do
  target="$root/${copy#*:}"
  if ! { rm -rf "$target" && mkdir -p "$(dirname "$target")" &&
    cp -a --reflink=auto "${copy%%:*}" "$target" && chown -R "$(chroot "$root" id -u tester):$(chroot "$root" id -g tester)" "$target"; }; then
    say "cannot copy ${copy%%:*} in"
    exit 1
  fi
done
# The checkout is bound read-write where 'tester' may enter it. One only
# root may enter (a clone in a mktemp directory, mode 0700) is copied in
# instead, without .git and .tools (Deno is bound on its own).
checkout_copy=0
if (($(stat -c %a "$repo" | sed 's/^.*\(.\)$/\1/') & 1)); then
  checkout_bind=(--bind="$repo:/virtdev")
else
  checkout_bind=()
  checkout_copy=1
  if ! { rm -rf "$root/virtdev" && mkdir "$root/virtdev" &&
    rsync -a --exclude=/.git --exclude=/.tools "$repo/" "$root/virtdev/" &&
    chown -R "$(chroot "$root" id -u tester):$(chroot "$root" id -g tester)" "$root/virtdev"; }; then
    say "cannot copy the checkout in"
    exit 1
  fi
fi
say "root file system ready ($((SECONDS - started))s)"

# --register=no and --keep-unit: there is no host systemd, machined or system bus.
deno_dir=$(dirname "$(command -v deno)")
systemd-nspawn -D "$root" --boot --register=no --keep-unit --machine="$machine" \
  "${checkout_bind[@]}" --bind-ro="$deno_dir:/opt/deno" "${binds[@]}" \
  </dev/null >"/tmp/$machine.log" 2>&1 &
nspawn=$!
leader=
for _ in $(seq 200); do
  leader=$(ps --ppid "$nspawn" -o pid= | tr -d ' ')
  [[ -n $leader ]] && break
  sleep 0.05
done
[[ -n $leader ]] || { say "the container did not start"; cat "/tmp/$machine.log" >&2; exit 1; }
inside() { nsenter -t "$leader" -a -- "$@"; }

# shellcheck disable=SC2317 # called by the EXIT trap
stop_container() {
  inside systemctl poweroff >/dev/null 2>&1
  for _ in $(seq 150); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$nspawn" 2>/dev/null
  # nspawn --keep-unit leaves its cgroups at the root of the host's hierarchies.
  for hierarchy in unified systemd; do
    for group in payload supervisor; do
      [[ -d /sys/fs/cgroup/$hierarchy/$group ]] &&
        find "/sys/fs/cgroup/$hierarchy/$group" -depth -type d -exec rmdir {} + 2>/dev/null
    done
  done
  rm -f "/tmp/$machine.log"
  for copy in "${copies[@]}"; do rm -rf "${root:?}/${copy#*:}"; done
  ((checkout_copy)) && rm -rf "${root:?}/virtdev"
}
trap stop_container EXIT

for _ in $(seq 300); do
  state=$(inside systemctl is-system-running 2>/dev/null)
  [[ $state == running || $state == degraded ]] && break
  sleep 0.1
done
say "container booted ($state, $((SECONDS - started))s)"

uid=$(inside id -u tester)
inside loginctl enable-linger tester
for _ in $(seq 100); do inside test -S "/run/user/$uid/bus" && break; sleep 0.1; done
inside runuser -u tester -- env XDG_RUNTIME_DIR="/run/user/$uid" systemctl --user is-system-running --wait >/dev/null
say "user manager of tester running ($((SECONDS - started))s)"

inside runuser -u tester -- env -i HOME=/home/tester USER=tester LOGNAME=tester XDG_RUNTIME_DIR="/run/user/$uid" \
  DBUS_SESSION_BUS_ADDRESS="unix:path=/run/user/$uid/bus" PATH=/opt/deno:/usr/local/bin:/usr/bin:/bin \
  DENO_NO_UPDATE_CHECK=1 NO_COLOR=1 ${VIRTDEV_TEST_ENTRY:+VIRTDEV_TEST_ENTRY=$VIRTDEV_TEST_ENTRY} \
  sh -c 'cd /virtdev && exec "$@"' sh "$@"
status=$?
say "done ($((SECONDS - started))s)"
exit $status
