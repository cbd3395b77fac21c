#!/usr/bin/env bash
# Install the system (Debian) packages pocketstack's tests and tools need.
#
# Idempotent: packages whose command is already on PATH are skipped, and apt is not
# touched at all when nothing is missing. Needs root (CI and the dev machines run as
# root); as any other user it only reports what is missing and exits 0, so callers
# can run it unconditionally.
#
#   qemu-img  (qemu-utils)  the Image service's format-inspector tests build real
#                           qcow2/vmdk/vhd/vhdx/vdi images with it
#   xorriso   (xorriso)     builds ISO 9660 images for the same tests
set -euo pipefail

# command -> Debian package
declare -A PACKAGES=(
    [qemu-img]=qemu-utils
    [xorriso]=xorriso
)

missing=()
for cmd in "${!PACKAGES[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${PACKAGES[$cmd]}")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-system-deps: nothing to do"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: not root, skipping; missing packages: ${missing[*]}" >&2
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: no apt-get here; please install: ${missing[*]}" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-system-deps: installing ${missing[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-system-deps: done"
