#!/usr/bin/env bash
# Conversion benchmark (issue: data package conversion).
#
# Generates a DMF package with one CSV entity of 1,200,000 rows x 15 columns
# (~200 MB: commas, quotes, quoted line breaks, non-ASCII, empty fields, BOM,
# CRLF) and measures, in the same run, the median of RUNS runs of:
#   1. unzip -p pkg.zip > /dev/null              (the decompression floor)
#   2. exportbridge convert pkg.zip --out DIR    (zip -> JSON file, SHA-256, fsync)
#   3. mlr --icsv --ojson cat < extracted.csv    (Miller's CSV -> JSON)
# printing MB/s of CSV and peak RSS for each, and the ratios. It then
# converts a package a quarter the size to show that peak RSS does not grow
# with the file.
#
# Usage: bench/convert.sh [ROWS]     (env RUNS=3, OUT=bench/out)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1200000}
RUNS=${RUNS:-3}
OUT=${OUT:-bench/out}
mkdir -p "$OUT"

need() { # command, Debian package
  command -v "$1" >/dev/null 2>&1 && return
  echo "installing $2 ..." >&2
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null && apt-get install -y -qq "$2" >/dev/null
  else
    echo "need $1: run 'sudo apt-get install $2'" >&2; exit 1
  fi
}
need unzip unzip
need mlr miller
[ -x /usr/bin/time ] || need /usr/bin/time time

go build -o "$OUT/exportbridge" ./cmd/exportbridge
go build -o "$OUT/genpkg" ./bench/genpkg

PKG="$OUT/pkg-$ROWS.zip"
SMALL="$OUT/pkg-$((ROWS / 4)).zip"
[ -f "$PKG" ] || "$OUT/genpkg" -out "$PKG" -rows "$ROWS"
[ -f "$SMALL" ] || "$OUT/genpkg" -out "$SMALL" -rows "$((ROWS / 4))"
CSV="$OUT/customers.csv"
unzip -p "$PKG" "Customers V3.csv" > "$CSV"
BYTES=$(stat -c %s "$CSV")

# run NAME CMD...: median wall seconds and max peak RSS (KB) over RUNS runs.
run() {
  local name=$1; shift
  local times=() rss=0
  for _ in $(seq "$RUNS"); do
    rm -rf "$OUT/json"
    local line
    /usr/bin/time -o "$OUT/time.txt" -f "%e %M" "$@" >/dev/null 2>"$OUT/stderr.txt" || { cat "$OUT/stderr.txt" >&2; exit 1; }
    line=$(tail -1 "$OUT/time.txt")
    times+=("${line% *}")
    local r=${line#* }
    (( r > rss )) && rss=$r
  done
  local med
  med=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
  eval "${name}_T=$med; ${name}_RSS=$rss"
}

run UNZIP sh -c "unzip -p '$PKG' 'Customers V3.csv' > /dev/null"
run EB "$OUT/exportbridge" convert "$PKG" --out "$OUT/json"
JSON_BYTES=$(stat -c %s "$OUT/json/Customers_V3.json" 2>/dev/null || echo 0)
run MLR sh -c "mlr --icsv --ojson cat < '$CSV' > /dev/null"
run SMALL "$OUT/exportbridge" convert "$SMALL" --out "$OUT/json"

mbs() { awk -v b="$BYTES" -v t="$1" 'BEGIN { printf "%.0f", b / 1e6 / t }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo
echo "CSV: $ROWS rows, $((BYTES / 1000000)) MB ($BYTES bytes); JSON out: $((JSON_BYTES / 1000000)) MB; $(nproc) cores; median of $RUNS runs"
printf '%-36s %8s %10s %12s\n' "" "seconds" "MB/s CSV" "peak RSS MB"
printf '%-36s %8s %10s %12s\n' "unzip -p (decompression floor)" "$UNZIP_T" "$(mbs "$UNZIP_T")" "$((UNZIP_RSS / 1024))"
printf '%-36s %8s %10s %12s\n' "exportbridge convert" "$EB_T" "$(mbs "$EB_T")" "$((EB_RSS / 1024))"
printf '%-36s %8s %10s %12s\n' "mlr --icsv --ojson cat" "$MLR_T" "$(mbs "$MLR_T")" "$((MLR_RSS / 1024))"
printf '%-36s %8s %10s %12s\n' "exportbridge convert, 1/4 size" "$SMALL_T" "-" "$((SMALL_RSS / 1024))"
echo
echo "exportbridge / unzip -p : $(ratio "$EB_T" "$UNZIP_T")x time   (target <= 1.00, goal 0.85)"
echo "mlr / exportbridge      : $(ratio "$MLR_T" "$EB_T")x faster  (target >= 5)"
echo "peak RSS                : $((EB_RSS / 1024)) MB full size vs $((SMALL_RSS / 1024)) MB at 1/4 size (target <= 32, goal <= 16)"
