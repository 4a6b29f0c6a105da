#!/usr/bin/env bash
# System tools some tests use: tmux (the end-to-end terminal test), bubblewrap (sandbox layer 1), chromium and a font
# (the session report rendered headless), and a single-node SLURM (slurmctld, slurmd, the client commands, munge) for
# the SLURM backend's tests, which tests/clusters.py configures on 127.0.0.1. Installs them where we may (root with apt-get: `apt-get update` once, then one install);
# otherwise the tests that need them skip and say why.
set -u
missing=()
pkgs=()
need() {  # need TOOL PACKAGE
  if ! command -v "$1" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$1" ]; then
    missing+=("$1")
    case " ${pkgs[*]-} " in *" $2 "*) ;; *) pkgs+=("$2") ;; esac
  fi
}
need tmux tmux
need bwrap bubblewrap
need slurmctld slurmctld
need slurmd slurmd
need sbatch slurm-client
need munged munge
need chromium chromium
if ! fc-list 2>/dev/null | grep -q .; then  # no font at all: chromium would draw the report's text as nothing
  missing+=(fonts); pkgs+=(fonts-dejavu-core)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${pkgs[*]} for the tests that need them"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1; } \
    || echo "could not install ${pkgs[*]}: the tests that need them will skip and say so"
  # the packages' own services are not wanted: the tests start their own daemons on free loopback ports
  for svc in slurmctld slurmd munge; do
    command -v systemctl >/dev/null 2>&1 && systemctl disable --now "$svc" >/dev/null 2>&1 || true
  done
else
  echo "not root or no apt-get: ${missing[*]} missing, the tests that need them will skip and say so"
fi
exit 0
