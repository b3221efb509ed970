/**
 * This build's identity (the inode, size and mtime of this compiled file): what keys a cache whose answer
 * another build might compute differently — the table proof (another compile for the same model), the
 * firewall's payload digest (another parse for the same text). Any rebuild or upgrade changes it.
 */
import { statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

let build: string | undefined;

export function buildId(): string {
  if (build === undefined) {
    try {
      const st = statSync(fileURLToPath(import.meta.url));
      build = `${st.ino}:${st.size}:${Math.floor(st.mtimeMs)}`;
    } catch {
      build = 'unknown';
    }
  }
  return build;
}
