#!/bin/sh
# PID 1 of the qemu test VM (busybox sh from the initramfs built by build-initramfs.mjs).
# Mounts the host's root (virtio-9p, read-only) on /newroot, gives it writable tmpfs where programs
# expect to write, then runs the job script the host prepared, chrooted, with stdout on ttyS1 and
# stderr on ttyS2. Reports "VMEXIT <nonce> <code>" on ttyS0 (the console) and powers off.
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
printf '#!/bin/sh\nexec chroot /newroot /sbin/modprobe "$@"\n' >/bin/nrvm-modprobe
chmod 755 /bin/nrvm-modprobe
echo /bin/nrvm-modprobe >/proc/sys/kernel/modprobe

mkdir -p /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose hostroot /newroot \
  || fail "mount of the host root over 9p"
[ -n "$JOB" ] && [ -f "/newroot$JOB" ] || fail "job script '$JOB' not visible in the guest"
cp "/newroot$JOB" /job.sh || fail "copy of the job script"

for d in tmp run var/lib var/log var/tmp; do
  mount -t tmpfs -o mode=1777 "nrvm-$(echo $d | tr / -)" "/newroot/$d" || fail "tmpfs on /$d"
done
chmod 755 /newroot/run
mount -t proc proc /newroot/proc || fail "proc"
mount -t sysfs sysfs /newroot/sys || fail "sysfs"
mount -t devtmpfs devtmpfs /newroot/dev || fail "devtmpfs"
mkdir -p /newroot/dev/pts /newroot/dev/shm /newroot/run/netns /newroot/run/nrvm /newroot/run/lock
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
