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
#   lvcreate  (lvm2)        the Block Storage `lvm` backend and its loop-device test
#   qemu-system-x86_64 (qemu-system-x86)  runs real instances (the QEMU virt driver)
#   busybox-static, dropbear-bin, syslinux (+ syslinux-common's mbr.bin), mtools,
#   dosfstools (mkfs.vfat): build the pocketstack-tiny test image
#                           (pocketstack/compute/tinyimage.py, docs/compute-qemu.md);
#                           the kernel itself is fetched by the build with apt-get download
#   ssh (openssh-client)    tests/compute/test_real_cloud.py logs into real guests
#   ip (iproute2), dnsmasq (dnsmasq-base), iptables: the `linuxbridge` network backend
#                           (bridges, namespaces, DHCP, NAT; docs/network-dataplane.md); its
#                           tests use busybox's udhcpc as the instances' DHCP client
#   ebtables (ebtables)     its ARP / MAC anti-spoofing (security groups use iptables/ip6tables,
#                           which come with iptables; docs/network-dataplane.md)
#   novnc (its files under /usr/share/novnc): the browser VNC client pocketstack serves
#                           at /compute/console/ (`openstack console url show --novnc`)
set -euo pipefail

# command -> Debian package
declare -A PACKAGES=(
    [qemu-img]=qemu-utils
    [xorriso]=xorriso
    [lvcreate]=lvm2
    [qemu-system-x86_64]=qemu-system-x86
    [busybox]=busybox-static
    [dropbear]=dropbear-bin
    [syslinux]=syslinux
    [mcopy]=mtools
    [mkfs.vfat]=dosfstools
    [ip]=iproute2
    [dnsmasq]=dnsmasq-base
    [iptables]=iptables
    [ebtables]=ebtables
    [ssh]=openssh-client
)

missing=()
for cmd in "${!PACKAGES[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 \
        || missing+=("${PACKAGES[$cmd]}")
done
[ -e /usr/lib/syslinux/mbr/mbr.bin ] || missing+=(syslinux-common)
[ -e /usr/share/novnc/vnc_lite.html ] || missing+=(novnc)

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
