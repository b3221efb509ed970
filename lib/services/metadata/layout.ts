/**
 * On-disk layout shared by the router module (writer) and the metadata daemon (reader):
 *
 *   <stateDir>/vmdata/.key                      HMAC key naming blobs (0600; never printed)
 *   <stateDir>/vmdata/<ns>/listen.json          addresses the daemon listens on in namespace <ns>
 *   <stateDir>/vmdata/<ns>/blobs/<id>           content store (user data, keys, passwords …), 0600
 *   <stateDir>/vmdata/<ns>/vms/<ip>/user-data   served as /latest/user-data      (hard link to a blob)
 *   <stateDir>/vmdata/<ns>/vms/<ip>/meta-data/F served as /latest/meta-data/F    (hard link to a blob)
 *   <stateDir>/vmdata/<ns>/vms/<ip>/password-N  pending password, serial N        (hard link to a blob)
 *   <stateDir>/vmdata/<ns>/vms/<ip>/delivered-N the guest acknowledged password N (empty marker)
 *   <stateDir>/vmdata/<ns>/vms/<ip>/mac         the NIC MAC recorded for the address: only a requester the
 *                                               router sees with this MAC is answered (absent: no MAC known)
 *   <stateDir>/vmdata/<ns>/vms/<ip>/openstack/meta_data.json, network_data.json
 *                                               the OpenStack layout's generated documents (router module)
 *   <stateDir>/vmdata/<ns>/vms/<ip>/ec2.json    the EC2 meta-data tree, generated (router module)
 *   <stateDir>/vmdata/<ns>/vms/<ip>/os-password what the guest POSTed to /openstack/<version>/password
 *   <stateDir>/vmdata/<ns>/vms/<ip>/owner       "<mac> <uuid>" of the VM the directory was last built for;
 *                                               when it changes, os-password goes (another VM's)
 *   <stateDir>/run/metadata.{sock,pid,lock,log} the daemon's control socket, pid, instance lock, log
 *
 * Directories are 0700 and files 0600: only root reads them. The daemon reads the files at request time,
 * so a data change never needs a signal; only the set of listening addresses does.
 */
import { join } from 'node:path';

/** Namespace names (iproute2-safe, what ModelStore accepts). */
export const NS_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
/** A served file name: no slash, no leading dot, bounded. */
export const FILE_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export const METADATA_PORT = 80;
export const PASSWORD_PORT = 8080;

export const PASSWORD_PREFIX = 'password-';
export const DELIVERED_PREFIX = 'delivered-';
/** In a VM's directory: the MAC its data belong to (not served: no URL maps to it). */
export const MAC_FILE = 'mac';
/** In a VM's directory: the generated OpenStack documents (below OPENSTACK_DIR) and EC2 tree. */
export const OPENSTACK_DIR = 'openstack';
export const META_DATA_JSON = 'meta_data.json';
export const NETWORK_DATA_JSON = 'network_data.json';
export const EC2_TREE_FILE = 'ec2.json';
/** In a VM's directory: the password the guest POSTed (OpenStack protocol), and whose directory it is. */
export const OS_PASSWORD_FILE = 'os-password';
export const OWNER_FILE = 'owner';

/** The well-known metadata addresses: IPv4 (reached by DNAT to the tier's router address) and IPv6 link-local. */
export const WELL_KNOWN_V4 = '169.254.169.254';
export const WELL_KNOWN_V6 = 'fe80::a9fe:a9fe';
/** Interface names as the kernel takes them (what listen.json may name). */
export const IFNAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,14}$/;
/** MAC addresses as the router module writes them (lower case). */
export const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export const vmdataRoot = (stateDir: string): string => join(stateDir, 'vmdata');
export const keyFile = (stateDir: string): string => join(vmdataRoot(stateDir), '.key');
export const routerDir = (stateDir: string, ns: string): string => join(vmdataRoot(stateDir), ns);
export const listenFile = (stateDir: string, ns: string): string => join(routerDir(stateDir, ns), 'listen.json');
export const blobDir = (stateDir: string, ns: string): string => join(routerDir(stateDir, ns), 'blobs');
export const vmsDir = (stateDir: string, ns: string): string => join(routerDir(stateDir, ns), 'vms');
export const vmDir = (stateDir: string, ns: string, ip: string): string => join(vmsDir(stateDir, ns), ip);

export const runDir = (stateDir: string): string => join(stateDir, 'run');
export const controlSocket = (stateDir: string): string => join(runDir(stateDir), 'metadata.sock');
export const pidFile = (stateDir: string): string => join(runDir(stateDir), 'metadata.pid');
export const lockFile = (stateDir: string): string => join(runDir(stateDir), 'metadata.lock');
export const logFile = (stateDir: string): string => join(runDir(stateDir), 'metadata.log');

/** What listen.json holds. */
export interface ListenSpec {
  namespace: string;
  /** Router addresses (tier extension IPs) to serve on, ports 80 and 8080 each. */
  addresses: string[];
  /**
   * Tier interfaces where the metadata service (port 80) also answers at [fe80::a9fe:a9fe%ifname], with who
   * is behind which MAC there: IPv6 requesters connect from link-local addresses, so they are identified by
   * the MAC the router sees (neighbour entry) and served the data of the VM address recorded with that MAC.
   */
  linkLocal?: LinkLocalSpec[];
}

export interface LinkLocalSpec {
  ifname: string;
  /** Recorded MAC (lower case) → the VM's IPv4 address on this tier (its data directory). */
  macs: Record<string, string>;
}
