// Typed errors of the qemu test lane: `code` says what went wrong, `message` gives the detail.
export class VmError extends Error {
  /** @param {'NO_KERNEL'|'NO_MODULE'|'NO_BUSYBOX'|'NO_QEMU'|'BAD_MODULE'|'BOOT_FAILED'|'TIMEOUT'|'USAGE'} code */
  constructor(code, message) {
    super(message);
    this.name = 'VmError';
    this.code = code;
  }
}
