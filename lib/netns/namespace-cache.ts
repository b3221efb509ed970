/**
 * Long-lived handles kept per named namespace (sockets, nftables contexts) by processes that serve many
 * routers: at most `max` open (least recently used closed beyond it), closed before lib/netns deletes their
 * namespace, and checked against the namespace's identity before each use — another process may have deleted
 * the namespace and made a new one of the same name, and a handle of the old one would act on the old one.
 */
import { LruMap } from '../util/lru-map.js';
import { netnsIdentity, onBeforeNetnsDelete } from './namespaces.js';

export class NamespaceCache<V> {
  private readonly handles: LruMap<string, { value: V; identity: string | undefined }>;

  constructor(max: number, private readonly close: (value: V) => void) {
    this.handles = new LruMap(max, (e) => close(e.value));
    onBeforeNetnsDelete((name) => this.drop(name));
  }

  /**
   * The handle of `netns` (undefined: the caller's namespace); `open` makes one when there is none, when the
   * name now stands for another namespace, or when `usable` says the kept one is not.
   */
  get(netns: string | undefined, open: () => V, usable: (value: V) => boolean = () => true): V {
    const key = netns ?? '';
    const identity = netns !== undefined ? netnsIdentity(netns) : '';
    const hit = this.handles.get(key);
    if (hit && hit.identity === identity && usable(hit.value)) return hit.value;
    if (hit) this.drop(key);
    const value = open();
    this.handles.set(key, { value, identity });
    return value;
  }

  /** Close and forget every handle. */
  clear(): void {
    for (const key of this.handles.keys()) this.drop(key === '' ? undefined : key);
  }

  /** Close and forget the handle of `netns` (undefined: the caller's namespace). */
  drop(netns: string | undefined): void {
    const e = this.handles.delete(netns ?? '');
    if (e) this.close(e.value);
  }
}
