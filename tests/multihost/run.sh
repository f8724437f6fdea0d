#!/usr/bin/env bash
# Runs a program as a 2-rank Open MPI job across two "hosts": two network namespaces joined
# by a veth pair, Open MPI over TCP with a hostfile, and an rsh agent that "logs in" by
# entering the other namespace. Exits 77 (skipped) where namespaces cannot be made or entered.
#
#   run.sh [--shape] PROGRAM ARGS...     --shape: model a real link (netem: 100 us, 10 Gbit/s)
set -euo pipefail
shape=0
if [ "${1:-}" = "--shape" ]; then shape=1; shift; fi
[ $# -ge 1 ] || { echo "usage: $0 [--shape] PROGRAM ARGS..." >&2; exit 2; }

skip() { echo "SKIPPED: $*" >&2; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root to create network namespaces"
command -v ip >/dev/null || skip "iproute2 (ip) is not installed"

tag="sn$$"
h1="${tag}a" h2="${tag}b"
net=169.254.77
# `ip netns add` can half-work (in a chroot it leaves a namespace that `ip netns exec` cannot
# enter: "mount --make-rslave / failed"), so a probe namespace must also be entered.
probe="${tag}p"
if ! ip netns add "$probe" 2>/dev/null; then skip "cannot create network namespaces here"; fi
entered=0
ip netns exec "$probe" true >/dev/null 2>&1 && entered=1
ip netns del "$probe" 2>/dev/null || true
[ $entered = 1 ] || skip "network namespaces can be created but not entered here (ip netns exec fails)"

work=$(mktemp -d)
cleanup() { ip netns del "$h1" 2>/dev/null || true; ip netns del "$h2" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ip netns add "$h1"
ip netns add "$h2"
ip link add "${tag}v1" type veth peer name "${tag}v2"
ip link set "${tag}v1" netns "$h1"
ip link set "${tag}v2" netns "$h2"
ip -n "$h1" addr add $net.1/24 dev "${tag}v1"
ip -n "$h2" addr add $net.2/24 dev "${tag}v2"
for n in "$h1" "$h2"; do ip -n "$n" link set lo up; done
ip -n "$h1" link set "${tag}v1" up
ip -n "$h2" link set "${tag}v2" up
if [ $shape = 1 ]; then
  # netem models latency and bandwidth; kernels without sch_netem get tbf (bandwidth only).
  shaping="netem delay 100us rate 10gbit"
  for end in "$h1:${tag}v1" "$h2:${tag}v2"; do
    if ! ip netns exec "${end%%:*}" tc qdisc add dev "${end##*:}" root netem delay 100us rate 10gbit 2>/dev/null; then
      shaping="tbf rate 10gbit (netem unavailable in this kernel: no added delay)"
      ip netns exec "${end%%:*}" tc qdisc add dev "${end##*:}" root tbf rate 10gbit burst 1mb latency 1ms \
        || skip "neither tc netem nor tbf is available"
    fi
  done
  echo "shaping: $shaping" >&2
fi

# Open MPI calls: agent HOST COMMAND...; enter that host's namespace instead of ssh.
cat > "$work/agent.sh" <<AGENT
#!/bin/sh
case "\$1" in $net.1) ns=$h1;; $net.2) ns=$h2;; *) echo "unknown host \$1" >&2; exit 1;; esac
shift
exec ip netns exec "\$ns" sh -c "\$*"
AGENT
chmod +x "$work/agent.sh"
printf '%s slots=1\n%s slots=1\n' "$net.1" "$net.2" > "$work/hosts"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
unset OMPI_MCA_plm OMPI_MCA_rmaps_base_oversubscribe
# Each "host" would bind its rank to its own core 0: the same core here, so no binding.
ip netns exec "$h1" mpirun --hostfile "$work/hosts" -np 2 --map-by node --bind-to none --display-map \
  --mca plm_rsh_agent "$work/agent.sh" --mca pml ob1 --mca btl tcp,self \
  --mca btl_tcp_if_include $net.0/24 --mca oob_tcp_if_include $net.0/24 \
  -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM "$@"
