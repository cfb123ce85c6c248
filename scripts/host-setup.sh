#!/usr/bin/env bash
# Installs the host tools azl-vmtest needs on a Debian/Ubuntu host.
# As root it installs what is missing with apt-get; otherwise it prints the exact command to run.
# Usage: scripts/host-setup.sh [--check]   (--check: only report, exit 1 if something is missing)
set -euo pipefail

# command-or-file -> Debian package that provides it
declare -A NEED=(
  [qemu-system-x86_64]=qemu-system-x86
  [qemu-system-aarch64]=qemu-system-arm
  [qemu-img]=qemu-utils
  [/usr/share/OVMF/OVMF_CODE_4M.fd]=ovmf
  [/usr/share/OVMF/OVMF_VARS_4M.ms.fd]=ovmf
  [/usr/share/AAVMF/AAVMF_CODE.fd]=qemu-efi-aarch64
  [/usr/share/AAVMF/AAVMF_VARS.ms.fd]=qemu-efi-aarch64
  [mmdebstrap]=mmdebstrap
  [mkfs.ext4]=e2fsprogs
  [mkfs.vfat]=dosfstools
  [mcopy]=mtools
  [sfdisk]=fdisk
  [/usr/bin/qemu-aarch64-static]=qemu-user-static
  [update-binfmts]=binfmt-support
  [arch-test]=arch-test
  [/usr/share/mmdebstrap/hooks/eatmydata/extract.sh]=mmdebstrap
  [eatmydata]=eatmydata
  [flock]=util-linux
  [isoinfo]=genisoimage
  [swtpm]=swtpm
  # The package lifecycle suite's RPM repositories (fixtures/packages).
  [createrepo_c]=createrepo-c
  # The FIPS stand-in builds OpenSSL's FIPS provider from Debian's openssl source.
  [dpkg-source]=dpkg-dev
  [gcc]=gcc
  [/usr/include/stdio.h]=libc6-dev
  [make]=make
  [perl]=perl
)

if ! command -v go >/dev/null 2>&1; then
  echo "host-setup: Go not found on PATH: install Go ${GO_MIN:-1.26} or newer, or add /usr/local/go/bin to PATH" >&2
  exit 1
fi

missing=()
for what in "${!NEED[@]}"; do
  if [[ $what == /* ]]; then
    [[ -e $what ]] && continue
  else
    command -v "$what" >/dev/null 2>&1 && continue
    # sbin tools are not on a normal user's PATH
    [[ -x /usr/sbin/$what || -x /sbin/$what ]] && continue
  fi
  missing+=("${NEED[$what]}")
done
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d')

if ((${#missing[@]})); then
  cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
  if [[ ${1:-} == --check ]]; then
    echo "host-setup: missing packages: ${missing[*]}" >&2
    echo "host-setup: run as root: $cmd" >&2
    exit 1
  fi
  if [[ $(id -u) -ne 0 ]]; then
    echo "host-setup: missing packages: ${missing[*]}" >&2
    echo "host-setup: run as root: $cmd" >&2
    exit 1
  fi
  echo "host-setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Building the arm64 root filesystem on an x86-64 host runs arm64 maintainer scripts under
# qemu-user: binfmt_misc must be mounted and the qemu-aarch64 handler enabled.
if [[ $(uname -m) == x86_64 && ${1:-} != --check ]]; then
  if [[ ! -e /proc/sys/fs/binfmt_misc/status ]]; then
    if [[ $(id -u) -eq 0 ]]; then
      mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || echo "host-setup: cannot mount binfmt_misc; aarch64 images cannot be built" >&2
    else
      echo "host-setup: binfmt_misc not mounted; run as root: mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc" >&2
    fi
  fi
  if [[ -e /proc/sys/fs/binfmt_misc/status && ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
    if [[ $(id -u) -eq 0 ]]; then
      update-binfmts --enable qemu-aarch64 || echo "host-setup: could not enable qemu-aarch64 binfmt; aarch64 images cannot be built" >&2
    else
      echo "host-setup: run as root: update-binfmts --enable qemu-aarch64" >&2
    fi
  fi
fi

# gotestsum runs the suites with a JUnit report.
if ! command -v gotestsum >/dev/null 2>&1 && [[ ! -x $(go env GOPATH 2>/dev/null)/bin/gotestsum ]]; then
  if [[ ${1:-} == --check ]]; then
    echo "host-setup: gotestsum missing: go install gotest.tools/gotestsum@v1.13.0" >&2
    exit 1
  fi
  echo "host-setup: installing gotestsum"
  go install gotest.tools/gotestsum@v1.13.0
fi
echo "host-setup: host tools present"
