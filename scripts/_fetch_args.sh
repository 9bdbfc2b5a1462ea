# Shared argument handling of the fetch scripts (sourced, not run):
#   FETCH_SUBDIRS=(sub ...); source "$(dirname "$0")/_fetch_args.sh" "$@"
# parses DEST [CACHE], creates DEST/sub... and CACHE (default DEST/.downloads, a hidden folder
# the datasets skip), and sets absolute DEST and CACHE, and PY (the python to use).
if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 DEST [CACHE]" >&2
    exit 2
fi
DEST=$1
CACHE=${2:-$DEST/.downloads}
PY=${PYTHON:-python3}
mkdir -p "$CACHE"
for _sub in "${FETCH_SUBDIRS[@]}"; do mkdir -p "$DEST/$_sub"; done
DEST=$(cd "$DEST" && pwd)
CACHE=$(cd "$CACHE" && pwd)
unset _sub
