#!/usr/bin/env bash
# Install what clients/go/build.sh needs with apt: the Go toolchain, protoc with the Go
# generators, and Debian's packaged sources of grpc-go and protobuf-go (GOPATH mode, offline).
# Returns at once when everything is installed already; uses sudo when not run as root.
set -euo pipefail

packages=(
  golang-go protobuf-compiler protoc-gen-go protoc-gen-go-grpc
  golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev
)
missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$package")
done
((${#missing[@]})) || exit 0

if ! command -v apt-get >/dev/null; then
  echo "error: the Go client builds against Debian/Ubuntu packages; install: ${missing[*]}" >&2
  exit 1
fi
sudo=()
[[ $(id -u) == 0 ]] || sudo=(sudo)
echo "==> the Go client needs ${#missing[@]} Debian package(s) not installed here; installing them with apt-get now:"
echo "      ${missing[*]}"
echo "    (to skip the Go and Node clients, stop here and run \`make test-python\` instead of \`make test\`)"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
