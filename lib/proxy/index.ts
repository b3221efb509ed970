/** Management-side proxy: host choice (ensure-network-device) and SSH forwarding of router commands. */
export { posixCksum, preferredHostIndex } from './cksum.js';
export {
  ProxyError, ProxyConfigError, SshError, RemoteCommandError, proxyExitCodeOf, describeProxyError,
  PROXY_EXIT_OK, PROXY_EXIT_USAGE, PROXY_EXIT_SSH, PROXY_EXIT_REMOTE, type ProxyErrorCode,
} from './errors.js';
export { splitHostList, isValidHost, hostListOf, credentialsOf, forwardHostOf, probeOrder, normalizePrivateKey, type SshAuth, type SshCredentials } from './hosts.js';
export { parseProxyInvocation, ENSURE_COMMAND, PROXY_ENV, proxyHelp, type ProxyInvocation } from './invocation.js';
export { uploadDocument, withoutSshSecrets, SSH_SECRET_DETAILS } from './payload.js';
export { SshSession, describeTarget, type SshSettings, type SshTarget } from './ssh.js';
export { runProxy, REMOTE_MKTEMP, type ProxyDeps } from './run.js';
export { installProxy, parseInstallProxy, proxyShimText, proxyPathFor, PROXY_SHIM_MARKER, type InstallProxyRequest } from './install-proxy.js';
