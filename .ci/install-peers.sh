#!/usr/bin/env bash
# Installs the interop peers' toolchains when missing: Debian's golang-go and quic-go 0.29 source
# (golang-github-lucas-clemente-quic-go-dev), used by tests/interop/test_quicgo_interop.py.
# Idempotent and quiet; never fails CI: without apt (or root), the quic-go tests skip with a reason.
set -u

QUIC_GO_SOURCE=/usr/share/gocode/src/github.com/lucas-clemente/quic-go
packages=()
command -v go >/dev/null 2>&1 || packages+=(golang-go)
[ -f "$QUIC_GO_SOURCE/interface.go" ] || packages+=(golang-github-lucas-clemente-quic-go-dev)
[ ${#packages[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-peers: apt-get not available; not installing ${packages[*]}" >&2
    exit 0
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        echo "install-peers: not root and no passwordless sudo; not installing ${packages[*]}" >&2
        exit 0
    fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null 2>&1; then
    "${sudo[@]}" apt-get update -qq >/dev/null 2>&1 || true
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null 2>&1 \
        || echo "install-peers: apt-get could not install ${packages[*]}" >&2
fi
exit 0
