#!/usr/bin/env bash
# Installs the Debian packages govreg needs where they are missing:
# libharfbuzz-subset0 for WeasyPrint's font subsetting, poppler-utils for the
# report tests that render PDF pages (pdftoppm, pdftotext).
set -euo pipefail
need=()
for pkg in libharfbuzz-subset0 libpango-1.0-0 libpangoft2-1.0-0 poppler-utils; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${need[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
