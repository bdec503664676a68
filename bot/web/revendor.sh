#!/usr/bin/env bash
# Re-vendor the terminal's browser libraries from npm at pinned versions (no CDN at run time).
# Usage: bash bot/web/revendor.sh   (needs npm; writes bot/web/static/vendor/)
set -euo pipefail
XTERM_VERSION=6.0.0
FIT_VERSION=0.11.0
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/static/vendor"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack --silent "@xterm/xterm@$XTERM_VERSION" "@xterm/addon-fit@$FIT_VERSION" >/dev/null
mkdir xterm fit
tar -xzf "xterm-xterm-$XTERM_VERSION.tgz" -C xterm
tar -xzf "xterm-addon-fit-$FIT_VERSION.tgz" -C fit
rm -rf "$out"
mkdir -p "$out/xterm" "$out/addon-fit"
cp xterm/package/lib/xterm.js xterm/package/css/xterm.css xterm/package/LICENSE "$out/xterm/"
cp fit/package/lib/addon-fit.js fit/package/LICENSE "$out/addon-fit/"
printf '@xterm/xterm %s\n@xterm/addon-fit %s\n' "$XTERM_VERSION" "$FIT_VERSION" > "$out/VERSIONS"
echo "vendored into $out"
