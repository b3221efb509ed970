#!/bin/bash
# spawn-router.sh — the spawn-per-operation baseline of the benchmarks (bench/router.ts, bench/networks.ts).
#
# It performs, command by command, the kernel operations that shell-script routers such as CloudStack's
# Network-Namespace wrapper perform (see docs/contract.md §1.6): one `ip` or `iptables` process per object,
# `ip netns exec` for every namespace-side step, check-then-add (`-C || -A`, `show || add`) for
# idempotence, per-network state as small files, a `flock` per network, and an `iptables-save`
# snapshot after every rule change. It is deliberately LEAN wherever the upstream script is slow for
# reasons unrelated to the kernel, so that the comparison is about spawning, not about sloppy shell:
#   - payload keys are parsed by bash itself (upstream starts one python3 per key: ~40 per command);
#   - files are read and text is matched with bash builtins (upstream spawns cat/grep/cut/awk/date);
#   - no arping (not installed here; upstream skips it too when absent), no service stop/pkill.
# Written for the benchmarks; it is not a router to deploy.
#
# Usage (CloudStack's form): spawn-router.sh <command> <payload-file> [<timeout-seconds>]
# Host-side plumbing happens in the caller's network namespace. Environment:
#   SPAWN_ROUTER_STATE_DIR (default /var/lib/cloudstack/spawn-router), SPAWN_ROUTER_LOG (default /dev/null)
# Segments as netns-router names them: N | vlan://N (802.1Q <dev>.N, bridge br<dev>-N, label N),
# vxlan://N (vxlanN, bridge brvx-N, label xN), untagged (bridge br<dev>-u holding <dev>, label u).

set -e

STATE_DIR="${SPAWN_ROUTER_STATE_DIR:-/var/lib/cloudstack/spawn-router}"
LOG_FILE="${SPAWN_ROUTER_LOG:-/dev/null}"
CHAIN_PREFIX="CS_EXTNET"

log() { printf '[%(%Y-%m-%d %H:%M:%S)T] %s\n' -1 "$*" >> "${LOG_FILE}" 2>/dev/null || true; }
die() { log "ERROR: $*"; echo "spawn-router: $*" >&2; exit 1; }

# ---- payload: every "key": "string" pair of the JSON file (payload, details, action-params) ----------
declare -A P
parse_payload() {
    local doc s re='"([A-Za-z0-9_.-]+)"[[:space:]]*:[[:space:]]*"([^"]*)"'
    [ -f "$1" ] || die "payload file not found: $1"
    IFS= read -r -d '' doc < "$1" || true
    s=${doc}
    while [[ ${s} =~ ${re} ]]; do
        [ -z "${P[${BASH_REMATCH[1]}]+set}" ] && P[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
        s=${s#*"${BASH_REMATCH[0]}"}
    done
    NETWORK_ID=${P[network_id]:-}
    VPC_ID=${P[vpc_id]:-}
    VLAN=${P[vlan]:-}
    GATEWAY=${P[gateway]:-}
    CIDR=${P[cidr]:-}
    EXTENSION_IP=${P[extension_ip]:-}
    GUEST_TYPE=${P[guest_type]:-}
    NETWORK_STATE=${P[network_state]:-}
    PUBLIC_IP=${P[public_ip]:-}
    PUBLIC_VLAN=${P[public_vlan]:-}
    PUBLIC_GATEWAY=${P[public_gateway]:-}
    PUBLIC_CIDR=${P[public_cidr]:-}
    SOURCE_NAT=${P[source_nat]:-false}
    PRIVATE_IP=${P[private_ip]:-}
    PUBLIC_PORT=${P[public_port]:-}
    PRIVATE_PORT=${P[private_port]:-}
    PROTOCOL=${P[protocol]:-tcp}
    VPC_CIDR=${P[vpc_cidr]:-}
    GUEST_ETH=${P[guest.network.device]:-eth1}
    PUB_ETH=${P[public.network.device]:-eth1}
    if [ -n "${VPC_ID}" ]; then NAMESPACE="cs-vpc-${VPC_ID}"; else NAMESPACE="${P[namespace]:-cs-net-${NETWORK_ID}}"; fi
    CHOSEN_ID="${VPC_ID:-${NETWORK_ID}}"
}

net_state_dir() { echo "${STATE_DIR}/network-${NETWORK_ID}"; }
vpc_state_dir() { if [ -n "${VPC_ID}" ]; then echo "${STATE_DIR}/vpc-${VPC_ID}"; else echo "${STATE_DIR}/network-${NETWORK_ID}"; fi; }

read_state() { # read_state VAR FILE: set VAR from FILE when VAR is empty and FILE exists
    local __v
    [ -n "${!1}" ] && return 0
    [ -f "$2" ] || return 0
    IFS= read -r __v < "$2" || true
    printf -v "$1" '%s' "${__v}"
}

load_state() {
    local nsd vsd
    nsd=$(net_state_dir); vsd=$(vpc_state_dir)
    read_state VLAN "${nsd}/vlan"
    read_state CIDR "${nsd}/cidr"
    read_state GATEWAY "${nsd}/gateway"
    read_state EXTENSION_IP "${nsd}/extension-ip"
    read_state GUEST_TYPE "${nsd}/guest-type"
}

acquire_lock() {
    local lockfile
    if [ -n "${VPC_ID}" ]; then lockfile="${STATE_DIR}/lock-vpc-${VPC_ID}"; else lockfile="${STATE_DIR}/lock-network-$1"; fi
    [ -d "${STATE_DIR}" ] || mkdir -p "${STATE_DIR}"
    exec 200>"${lockfile}"
    flock -w 30 200 || die "failed to acquire lock ${lockfile}"
}

# ---- names ---------------------------------------------------------------------------------------------
seg_label() {
    case "$1" in
        vxlan://*) echo "x${1#vxlan://}" ;;
        untagged|vlan://untagged) echo "u" ;;
        vlan://*) echo "${1#vlan://}" ;;
        *) echo "$1" ;;
    esac
}
seg_kind() {
    case "$1" in vxlan://*) echo vxlan ;; untagged|vlan://untagged) echo untagged ;; *) echo vlan ;; esac
}
seg_id() { local v=${1#vxlan://}; echo "${v#vlan://}"; }
seg_dev() { # seg_dev <dev> <segment>
    case "$(seg_kind "$2")" in
        vxlan) echo "vxlan$(seg_id "$2")" ;;
        untagged) echo "$1" ;;
        *) echo "$1.$(seg_id "$2")" ;;
    esac
}
seg_bridge() {
    local b
    case "$(seg_kind "$2")" in
        vxlan) b="brvx-$(seg_id "$2")" ;;
        untagged) b="br$1-u" ;;
        *) b="br$1-$(seg_id "$2")" ;;
    esac
    echo "${b:0:15}"
}
shorten_id() {
    if printf '%d' "$1" >/dev/null 2>&1; then printf '%x' "$1"; else local h; h=$(printf '%s' "$1" | md5sum); echo "${h:0:6}"; fi
}
fit_name() { # fit_name <prefix> <label> <id>
    local n="$1-$2-$3"
    if [ ${#n} -le 15 ]; then echo "${n}"; return; fi
    n="$1-$2-$(shorten_id "$3")"
    echo "${n:0:15}"
}
veth_host_name() { fit_name vh "$(seg_label "$1")" "$2"; }
veth_ns_name() { fit_name vn "$(seg_label "$1")" "$2"; }
pub_veth_host_name() { fit_name vph "$(seg_label "$1")" "$2"; }
pub_veth_ns_name() { fit_name vpn "$(seg_label "$1")" "$2"; }

# ---- helpers (one process per kernel object, as shell routers do) --------------------------------------
ns_exists() { local l; l=$(ip netns list 2>/dev/null); [[ $'\n'"${l}" == *$'\n'"$1"[\ $'\n']* || "${l}" == "$1" ]]; }
nsx() { ip netns exec "${NAMESPACE}" "$@"; }

ensure_table_file() {
    local d="/etc/netns/${NAMESPACE}/iproute2"
    [ -f "${d}/rt_tables" ] && return 0
    mkdir -p "${d}"
    printf '255\tlocal\n254\tmain\n253\tdefault\n0\tunspec\n' > "${d}/rt_tables"
}

ensure_host_bridge() { # ensure_host_bridge <dev> <segment>
    local dev="$1" seg="$2" vif br kind line
    kind=$(seg_kind "${seg}"); vif=$(seg_dev "${dev}" "${seg}"); br=$(seg_bridge "${dev}" "${seg}")
    if [ "${kind}" != untagged ]; then
        if ! ip link show "${vif}" >/dev/null 2>&1; then
            if [ "${kind}" = vxlan ]; then
                ip link add "${vif}" type vxlan id "$(seg_id "${seg}")" dev "${dev}" dstport 4789
            else
                ip link add link "${dev}" name "${vif}" type vlan id "$(seg_id "${seg}")"
            fi
        fi
    fi
    ip link set "${vif}" up 2>/dev/null || true
    if ! ip link show "${br}" >/dev/null 2>&1; then
        ip link add name "${br}" type bridge
        ip link set "${br}" up 2>/dev/null || true
    fi
    line=$(ip -o link show "${vif}" 2>/dev/null || true)
    [[ ${line} == *" master ${br} "* ]] || ip link set "${vif}" master "${br}" 2>/dev/null || true
}

ensure_veth() { # ensure_veth <host end> <ns end> <bridge>
    if ! ip link show "$1" >/dev/null 2>&1; then
        ip link add "$1" type veth peer name "$2"
        ip link set "$2" netns "${NAMESPACE}"
        ip link set "$1" master "$3"
        ip link set "$1" up
        nsx ip link set "$2" up
    else
        ip link set "$1" up 2>/dev/null || true
        nsx ip link set "$2" up 2>/dev/null || true
    fi
}

ensure_chain() { nsx iptables -t "$1" -n -L "$2" >/dev/null 2>&1 || nsx iptables -t "$1" -N "$2"; }
ensure_jump() { nsx iptables -t "$1" -C "$2" -j "$3" 2>/dev/null || nsx iptables -t "$1" -I "$2" 1 -j "$3"; }
ensure_rule() { # ensure_rule <table> <chain> <rule…>: -C || -A
    local t="$1" c="$2"; shift 2
    nsx iptables -t "${t}" -C "${c}" "$@" 2>/dev/null || nsx iptables -t "${t}" -A "${c}" "$@"
}
drop_rule() { local t="$1" c="$2"; shift 2; nsx iptables -t "${t}" -D "${c}" "$@" 2>/dev/null || true; }

addr_spec() { if [[ ${PUBLIC_CIDR} == */* ]]; then echo "${PUBLIC_IP}/${PUBLIC_CIDR#*/}"; else echo "${PUBLIC_IP}/32"; fi; }

ensure_public_ip_on_namespace() { # <ns veth> <host veth>
    local out
    out=$(nsx ip addr show "$1" 2>/dev/null || true)
    [[ ${out} == *" ${PUBLIC_IP}/"* ]] || nsx ip addr add "$(addr_spec)" dev "$1" 2>/dev/null || true
    out=$(ip route show)
    [[ $'\n'${out} == *$'\n'"${PUBLIC_IP} "* ]] || ip route add "${PUBLIC_IP}/32" dev "$2" 2>/dev/null || true
    nsx sysctl -w "net.ipv6.conf.$1.disable_ipv6=1" >/dev/null 2>&1 || true
}

dump_iptables() {
    local out vsd
    out=$(nsx iptables-save 2>/dev/null || echo "(iptables-save failed)")
    vsd=$(vpc_state_dir)
    [ -d "${vsd}" ] || mkdir -p "${vsd}"
    printf '# iptables-save ns=%s\n%s\n' "${NAMESPACE}" "${out}" > "${vsd}/iptables.dump"
}

# ---- commands -------------------------------------------------------------------------------------------
cmd_implement_network() {
    acquire_lock "${NETWORK_ID}"
    local veth_h veth_n br ext_ip prefix out nsd vsd
    veth_h=$(veth_host_name "${VLAN}" "${CHOSEN_ID}"); veth_n=$(veth_ns_name "${VLAN}" "${CHOSEN_ID}")
    local pr="${CHAIN_PREFIX}_${NETWORK_ID}_PR" post="${CHAIN_PREFIX}_${NETWORK_ID}_POST" fwd="${CHAIN_PREFIX}_FWD_${NETWORK_ID}"
    ns_exists "${NAMESPACE}" || ip netns add "${NAMESPACE}"
    nsx ip link set lo up 2>/dev/null || true
    ensure_table_file
    if [ -z "${VPC_ID}" ]; then
        nsx sysctl -w net.ipv6.conf.all.disable_ipv6=1 >/dev/null 2>&1 || true
        nsx sysctl -w net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1 || true
        nsx sysctl -w net.ipv6.conf.lo.disable_ipv6=1 >/dev/null 2>&1 || true
    fi
    if [ -n "${VLAN}" ]; then
        ensure_host_bridge "${GUEST_ETH}" "${VLAN}"
        br=$(seg_bridge "${GUEST_ETH}" "${VLAN}")
        ensure_veth "${veth_h}" "${veth_n}" "${br}"
    fi
    ext_ip="${EXTENSION_IP:-${GATEWAY}}"
    if [ -n "${ext_ip}" ] && [ -n "${CIDR}" ]; then
        prefix=${CIDR#*/}
        out=$(nsx ip addr show "${veth_n}" 2>/dev/null || true)
        [[ ${out} == *" ${ext_ip}/${prefix} "* ]] || nsx ip addr add "${ext_ip}/${prefix}" dev "${veth_n}"
        if [ -n "${GATEWAY}" ] && [ "${ext_ip}" != "${GATEWAY}" ]; then
            nsx ip route replace default via "${GATEWAY}" dev "${veth_n}" 2>/dev/null || true
        fi
    fi
    nsx sysctl -w "net.ipv6.conf.${veth_n}.disable_ipv6=1" >/dev/null 2>&1 || true
    if [ "${GUEST_TYPE}" = isolated ]; then
        nsx sysctl -w net.ipv4.ip_forward=1 >/dev/null 2>&1 || true
        ensure_chain nat "${pr}"
        ensure_chain nat "${post}"
        ensure_chain filter "${fwd}"
        ensure_jump nat PREROUTING "${pr}"
        ensure_jump nat POSTROUTING "${post}"
        ensure_jump filter FORWARD "${fwd}"
        ensure_rule filter "${fwd}" -i "${veth_n}" -j ACCEPT
        ensure_rule filter "${fwd}" -o "${veth_n}" -m state --state RELATED,ESTABLISHED -j ACCEPT
    fi
    nsd=$(net_state_dir); vsd=$(vpc_state_dir)
    mkdir -p "${nsd}" "${vsd}"
    echo "${VLAN}" > "${nsd}/vlan"; echo "${GATEWAY}" > "${nsd}/gateway"; echo "${CIDR}" > "${nsd}/cidr"
    echo "${ext_ip}" > "${nsd}/extension-ip"; echo "${GUEST_TYPE}" > "${nsd}/guest-type"
    echo "${NAMESPACE}" > "${vsd}/namespace"
    if [ -n "${VPC_ID}" ]; then mkdir -p "${vsd}/tiers"; : > "${vsd}/tiers/${NETWORK_ID}"; fi
    dump_iptables
    log "implement-network: done ${NETWORK_ID}"
}

remove_owned_public_veths() {
    local vsd f owner pvlan
    vsd=$(vpc_state_dir)
    [ -d "${vsd}/ips" ] || return 0
    for f in "${vsd}/ips/"*.pvlan; do
        [ -f "${f}" ] || continue
        owner=""; read_state owner "${f%.pvlan}.tier"
        if [ -n "${owner}" ] && [ "${owner}" != "${NETWORK_ID}" ]; then continue; fi
        pvlan=""; read_state pvlan "${f}"
        ip link del "$(pub_veth_host_name "${pvlan}" "${CHOSEN_ID}")" 2>/dev/null || true
        [ "$1" = forget ] && rm -f "${f}" "${f%.pvlan}" "${f%.pvlan}.tier"
    done
    return 0
}

cmd_shutdown_network() {
    load_state
    acquire_lock "${NETWORK_ID}"
    local pr="${CHAIN_PREFIX}_${NETWORK_ID}_PR" post="${CHAIN_PREFIX}_${NETWORK_ID}_POST" fwd="${CHAIN_PREFIX}_FWD_${NETWORK_ID}" vsd
    if [ "${GUEST_TYPE}" = isolated ]; then
        nsx iptables -t nat -D PREROUTING -j "${pr}" 2>/dev/null || true
        nsx iptables -t nat -D POSTROUTING -j "${post}" 2>/dev/null || true
        nsx iptables -t filter -D FORWARD -j "${fwd}" 2>/dev/null || true
        nsx iptables -t nat -F "${pr}" 2>/dev/null || true
        nsx iptables -t nat -X "${pr}" 2>/dev/null || true
        nsx iptables -t nat -F "${post}" 2>/dev/null || true
        nsx iptables -t nat -X "${post}" 2>/dev/null || true
        nsx iptables -t filter -F "${fwd}" 2>/dev/null || true
        nsx iptables -t filter -X "${fwd}" 2>/dev/null || true
        remove_owned_public_veths keep
    fi
    ip link del "$(veth_host_name "${VLAN}" "${CHOSEN_ID}")" 2>/dev/null || true
    vsd=$(vpc_state_dir)
    if [ "${GUEST_TYPE}" = isolated ]; then
        if [ -z "${VPC_ID}" ]; then rm -rf "${vsd}/ips" "${vsd}/static-nat" "${vsd}/port-forward"
        else rm -rf "${STATE_DIR}/network-${NETWORK_ID}/static-nat" "${STATE_DIR}/network-${NETWORK_ID}/port-forward"; fi
    fi
    if [ -z "${VPC_ID}" ]; then
        ip netns del "${NAMESPACE}" 2>/dev/null || true
        rm -rf "/etc/netns/${NAMESPACE}" 2>/dev/null || true
    fi
    log "shutdown-network: done ${NETWORK_ID}"
}

cmd_destroy_network() {
    load_state
    acquire_lock "${NETWORK_ID}"
    local vsd
    ip link del "$(veth_host_name "${VLAN}" "${CHOSEN_ID}")" 2>/dev/null || true
    vsd=$(vpc_state_dir)
    [ "${GUEST_TYPE}" = isolated ] && remove_owned_public_veths forget
    rm -rf "$(net_state_dir)"
    if [ -n "${VPC_ID}" ]; then
        rm -f "${vsd}/tiers/${NETWORK_ID}" 2>/dev/null || true
    elif ns_exists "${NAMESPACE}"; then
        ip netns del "${NAMESPACE}"
        rm -rf "/etc/netns/${NAMESPACE}" 2>/dev/null || true
    fi
    log "destroy-network: done ${NETWORK_ID}"
}

cmd_assign_ip() {
    load_state
    acquire_lock "${NETWORK_ID}"
    [ -z "${PUBLIC_IP}" ] && die "missing public_ip"
    [ -z "${PUBLIC_VLAN}" ] && die "missing public_vlan"
    local pveth_h pveth_n br out vsd
    local post="${CHAIN_PREFIX}_${NETWORK_ID}_POST" fwd="${CHAIN_PREFIX}_FWD_${NETWORK_ID}"
    pveth_h=$(pub_veth_host_name "${PUBLIC_VLAN}" "${CHOSEN_ID}"); pveth_n=$(pub_veth_ns_name "${PUBLIC_VLAN}" "${CHOSEN_ID}")
    ensure_host_bridge "${PUB_ETH}" "${PUBLIC_VLAN}"
    br=$(seg_bridge "${PUB_ETH}" "${PUBLIC_VLAN}")
    ensure_veth "${pveth_h}" "${pveth_n}" "${br}"
    out=$(nsx ip addr show "${pveth_n}" 2>/dev/null || true)
    [[ ${out} == *" ${PUBLIC_IP}/"* ]] || nsx ip addr add "$(addr_spec)" dev "${pveth_n}"
    out=$(ip route show)
    [[ $'\n'${out} == *$'\n'"${PUBLIC_IP} "* ]] || ip route add "${PUBLIC_IP}/32" dev "${pveth_h}" 2>/dev/null || true
    if [ -n "${PUBLIC_GATEWAY}" ]; then
        nsx ip route replace default via "${PUBLIC_GATEWAY}" dev "${pveth_n}" 2>/dev/null || true
    fi
    if [ "${SOURCE_NAT}" = true ] && [ -n "${CIDR}" ] && [ -z "${VPC_ID}" ]; then
        ensure_rule nat "${post}" -s "${CIDR}" -o "${pveth_n}" -j SNAT --to-source "${PUBLIC_IP}"
        ensure_rule filter "${fwd}" -o "${pveth_n}" -s "${CIDR}" -j ACCEPT
    fi
    vsd=$(vpc_state_dir)
    [ -d "${vsd}/ips" ] || mkdir -p "${vsd}/ips"
    echo "${SOURCE_NAT}" > "${vsd}/ips/${PUBLIC_IP}"
    echo "${PUBLIC_VLAN}" > "${vsd}/ips/${PUBLIC_IP}.pvlan"
    echo "${NETWORK_ID}" > "${vsd}/ips/${PUBLIC_IP}.tier"
    dump_iptables
    log "assign-ip: done ${PUBLIC_IP}"
}

cmd_release_ip() {
    load_state
    acquire_lock "${NETWORK_ID}"
    [ -z "${PUBLIC_IP}" ] && die "missing public_ip"
    local vsd pveth_h pveth_n rule f v remaining=0 total=0
    local pr="${CHAIN_PREFIX}_${NETWORK_ID}_PR" post="${CHAIN_PREFIX}_${NETWORK_ID}_POST" fwd="${CHAIN_PREFIX}_FWD_${NETWORK_ID}"
    vsd=$(vpc_state_dir)
    read_state PUBLIC_VLAN "${vsd}/ips/${PUBLIC_IP}.pvlan"
    [ -z "${PUBLIC_VLAN}" ] && die "cannot determine the public VLAN of ${PUBLIC_IP}"
    pveth_h=$(pub_veth_host_name "${PUBLIC_VLAN}" "${CHOSEN_ID}"); pveth_n=$(pub_veth_ns_name "${PUBLIC_VLAN}" "${CHOSEN_ID}")
    if [ -n "${CIDR}" ]; then
        drop_rule nat "${post}" -s "${CIDR}" -o "${pveth_n}" -j SNAT --to-source "${PUBLIC_IP}"
        drop_rule filter "${fwd}" -o "${pveth_n}" -s "${CIDR}" -j ACCEPT
    fi
    while IFS= read -r rule; do
        [[ ${rule} == *"-d ${PUBLIC_IP}/"* ]] || continue
        # shellcheck disable=SC2086
        nsx iptables -t nat -D "${pr}" ${rule#-A ${pr} } 2>/dev/null || true
    done <<< "$(nsx iptables -t nat -S "${pr}" 2>/dev/null || true)"
    ip route del "${PUBLIC_IP}/32" 2>/dev/null || true
    [[ ${PUBLIC_CIDR} == */* ]] && { nsx ip addr del "${PUBLIC_IP}/${PUBLIC_CIDR#*/}" dev "${pveth_n}" 2>/dev/null || true; }
    nsx ip addr del "${PUBLIC_IP}/32" dev "${pveth_n}" 2>/dev/null || true
    for f in "${vsd}/ips/"*.pvlan; do
        [ -f "${f}" ] || continue
        total=$((total + 1))
        [ "${f}" = "${vsd}/ips/${PUBLIC_IP}.pvlan" ] && continue
        v=""; read_state v "${f}"
        [ "${v}" = "${PUBLIC_VLAN}" ] && remaining=$((remaining + 1))
    done
    [ "${remaining}" -eq 0 ] && { ip link del "${pveth_h}" 2>/dev/null || true; }
    if [ -n "${PUBLIC_GATEWAY}" ] && [ "${total}" -le 1 ]; then
        nsx ip route del default via "${PUBLIC_GATEWAY}" dev "${pveth_n}" 2>/dev/null || true
    fi
    rm -f "${vsd}/ips/${PUBLIC_IP}" "${vsd}/ips/${PUBLIC_IP}.pvlan" "${vsd}/ips/${PUBLIC_IP}.tier"
    dump_iptables
    log "release-ip: done ${PUBLIC_IP}"
}

cmd_add_static_nat() {
    load_state
    acquire_lock "${NETWORK_ID}"
    [ -z "${PUBLIC_IP}" ] && die "missing public_ip"
    [ -z "${PRIVATE_IP}" ] && die "missing private_ip"
    local vsd pveth_h pveth_n veth_n
    local pr="${CHAIN_PREFIX}_${NETWORK_ID}_PR" post="${CHAIN_PREFIX}_${NETWORK_ID}_POST" fwd="${CHAIN_PREFIX}_FWD_${NETWORK_ID}"
    vsd=$(vpc_state_dir)
    read_state PUBLIC_VLAN "${vsd}/ips/${PUBLIC_IP}.pvlan"
    [ -z "${PUBLIC_VLAN}" ] && die "cannot determine the public VLAN of ${PUBLIC_IP}"
    pveth_h=$(pub_veth_host_name "${PUBLIC_VLAN}" "${CHOSEN_ID}"); pveth_n=$(pub_veth_ns_name "${PUBLIC_VLAN}" "${CHOSEN_ID}")
    veth_n=$(veth_ns_name "${VLAN}" "${CHOSEN_ID}")
    ensure_public_ip_on_namespace "${pveth_n}" "${pveth_h}"
    ensure_rule nat "${pr}" -d "${PUBLIC_IP}" -j DNAT --to-destination "${PRIVATE_IP}"
    ensure_rule nat "${post}" -s "${PRIVATE_IP}" -o "${pveth_n}" -j SNAT --to-source "${PUBLIC_IP}"
    ensure_rule filter "${fwd}" -d "${PRIVATE_IP}" -o "${veth_n}" -j ACCEPT
    ensure_rule filter "${fwd}" -s "${PRIVATE_IP}" -i "${veth_n}" -j ACCEPT
    [ -d "${vsd}/static-nat" ] || mkdir -p "${vsd}/static-nat"
    echo "${PRIVATE_IP}" > "${vsd}/static-nat/${PUBLIC_IP}"
    dump_iptables
    log "add-static-nat: done ${PUBLIC_IP} ${PRIVATE_IP}"
}

cmd_delete_static_nat() {
    load_state
    acquire_lock "${NETWORK_ID}"
    local vsd pveth_n veth_n
    local pr="${CHAIN_PREFIX}_${NETWORK_ID}_PR" post="${CHAIN_PREFIX}_${NETWORK_ID}_POST" fwd="${CHAIN_PREFIX}_FWD_${NETWORK_ID}"
    vsd=$(vpc_state_dir)
    read_state PRIVATE_IP "${vsd}/static-nat/${PUBLIC_IP}"
    read_state PUBLIC_VLAN "${vsd}/ips/${PUBLIC_IP}.pvlan"
    [ -z "${PRIVATE_IP}" ] && die "missing private_ip and no saved state"
    pveth_n=$(pub_veth_ns_name "${PUBLIC_VLAN}" "${CHOSEN_ID}"); veth_n=$(veth_ns_name "${VLAN}" "${CHOSEN_ID}")
    drop_rule nat "${pr}" -d "${PUBLIC_IP}" -j DNAT --to-destination "${PRIVATE_IP}"
    drop_rule nat "${post}" -s "${PRIVATE_IP}" -o "${pveth_n}" -j SNAT --to-source "${PUBLIC_IP}"
    drop_rule filter "${fwd}" -d "${PRIVATE_IP}" -o "${veth_n}" -j ACCEPT
    drop_rule filter "${fwd}" -s "${PRIVATE_IP}" -i "${veth_n}" -j ACCEPT
    rm -f "${vsd}/static-nat/${PUBLIC_IP}"
    dump_iptables
    log "delete-static-nat: done ${PUBLIC_IP}"
}

cmd_add_port_forward() {
    load_state
    acquire_lock "${NETWORK_ID}"
    local vsd pveth_h pveth_n veth_n
    local pr="${CHAIN_PREFIX}_${NETWORK_ID}_PR" fwd="${CHAIN_PREFIX}_FWD_${NETWORK_ID}"
    vsd=$(vpc_state_dir)
    read_state PUBLIC_VLAN "${vsd}/ips/${PUBLIC_IP}.pvlan"
    [ -z "${PUBLIC_VLAN}" ] && die "cannot determine the public VLAN of ${PUBLIC_IP}"
    pveth_h=$(pub_veth_host_name "${PUBLIC_VLAN}" "${CHOSEN_ID}"); pveth_n=$(pub_veth_ns_name "${PUBLIC_VLAN}" "${CHOSEN_ID}")
    veth_n=$(veth_ns_name "${VLAN}" "${CHOSEN_ID}")
    ensure_public_ip_on_namespace "${pveth_n}" "${pveth_h}"
    ensure_rule nat "${pr}" -p "${PROTOCOL}" -d "${PUBLIC_IP}" --dport "${PUBLIC_PORT}" -j DNAT --to-destination "${PRIVATE_IP}:${PRIVATE_PORT}"
    ensure_rule filter "${fwd}" -p "${PROTOCOL}" -d "${PRIVATE_IP}" --dport "${PRIVATE_PORT}" -o "${veth_n}" -j ACCEPT
    ensure_rule filter "${fwd}" -p "${PROTOCOL}" -s "${PRIVATE_IP}" --sport "${PRIVATE_PORT}" -i "${veth_n}" -j ACCEPT
    [ -d "${vsd}/port-forward" ] || mkdir -p "${vsd}/port-forward"
    echo "${PROTOCOL} ${PUBLIC_IP} ${PUBLIC_PORT} ${PRIVATE_IP} ${PRIVATE_PORT}" > "${vsd}/port-forward/${PROTOCOL}_${PUBLIC_IP}_${PUBLIC_PORT//:/-}"
    dump_iptables
    log "add-port-forward: done ${PUBLIC_IP}:${PUBLIC_PORT}"
}

cmd_delete_port_forward() {
    load_state
    acquire_lock "${NETWORK_ID}"
    local vsd veth_n
    local pr="${CHAIN_PREFIX}_${NETWORK_ID}_PR" fwd="${CHAIN_PREFIX}_FWD_${NETWORK_ID}"
    veth_n=$(veth_ns_name "${VLAN}" "${CHOSEN_ID}")
    drop_rule nat "${pr}" -p "${PROTOCOL}" -d "${PUBLIC_IP}" --dport "${PUBLIC_PORT}" -j DNAT --to-destination "${PRIVATE_IP}:${PRIVATE_PORT}"
    drop_rule filter "${fwd}" -p "${PROTOCOL}" -d "${PRIVATE_IP}" --dport "${PRIVATE_PORT}" -o "${veth_n}" -j ACCEPT
    drop_rule filter "${fwd}" -p "${PROTOCOL}" -s "${PRIVATE_IP}" --sport "${PRIVATE_PORT}" -i "${veth_n}" -j ACCEPT
    vsd=$(vpc_state_dir)
    rm -f "${vsd}/port-forward/${PROTOCOL}_${PUBLIC_IP}_${PUBLIC_PORT//:/-}"
    dump_iptables
    log "delete-port-forward: done ${PUBLIC_IP}:${PUBLIC_PORT}"
}

vpc_public_side() { # public veth + address + host route + default route (implement-vpc, update-vpc-source-nat-ip)
    local br out
    ensure_host_bridge "${PUB_ETH}" "${PUBLIC_VLAN}"
    br=$(seg_bridge "${PUB_ETH}" "${PUBLIC_VLAN}")
    ensure_veth "$1" "$2" "${br}"
}

cmd_implement_vpc() {
    [ -z "${VPC_ID}" ] && die "missing vpc_id"
    NAMESPACE="${P[namespace]:-cs-vpc-${VPC_ID}}"
    local vsd="${STATE_DIR}/vpc-${VPC_ID}" pveth_h pveth_n out chain="${CHAIN_PREFIX}_${VPC_ID}_VPC_POST"
    ns_exists "${NAMESPACE}" || ip netns add "${NAMESPACE}"
    nsx ip link set lo up 2>/dev/null || true
    ensure_table_file
    nsx sysctl -w net.ipv4.ip_forward=1 >/dev/null 2>&1 || true
    if [ -n "${PUBLIC_IP}" ] && [ -n "${PUBLIC_VLAN}" ] && [ "${SOURCE_NAT}" = true ] && [ -n "${VPC_CIDR}" ]; then
        pveth_h=$(pub_veth_host_name "${PUBLIC_VLAN}" "${VPC_ID}"); pveth_n=$(pub_veth_ns_name "${PUBLIC_VLAN}" "${VPC_ID}")
        vpc_public_side "${pveth_h}" "${pveth_n}"
        out=$(nsx ip addr show "${pveth_n}" 2>/dev/null || true)
        [[ ${out} == *" ${PUBLIC_IP}/"* ]] || nsx ip addr add "$(addr_spec)" dev "${pveth_n}"
        out=$(ip route show)
        [[ $'\n'${out} == *$'\n'"${PUBLIC_IP} "* ]] || ip route add "${PUBLIC_IP}/32" dev "${pveth_h}" 2>/dev/null || true
        [ -n "${PUBLIC_GATEWAY}" ] && { nsx ip route replace default via "${PUBLIC_GATEWAY}" dev "${pveth_n}" 2>/dev/null || true; }
        ensure_chain nat "${chain}"
        ensure_jump nat POSTROUTING "${chain}"
        ensure_rule nat "${chain}" -s "${VPC_CIDR}" -o "${pveth_n}" -j SNAT --to-source "${PUBLIC_IP}"
        [ -d "${vsd}/ips" ] || mkdir -p "${vsd}/ips"
        echo true > "${vsd}/ips/${PUBLIC_IP}"; echo "${PUBLIC_VLAN}" > "${vsd}/ips/${PUBLIC_IP}.pvlan"
    fi
    [ -d "${vsd}" ] || mkdir -p "${vsd}"
    echo "${NAMESPACE}" > "${vsd}/namespace"
    [ -n "${VPC_CIDR}" ] && echo "${VPC_CIDR}" > "${vsd}/cidr"
    log "implement-vpc: done ${VPC_ID}"
}

cmd_update_vpc_source_nat_ip() {
    [ -z "${VPC_ID}" ] && die "missing vpc_id"
    NAMESPACE="${P[namespace]:-cs-vpc-${VPC_ID}}"
    acquire_lock "vpc-${VPC_ID}"
    local vsd="${STATE_DIR}/vpc-${VPC_ID}" f ip flag old="" oldv="" pveth_h pveth_n oldn route chain="${CHAIN_PREFIX}_${VPC_ID}_VPC_POST"
    [ -d "${vsd}/ips" ] || mkdir -p "${vsd}/ips"
    read_state VPC_CIDR "${vsd}/cidr"
    read_state PUBLIC_VLAN "${vsd}/ips/${PUBLIC_IP}.pvlan"
    [ -z "${VPC_CIDR}" ] && die "missing vpc_cidr"
    [ -z "${PUBLIC_VLAN}" ] && die "missing public_vlan"
    for f in "${vsd}/ips/"*; do
        [ -f "${f}" ] || continue
        ip=${f##*/}
        case "${ip}" in *.pvlan|*.tier) continue ;; esac
        flag=""; read_state flag "${f}"
        if [ "${flag}" = true ]; then old=${ip}; break; fi
    done
    [ -n "${old}" ] && read_state oldv "${vsd}/ips/${old}.pvlan"
    pveth_h=$(pub_veth_host_name "${PUBLIC_VLAN}" "${VPC_ID}"); pveth_n=$(pub_veth_ns_name "${PUBLIC_VLAN}" "${VPC_ID}")
    vpc_public_side "${pveth_h}" "${pveth_n}"
    ensure_public_ip_on_namespace "${pveth_n}" "${pveth_h}"
    ip route replace "${PUBLIC_IP}/32" dev "${pveth_h}" 2>/dev/null || true
    if [ -n "${old}" ] && [ "${old}" != "${PUBLIC_IP}" ] && [ -n "${oldv}" ]; then
        oldn=$(pub_veth_ns_name "${oldv}" "${VPC_ID}")
        if [ "${oldn}" != "${pveth_n}" ]; then
            while IFS= read -r route; do
                [[ ${route} == *" dev ${oldn} "* || ${route} == *" dev ${oldn}" ]] || continue
                # shellcheck disable=SC2086
                nsx ip route del ${route} 2>/dev/null || true
            done <<< "$(nsx ip route show default 2>/dev/null || true)"
        fi
    fi
    [ -n "${PUBLIC_GATEWAY}" ] && { nsx ip route replace default via "${PUBLIC_GATEWAY}" dev "${pveth_n}" 2>/dev/null || true; }
    ensure_chain nat "${chain}"
    ensure_jump nat POSTROUTING "${chain}"
    nsx iptables -t nat -F "${chain}"
    nsx iptables -t nat -A "${chain}" -s "${VPC_CIDR}" -o "${pveth_n}" -j SNAT --to-source "${PUBLIC_IP}"
    for f in "${vsd}/ips/"*; do
        [ -f "${f}" ] || continue
        case "${f}" in *.pvlan|*.tier) continue ;; esac
        echo false > "${f}"
    done
    echo true > "${vsd}/ips/${PUBLIC_IP}"; echo "${PUBLIC_VLAN}" > "${vsd}/ips/${PUBLIC_IP}.pvlan"
    dump_iptables
    log "update-vpc-source-nat-ip: done ${VPC_ID} ${old:-none} -> ${PUBLIC_IP}"
}

cmd_shutdown_vpc() {
    NAMESPACE="${P[namespace]:-cs-vpc-${VPC_ID}}"
    if ns_exists "${NAMESPACE}"; then ip netns del "${NAMESPACE}"; rm -rf "/etc/netns/${NAMESPACE}" 2>/dev/null || true; fi
    [ "$1" = destroy ] && rm -rf "${STATE_DIR}/vpc-${VPC_ID}"
    log "$1-vpc: done ${VPC_ID}"
}

pbr_json() { printf '{"status":"success","printmessage":"true","message":"%s"}\n' "$1"; }

cmd_custom_action() {
    local action="${P[action]:-}" table route rule tid tname tf
    [ -z "${NETWORK_ID}" ] && [ -z "${VPC_ID}" ] && die "custom-action: missing network_id or vpc_id"
    [ -z "${action}" ] && die "custom-action: missing action"
    if [ -n "${VPC_ID}" ] && ! ns_exists "${NAMESPACE}"; then
        ip netns add "${NAMESPACE}" 2>/dev/null || true
        nsx ip link set lo up 2>/dev/null || true
        ensure_table_file
    fi
    load_state
    acquire_lock "${CHOSEN_ID}"
    table="${P[table]:-${P[table-name]:-${P[table-id]:-}}}"
    route="${P[route]:-${P[route-spec]:-}}"
    rule="${P[rule]:-${P[rule-spec]:-}}"
    tid="${P[table-id]:-${P[table_id]:-}}"
    tname="${P[table-name]:-${P[table_name]:-}}"
    tf="/etc/netns/${NAMESPACE}/iproute2/rt_tables"
    case "${action}" in
        pbr-create-table)
            ensure_table_file
            local content="" line found=""
            while IFS= read -r line; do
                [[ ${line} =~ ^${tid}[[:space:]]+${tname}$ ]] && found=1
                content+="${line}"$'\n'
            done < "${tf}"
            [ -z "${found}" ] && printf '%s%s\t%s\n' "${content}" "${tid}" "${tname}" > "${tf}"
            pbr_json "pbr-create-table: OK id=${tid} name=${tname}" ;;
        pbr-delete-table)
            ensure_table_file
            local content="" line a b
            while IFS= read -r line; do
                read -r a b <<< "${line}"
                if [[ ${line} != \#* ]] && { { [ -n "${tid}" ] && [ "${a}" = "${tid}" ]; } || { [ -n "${tname}" ] && [ "${b}" = "${tname}" ]; }; }; then continue; fi
                content+="${line}"$'\n'
            done < "${tf}"
            printf '%s' "${content}" > "${tf}"
            pbr_json "pbr-delete-table: OK" ;;
        pbr-add-route) nsx sh -c "ip route replace ${route} table ${table}"; pbr_json "pbr-add-route: OK table=${table} route=${route}" ;;
        pbr-delete-route) nsx sh -c "ip route del ${route} table ${table}" 2>/dev/null || true; pbr_json "pbr-delete-route: OK" ;;
        pbr-add-rule) nsx sh -c "ip rule add ${rule} table ${table}" 2>/dev/null || true; pbr_json "pbr-add-rule: OK table=${table} rule=${rule}" ;;
        pbr-delete-rule) nsx sh -c "ip rule del ${rule} table ${table}" 2>/dev/null || true; pbr_json "pbr-delete-rule: OK" ;;
        pbr-list-rules) nsx ip rule show >/dev/null; pbr_json "listed" ;;
        pbr-list-routes) nsx ip route show table all >/dev/null; pbr_json "listed" ;;
        *) die "unknown action '${action}'" ;;
    esac
}

COMMAND="${1:-}"
[ -n "${COMMAND}" ] || die "usage: $0 <command> <payload-file> [<timeout-seconds>]"
parse_payload "${2:-}"
case "${COMMAND}" in
    implement-network) cmd_implement_network ;;
    shutdown-network) cmd_shutdown_network ;;
    destroy-network) cmd_destroy_network ;;
    implement-vpc) cmd_implement_vpc ;;
    update-vpc-source-nat-ip) cmd_update_vpc_source_nat_ip ;;
    shutdown-vpc) cmd_shutdown_vpc shutdown ;;
    destroy-vpc) cmd_shutdown_vpc destroy ;;
    assign-ip) cmd_assign_ip ;;
    release-ip) cmd_release_ip ;;
    add-static-nat) cmd_add_static_nat ;;
    delete-static-nat) cmd_delete_static_nat ;;
    add-port-forward) cmd_add_port_forward ;;
    delete-port-forward) cmd_delete_port_forward ;;
    custom-action) cmd_custom_action ;;
    *) die "unknown command: ${COMMAND}" ;;
esac
exit 0
