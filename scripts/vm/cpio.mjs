// Writer for the cpio "newc" format (the one the kernel unpacks as an initramfs), so that building
// the test VM's initramfs needs neither the cpio tool nor root (device nodes are just header fields).
// Layout per entry: 110-byte ASCII header "070701" + 13 fields of 8 hex digits, then the NUL-ended
// name padded to a multiple of 4, then the data padded to a multiple of 4. Ends with "TRAILER!!!".

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

export class CpioWriter {
  #chunks = [];
  #ino = 1;

  /** @param {string} name path inside the archive, without leading slash */
  dir(name, mode = 0o755) {
    this.#entry(name, S_IFDIR | mode, Buffer.alloc(0), 2);
  }

  /** @param {Buffer|string} data */
  file(name, data, mode = 0o644) {
    this.#entry(name, S_IFREG | mode, Buffer.isBuffer(data) ? data : Buffer.from(data), 1);
  }

  symlink(name, target) {
    this.#entry(name, S_IFLNK | 0o777, Buffer.from(target), 1);
  }

  charDevice(name, major, minor, mode = 0o600) {
    this.#entry(name, S_IFCHR | mode, Buffer.alloc(0), 1, major, minor);
  }

  /** @returns {Buffer} the whole archive, trailer included */
  finish() {
    this.#entry('TRAILER!!!', 0, Buffer.alloc(0), 1, 0, 0, 0);
    return Buffer.concat(this.#chunks);
  }

  #entry(name, mode, data, nlink, rdevMajor = 0, rdevMinor = 0, ino = this.#ino++) {
    const nameBuf = Buffer.from(`${name}\0`);
    const fields = [
      ino, mode, 0 /* uid */, 0 /* gid */, nlink, 0 /* mtime: fixed, so builds are reproducible */,
      data.length, 0, 0 /* dev major/minor */, rdevMajor, rdevMinor, nameBuf.length, 0 /* check */,
    ];
    const header = '070701' + fields.map((v) => v.toString(16).padStart(8, '0')).join('');
    this.#chunks.push(Buffer.from(header, 'ascii'), nameBuf, pad(110 + nameBuf.length));
    this.#chunks.push(data, pad(data.length));
  }
}

function pad(len) {
  return Buffer.alloc((4 - (len % 4)) % 4);
}
