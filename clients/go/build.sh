#!/usr/bin/env bash
# Build voxgate-go offline, in GOPATH mode, against Debian's Go packages in /usr/share/gocode
# (install them with clients/go/install-toolchain.sh). Usage: clients/go/build.sh OUT_DIR
#
# OUT_DIR becomes a GOPATH workspace: src/voxgate/gen/ holds the code protoc generates from
# protos/, src/voxgate/{client,cmd}/ a copy of the sources here plus clients/service_config.json
# (go:embed only reads files beside the package), bin/voxgate-go the program, and cache/ Go's
# build cache unless GOCACHE is set.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$(mkdir -p "${1:?usage: build.sh OUT_DIR}" && cd "$1" && pwd)
src=$out/src/voxgate

unformatted=$(gofmt -l "$repo/clients/go")
if [[ -n $unformatted ]]; then
  echo "error: not gofmt-formatted (run gofmt -w on them): $unformatted" >&2
  exit 1
fi

rm -rf "$src"
mkdir -p "$src"
cp -R "$repo/clients/go/client" "$repo/clients/go/cmd" "$src/"
cp "$repo/clients/service_config.json" "$src/client/"

# M options give each proto its Go import path (voxgate/speech/v1/speech.proto ->
# voxgate/gen/speech/v1, package speechv1), so the protos need no Go-specific option.
protos=()
mappings=()
while IFS= read -r proto; do
  dir=${proto%/*}                                   # voxgate/speech/v1
  name=${dir#voxgate/}                              # speech/v1
  protos+=("$proto")
  mappings+=("M$proto=voxgate/gen/$name;${name//\//}")
done < <(cd "$repo/protos" && find voxgate -name '*.proto' | sort)
options=$(IFS=,; echo "${mappings[*]}")
protoc -I "$repo/protos" \
  --go_out="$out/src" --go_opt="$options" \
  --go-grpc_out="$out/src" --go-grpc_opt="$options" \
  "${protos[@]}"

export GO111MODULE=off GOPATH="$out:/usr/share/gocode" GOFLAGS= GOCACHE=${GOCACHE:-$out/cache}
go vet voxgate/client voxgate/cmd/...
go build -o "$out/bin/voxgate-go" voxgate/cmd/voxgate-go
echo "built $out/bin/voxgate-go"
