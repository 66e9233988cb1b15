#!/usr/bin/env bash
# Refreshes the Swagger UI files the core embeds for GET /docs
# (core/docs/assets/) from the npm package swagger-ui-dist.
#   scripts/update-swagger-ui.sh [version]   (default: the newest 5.x)
# Only the files /docs needs are copied; the version lands in
# core/docs/assets/VERSION. Needs npm; nothing else of npm stays behind.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-5}
dst=core/docs/assets
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "swagger-ui-dist@$version" >/dev/null && tar xzf swagger-ui-dist-*.tgz)
pkg=$tmp/package
got=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pkg/package.json" | head -1)

mkdir -p "$dst"
for f in swagger-ui.css swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt \
         favicon-32x32.png favicon-16x16.png LICENSE NOTICE; do
  cp "$pkg/$f" "$dst/$f"
done
# The bundle points at its source map, which is not shipped.
sed -i '/^\/\/# sourceMappingURL=/d' "$dst/swagger-ui-bundle.js"
sed -i '/^\/\*# sourceMappingURL=.*\*\/$/d' "$dst/swagger-ui.css"
echo "$got" > "$dst/VERSION"
echo "swagger-ui-dist $got -> $dst"
