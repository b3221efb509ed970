/** Netlink and rtnetlink constants (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h …). */

/** Netlink protocol of rtnetlink (links, addresses, routes, neighbours, rules). */
export const NETLINK_ROUTE = 0;
/** Netlink protocol of netfilter (nftables generation id, ctnetlink); lib/sys knows it for the sockets it inspects. */
export { NETLINK_NETFILTER } from '../sys/libc.js';

// nlmsghdr flags
/** nlmsghdr flag: a request. */
export const NLM_F_REQUEST = 0x01;
/** nlmsghdr flag: part of a multipart reply, ended by NLMSG_DONE. */
export const NLM_F_MULTI = 0x02;
/** nlmsghdr flag: answer with an ACK (an NLMSG_ERROR with errno 0). */
export const NLM_F_ACK = 0x04;
/** nlmsghdr flag: echo this request. */
export const NLM_F_ECHO = 0x08;
/** nlmsghdr flag: the dump was interrupted by a change (its contents may be inconsistent; retry). */
export const NLM_F_DUMP_INTR = 0x10;
/** nlmsghdr flag: the dump was filtered as requested (strict checking). */
export const NLM_F_DUMP_FILTERED = 0x20;
/** GET flag: return the whole table. */
export const NLM_F_ROOT = 0x100;
/** GET flag: return all matching entries. */
export const NLM_F_MATCH = 0x200;
/** GET flags of a dump (NLM_F_ROOT | NLM_F_MATCH). */
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
/** NEW flag: replace an existing object. */
export const NLM_F_REPLACE = 0x100;
/** NEW flag: fail (EEXIST) if the object exists. */
export const NLM_F_EXCL = 0x200;
/** NEW flag: create the object if it does not exist. */
export const NLM_F_CREATE = 0x400;
/** NEW flag: add to the end of the object list. */
export const NLM_F_APPEND = 0x800;
// flags on NLMSG_ERROR acks
/** ACK flag: the echoed request was cut to its header. */
export const NLM_F_CAPPED = 0x100;
/** ACK flag: extended-ACK attributes follow. */
export const NLM_F_ACK_TLVS = 0x200;

// control message types
/** Control message: nothing (ignored). */
export const NLMSG_NOOP = 1;
/** Control message: an error or an ACK (errno 0). */
export const NLMSG_ERROR = 2;
/** Control message: end of a multipart reply. */
export const NLMSG_DONE = 3;
/** Control message: data lost. */
export const NLMSG_OVERRUN = 4;

// extended ACK TLVs (enum nlmsgerr_attrs)
/** Extended-ACK attribute: the kernel's error text. */
export const NLMSGERR_ATTR_MSG = 1;
/** Extended-ACK attribute: byte offset of the offending attribute in the request. */
export const NLMSGERR_ATTR_OFFS = 2;
/** Extended-ACK attribute: an arbitrary cookie. */
export const NLMSGERR_ATTR_COOKIE = 3;
/** Extended-ACK attribute: the policy of the rejected attribute. */
export const NLMSGERR_ATTR_POLICY = 4;
/** Extended-ACK attribute: type of a missing required attribute. */
export const NLMSGERR_ATTR_MISS_TYPE = 5;
/** Extended-ACK attribute: offset of the nest the missing attribute belongs in. */
export const NLMSGERR_ATTR_MISS_NEST = 6;

// SOL_NETLINK socket options
/** setsockopt level of netlink socket options. */
export const SOL_NETLINK = 270;
/** Socket option: join a multicast group. */
export const NETLINK_ADD_MEMBERSHIP = 1;
/** rtnetlink multicast group of link announcements (RTM_NEWLINK / RTM_DELLINK). */
export const RTNLGRP_LINK = 1;
/** Socket option: leave a multicast group. */
export const NETLINK_DROP_MEMBERSHIP = 2;
/** Socket option: ACKs carry only the request's header, not the whole request. */
export const NETLINK_CAP_ACK = 10;
/** Socket option: errors carry extended-ACK attributes (the kernel's text). */
export const NETLINK_EXT_ACK = 11;
/** Socket option: strict checking of dump requests (filters honoured, bad headers refused). */
export const NETLINK_GET_STRICT_CHK = 12;

/** Attribute type flag: the attribute holds nested attributes. */
export const NLA_F_NESTED = 0x8000;
/** Attribute type flag: the payload is in network byte order. */
export const NLA_F_NET_BYTEORDER = 0x4000;
/** Mask of an attribute type without its flags. */
export const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

// rtnetlink message types
/** rtnetlink: create or change a link. */
export const RTM_NEWLINK = 16;
/** rtnetlink: delete a link. */
export const RTM_DELLINK = 17;
/** rtnetlink: get or dump links. */
export const RTM_GETLINK = 18;
/** rtnetlink: change a link. */
export const RTM_SETLINK = 19;
/** rtnetlink: add an address. */
export const RTM_NEWADDR = 20;
/** rtnetlink: delete an address. */
export const RTM_DELADDR = 21;
/** rtnetlink: dump addresses. */
export const RTM_GETADDR = 22;
/** rtnetlink: add or replace a route. */
export const RTM_NEWROUTE = 24;
/** rtnetlink: delete a route. */
export const RTM_DELROUTE = 25;
/** rtnetlink: get or dump routes. */
export const RTM_GETROUTE = 26;
/** rtnetlink: add or replace a neighbour entry. */
export const RTM_NEWNEIGH = 28;
/** rtnetlink: delete a neighbour entry. */
export const RTM_DELNEIGH = 29;
/** rtnetlink: get or dump neighbour entries. */
export const RTM_GETNEIGH = 30;
/** rtnetlink: add a policy routing rule. */
export const RTM_NEWRULE = 32;
/** rtnetlink: delete a policy routing rule. */
export const RTM_DELRULE = 33;
/** rtnetlink: dump policy routing rules. */
export const RTM_GETRULE = 34;
/** rtnetlink: assign a namespace id. */
export const RTM_NEWNSID = 88;
/** rtnetlink: get the id of a namespace. */
export const RTM_GETNSID = 90;
/** Namespace-id attribute: the id. */
export const NETNSA_NSID = 1;
/** Namespace-id attribute: a namespace file descriptor. */
export const NETNSA_FD = 3;

/** Human name of an rtnetlink message type, for error messages. */
export const RTM_NAMES: Record<number, string> = {
  16: 'RTM_NEWLINK', 17: 'RTM_DELLINK', 18: 'RTM_GETLINK', 19: 'RTM_SETLINK',
  20: 'RTM_NEWADDR', 21: 'RTM_DELADDR', 22: 'RTM_GETADDR',
  24: 'RTM_NEWROUTE', 25: 'RTM_DELROUTE', 26: 'RTM_GETROUTE',
  28: 'RTM_NEWNEIGH', 29: 'RTM_DELNEIGH', 30: 'RTM_GETNEIGH',
  32: 'RTM_NEWRULE', 33: 'RTM_DELRULE', 34: 'RTM_GETRULE', 88: 'RTM_NEWNSID', 90: 'RTM_GETNSID',
};
