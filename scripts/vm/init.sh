#!/bin/sh
# PID 1 of the qemu test VM (busybox sh from the initramfs built by build-initramfs.mjs).
# Mounts the host's root (virtio-9p, read-only) on /lower and makes the guest's root an overlay of it with
# a tmpfs on top: every host path stays visible (the checkout, wherever it lives: /tmp, /run, /var/tmp, …)
# and everything the guest writes lands in the guest's RAM, never on the host. Then runs the job script
# the host prepared, chrooted, with stdout on ttyS1 and stderr on ttyS2. Reports "VMEXIT <nonce> <code>"
# on ttyS0 (the console) and powers off.
# Kernel command line: nrvm.job=<host path of the job script> nrvm.nonce=<random marker>.
export PATH=/bin  # busybox applet links, made at build time

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

JOB= NONCE=
for w in $(cat /proc/cmdline); do
  case "$w" in
    nrvm.job=*) JOB="${w#nrvm.job=}" ;;
    nrvm.nonce=*) NONCE="${w#nrvm.nonce=}" ;;
  esac
done

finish() {
  echo "VMEXIT $NONCE $1" >/dev/ttyS0
  poweroff -f
  sleep 60
}
fail() {
  echo "NRVM-INIT-ERROR $*" >/dev/ttyS0
  finish 254
}

for m in $(cat /modules/order); do
  insmod "/modules/$m" || fail "insmod $m"
done

# Kernel-requested module loads (e.g. rtnl-link-veth, nft expressions) run /proc/sys/kernel/modprobe
# from this initramfs root (kernel threads keep it; only our chrooted children see /newroot), so point
# it at a helper that runs the host root's modprobe against the host root's /lib/modules.
printf '#!/bin/sh\nexec chroot /lower /sbin/modprobe "$@"\n' >/bin/nrvm-modprobe
chmod 755 /bin/nrvm-modprobe
echo /bin/nrvm-modprobe >/proc/sys/kernel/modprobe

mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose hostroot /lower \
  || fail "mount of the host root over 9p"
[ -n "$JOB" ] && [ -f "/lower$JOB" ] || fail "job script '$JOB' not visible in the guest"
cp "/lower$JOB" /job.sh || fail "copy of the job script"
# the modprobe helper runs chrooted in /lower: give it the guest's own /proc, /sys and /dev there (through
# 9p it would see the host's); the overlay below does not show these submounts
mount -t proc proc /lower/proc || fail "proc for modprobe"
mount -t sysfs sysfs /lower/sys || fail "sysfs for modprobe"
mount -t devtmpfs devtmpfs /lower/dev || fail "devtmpfs for modprobe"

mount -t tmpfs -o mode=755 nrvm-rw /rw || fail "tmpfs for the overlay"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work nrvm-root /newroot \
  || fail "overlay root (host root read-only below, tmpfs above)"
mount -t proc proc /newroot/proc || fail "proc"
mount -t sysfs sysfs /newroot/sys || fail "sysfs"
mount -t devtmpfs devtmpfs /newroot/dev || fail "devtmpfs"
mkdir -p /newroot/dev/pts /newroot/dev/shm /newroot/run/nrvm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs -o mode=1777 shm /newroot/dev/shm
cp /job.sh /newroot/run/nrvm/job.sh

hostname nrvm
ip link set lo up || fail "loopback up"

# Raw mode: no \n → \r\n translation, no echo; the host gets the bytes as written.
stty -F /dev/ttyS1 raw -echo
stty -F /dev/ttyS2 raw -echo
chroot /newroot /bin/sh /run/nrvm/job.sh </dev/null >/dev/ttyS1 2>/dev/ttyS2
finish $?
