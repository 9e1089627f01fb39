#!/bin/sh
# Installs what dmvpnd's build, tests and lab need, and unpacks the Debian
# kernel used by the VM lab into $CACHE (ignored by git). Idempotent: a second
# run checks and returns in seconds.
set -eu

CACHE=${CACHE:-$(cd "$(dirname "$0")/../.." && pwd)/.cache}
PKGS="qemu-system-x86 qemu-utils busybox-static cpio kmod strongswan-charon strongswan-swanctl \
libcharon-extra-plugins libstrongswan-standard-plugins frr gobgpd tshark nftables iptables iproute2 iputils-ping tcpdump xz-utils \
openssh-server ansible-core ansible-mitogen ansible-lint yamllint python3 procps psmisc lintian prometheus"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii'; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	echo "deps: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
	apt-get update -q >/dev/null
	# Services from these packages must not start on the host.
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
	apt-get install -y -q --no-install-recommends $missing >/dev/null
	rm -f /usr/sbin/policy-rc.d
fi

# The lab kernel: the image package behind linux-image-amd64, unpacked, not installed.
if [ ! -f "$CACHE/kernel/ready" ]; then
	mkdir -p "$CACHE/kernel"
	cd "$CACHE/kernel"
	pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
	if [ -z "$pkg" ]; then apt-get update -q >/dev/null; pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}'); fi
	echo "deps: fetching $pkg"
	rm -rf root ./*.deb
	apt-get download -q "$pkg" >/dev/null
	dpkg -x ./*.deb root
	ver=$(ls root/lib/modules | head -n1)
	depmod -b root "$ver"
	echo "$ver" >version
	ln -sf "root/boot/vmlinuz-$ver" vmlinuz
	rm -f ./*.deb
	touch ready
fi
echo "deps: ok (kernel $(cat "$CACHE/kernel/version"))"
