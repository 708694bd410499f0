#!/usr/bin/env bash
# Debian packages the project uses: HarfBuzz's subsetter (WeasyPrint renders about 8x faster
# with it), Chromium for the UI browser test and poppler-utils (pdftoppm) for the invoices'
# page images, DejaVu (the invoice's font: every machine that renders needs the same one, or
# its PDFs differ; docs/operations.md, "Adding render workers") and a Japanese font (IPA
# Gothic) for invoices in Japanese. Installed only where
# apt-get runs as root;
# elsewhere this says what is missing and carries on.
set -u
wanted=(libharfbuzz-subset0 chromium poppler-utils fonts-dejavu-core fonts-ipafont-gothic)
missing=()
for p in "${wanted[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    || echo "warning: could not install ${missing[*]} (PDF rendering will be slower; browser tests need chromium)"
else
  echo "note: not root or no apt-get; missing Debian packages: ${missing[*]}"
fi
exit 0
