#!/usr/bin/env bash
# What a fresh Debian/Ubuntu or Arch machine needs to run virtdev from this
# checkout: the host packages (installed when run as root, named otherwise)
# and Deno (from the distribution, or from npm into .tools/).
#
#   source scripts/host_setup.sh; host_setup demo|test
#
# Puts deno on PATH. Returns 69 with what to install when it cannot.

_setup_say() { echo "setup: $*" >&2; }

# Debian package names; the Arch ones are mapped below.
_setup_packages() {
  # lz4, xz-utils, bzip2 (and gzip, zstd): the base's kernel and initramfs are unpacked with them at install.
  local common=(qemu-utils qemu-system-x86 ovmf openssh-client rsync procps passt e2fsprogs util-linux lz4 xz-utils bzip2)
  # The test-guest builder (the demo's base when no cloud image is given).
  local guest=(debootstrap mtools dosfstools fdisk systemd-boot-efi zstd)
  case $1 in
    demo) echo "${common[@]}" "${guest[@]}" curl ;;
    test) echo "${common[@]}" "${guest[@]}" strace iproute2 python3 sudo shellcheck makepkg pacman-package-manager \
      systemd-container ;;
  esac
}

_setup_arch_name() {
  case $1 in
    qemu-utils) echo qemu-img ;;
    ovmf) echo edk2-ovmf ;;
    openssh-client) echo openssh ;;
    procps) echo procps-ng ;;
    xz-utils) echo xz ;;
    python3) echo python ;;
    fdisk) echo util-linux ;;
    systemd-boot-efi | systemd-container) echo systemd ;;
    makepkg | pacman-package-manager) echo pacman ;;
    debootstrap) echo "debootstrap debian-archive-keyring" ;;
    *) echo "$1" ;;
  esac
}

_setup_distro() {
  if command -v apt-get >/dev/null && command -v dpkg >/dev/null; then echo debian
  elif command -v pacman >/dev/null && [[ -f /etc/arch-release ]]; then echo arch
  else echo unknown
  fi
}

# Installs (as root) or names (otherwise) the packages of profile $1.
_setup_host_packages() {
  local distro missing=() package
  distro=$(_setup_distro)
  case $distro in
    debian)
      for package in $(_setup_packages "$1"); do dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package"); done
      ((${#missing[@]})) || return 0
      if ((EUID != 0)); then
        _setup_say "missing packages; install them with: sudo apt-get install ${missing[*]}"
        return 69
      fi
      _setup_say "installing ${missing[*]}"
      if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
        _setup_say "apt-get failed"
        return 69
      fi
      ;;
    arch)
      local debian_name
      for debian_name in $(_setup_packages "$1"); do
        for package in $(_setup_arch_name "$debian_name"); do
          pacman -Q "$package" >/dev/null 2>&1 || missing+=("$package")
        done
      done
      ((${#missing[@]})) || return 0
      mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
      if ((EUID != 0)); then
        _setup_say "missing packages; install them with: sudo pacman -S --needed ${missing[*]}"
        return 69
      fi
      _setup_say "installing ${missing[*]}"
      pacman -S --needed --noconfirm "${missing[@]}" >/dev/null || { _setup_say "pacman failed"; return 69; }
      ;;
    *)
      _setup_say "neither apt nor pacman here: install QEMU, OVMF, OpenSSH, rsync, procps and passt yourself"
      ;;
  esac
}

# Deno 2: the one on PATH, Arch's, or npm's into .tools/ (where only npm is reachable).
_setup_deno() {
  local repo tools
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  tools="$repo/.tools/node_modules/@deno/linux-x64-glibc"
  if [[ -x $tools/deno ]]; then PATH="$tools:$PATH"; export PATH; fi
  if command -v deno >/dev/null && [[ $(deno --version 2>/dev/null | head -1) == "deno 2."* ]]; then return 0; fi
  if [[ $(_setup_distro) == arch && $EUID == 0 ]]; then
    _setup_say "installing deno (pacman)"
    pacman -S --needed --noconfirm deno >/dev/null && return 0
  fi
  if ! command -v npm >/dev/null; then
    if [[ $(_setup_distro) == debian && $EUID == 0 ]]; then
      _setup_say "installing npm (to fetch Deno)"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null || { _setup_say "apt-get failed"; return 69; }
    else
      _setup_say "Deno 2 is needed: 'sudo pacman -S deno' (Arch), or install npm and run this again"
      return 69
    fi
  fi
  _setup_say "installing deno 2.9.6 into .tools/ (npm)"
  npm install --prefix "$repo/.tools" --no-audit --no-fund deno@2.9.6 >/dev/null || { _setup_say "npm install failed"; return 69; }
  PATH="$tools:$PATH"
  export PATH
}

host_setup() {
  _setup_host_packages "$1" || return
  _setup_deno || return
  deno --version | head -1 >&2
}
