#!/usr/bin/env bash
# System tools some tests use (tmux for the end-to-end terminal test, bubblewrap for sandbox layer 1).
# Installs them where we may (root with apt-get); otherwise the tests that need them skip with the reason.
set -u
missing=()
for tool in tmux bwrap; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0
pkgs=()
for tool in "${missing[@]}"; do
  case "$tool" in
    bwrap) pkgs+=(bubblewrap) ;;
    *) pkgs+=("$tool") ;;
  esac
done
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${pkgs[*]} for the tests that need them"
  (apt-get install -y -qq "${pkgs[@]}" >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "${pkgs[@]}" >/dev/null 2>&1; }) \
    || echo "could not install ${pkgs[*]}: the tests that need them will skip and say so"
else
  echo "not root or no apt-get: ${pkgs[*]} missing, the tests that need them will skip and say so"
fi
exit 0
