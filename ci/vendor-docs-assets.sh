#!/usr/bin/env bash
# Vendor the Swagger UI assets served at /schema/assets (service/api/static/) from the npm
# package `swagger-ui-dist` at a pinned version, so the documentation page never loads
# anything from a CDN. Run it again after changing VERSION/INTEGRITY; commit the result.
#
#   bash ci/vendor-docs-assets.sh          # (re)write service/api/static/
#   bash ci/vendor-docs-assets.sh --check  # exit 1 when the committed files differ
#
# The tarball comes through the npm client (which verifies it against the registry's
# integrity) and is checked again here against the pinned sha512. Source-map comments are
# stripped: the maps are not vendored, and a browser must not ask for files we do not serve.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"
LOG_PREFIX=vendor-docs

PACKAGE="swagger-ui-dist"
VERSION="5.35.0"
INTEGRITY="sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ=="
FILES=(swagger-ui-bundle.js swagger-ui-standalone-preset.js swagger-ui.css favicon-32x32.png LICENSE NOTICE
  swagger-ui-bundle.js.LICENSE.txt swagger-ui-standalone-preset.js.LICENSE.txt)
DEST="$REPO_ROOT/service/api/static"

command -v npm >/dev/null || die "npm is required (Debian: apt-get install -y npm)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
tarball="$work/$PACKAGE-$VERSION.tgz"
[ -f "$tarball" ] || die "npm pack did not produce $tarball"
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
[ "$actual" = "$INTEGRITY" ] || die "integrity mismatch for $PACKAGE@$VERSION: $actual"
tar -xzf "$tarball" -C "$work"

out="$work/out"
mkdir -p "$out"
for file in "${FILES[@]}"; do
  case "$file" in
    *.js | *.css) sed -E '/^\/[*\/]# sourceMappingURL=.*$/d' "$work/package/$file" >"$out/$file" ;;
    *) cp "$work/package/$file" "$out/$file" ;;
  esac
done
printf '%s@%s\n%s\n' "$PACKAGE" "$VERSION" "$INTEGRITY" >"$out/VERSION"

if [ "${1:-}" = "--check" ]; then
  diff -r "$out" "$DEST" >/dev/null || die "service/api/static differs from $PACKAGE@$VERSION; rerun $0"
  log "service/api/static matches $PACKAGE@$VERSION"
  exit 0
fi
rm -rf "$DEST"
mkdir -p "$DEST"
cp "$out"/* "$DEST/"
log "vendored $PACKAGE@$VERSION into service/api/static ($(du -sh "$DEST" | cut -f1))"
