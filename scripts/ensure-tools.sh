#!/usr/bin/env bash
# Installs the Debian-packaged tools the tests run, when missing (`.ci/run` and `make test` call it):
#   prometheus + promtool (package prometheus): tests/scripts/test_render_dashboard.py starts its own instance.
#   pdftotext, pdftoppm (poppler-utils): the invoice tests read the PDFs back.
#   the invoices' Unicode fonts (fonts-dejavu-core, fonts-droid-fallback): `make run` and the tests render with them.
#   chromium (/usr/bin/chromium): tests/gateway/test_admin_panel.py drives the admin panel in it (Playwright).
# The package's system service is never started: a policy-rc.d refuses it during the install (the tests and
# scripts/render_dashboard.py run their own Prometheus on a free loopback port with a temporary data dir).
# Not root: says what to install and carries on (the tests that need a tool skip, saying why).
# Usage: scripts/ensure-tools.sh [fonts]   (fonts: only what `make run` needs)
set -u
missing=()
if [ "${1:-}" != fonts ]; then
  command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
  command -v pdftotext >/dev/null 2>&1 || missing+=(poppler-utils)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
fi
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
[ -f /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf ] || missing+=(fonts-droid-fallback)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "NOTE: not installed: ${missing[*]}; run: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
  exit 0
fi
policy=/usr/sbin/policy-rc.d
added=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && added=yes
fi
echo "installing ${missing[*]} (apt-get)..."
export DEBIAN_FRONTEND=noninteractive
{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null ||
  echo "WARNING: apt-get install ${missing[*]} failed" >&2
[ -n "$added" ] && rm -f "$policy"
exit 0
