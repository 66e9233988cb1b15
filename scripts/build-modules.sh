#!/usr/bin/env bash
# Builds every module under modules/ and sdk/examples/ for this platform and
# packs each into dist/modules/<name>-<version>.chacc.
#   scripts/build-modules.sh [module-dir ...]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_ENABLED=0
goos=$(go env GOOS)
goarch=$(go env GOARCH)
chacc=${CHACC_BIN:-bin/chacc}
[ -x "$chacc" ] || go build -o "$chacc" ./cmd/chacc

dirs=("$@")
if [ ${#dirs[@]} -eq 0 ]; then
  for m in modules/*/module_meta.json sdk/examples/*/module_meta.json; do
    [ -f "$m" ] && dirs+=("$(dirname "$m")")
  done
fi

# field NAME FILE prints the first top-level string field NAME of a manifest.
field() { grep -o "\"$1\"[[:space:]]*:[[:space:]]*\"[^\"]*\"" "$2" | head -1 | sed 's/.*"\([^"]*\)"$/\1/'; }

mkdir -p dist/modules
for dir in "${dirs[@]}"; do
  name=$(field name "$dir/module_meta.json")
  stage="build/modules/$name"
  rm -rf "$stage"
  mkdir -p "$stage/bin/$goos-$goarch"
  go build -trimpath -ldflags="-s -w" -o "$stage/bin/$goos-$goarch/$name" "./$dir"
  cp "$dir/module_meta.json" "$stage/"
  [ -f "$dir/openapi.json" ] && cp "$dir/openapi.json" "$stage/"
  version=$(field version "$dir/module_meta.json")
  rm -f dist/modules/"$name"-*.chacc
  "$chacc" module pack "$stage" -o "dist/modules/$name-$version.chacc"
done
