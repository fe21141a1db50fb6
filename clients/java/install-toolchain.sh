#!/usr/bin/env bash
# Install what clients/java/build.sh needs with apt: a JDK, protoc with grpc-java's generator,
# Debian's grpc-java 1.41 and the runtime jars it does not pull in itself (protobuf-java, netty,
# guava, perfmark, gson), and javax.annotation-api, only to compile the stubs' @Generated.
# Everything lands in /usr/share/java; nothing comes from Maven Central. Says what it installs,
# returns at once when everything is there, uses sudo when not run as root.
set -euo pipefail

packages=(
  protobuf-compiler protobuf-compiler-grpc-java-plugin
  libgrpc-java libprotobuf-java libnetty-java libguava-java libperfmark-java libgoogle-gson-java
  libgeronimo-annotation-1.3-spec-java
)
missing=()
# Any JDK 11+ will do (Debian's default is openjdk-17); only ask for one when javac is absent.
command -v javac >/dev/null || missing+=(default-jdk-headless)
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$package")
done
((${#missing[@]})) || exit 0

if ! command -v apt-get >/dev/null; then
  echo "error: the Java client builds against Debian/Ubuntu packages; install: ${missing[*]}" >&2
  exit 1
fi
sudo=()
[[ $(id -u) == 0 ]] || sudo=(sudo)
echo "installing with apt: ${missing[*]}"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
