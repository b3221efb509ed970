/**
 * The guard of every suite that touches the kernel or the file system's shared places (/run/netns, /etc/netns):
 * it runs only inside the private sandbox of scripts/in-sandbox.mjs (what scripts/run-tests.mjs does). Pure
 * suites do not call it and run anywhere (`node dist/test/…`).
 */
export function requireSandbox(): void {
  if (process.env.NETNS_ROUTER_SANDBOX !== '1') {
    throw new Error('refusing to run: this suite touches the kernel; run it inside scripts/in-sandbox.mjs (node scripts/run-tests.mjs)');
  }
}
