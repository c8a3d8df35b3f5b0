#!/usr/bin/env bash
# Builds and checks the CUDA backend on a machine with an NVIDIA GPU and none of the GUI
# libraries: unpacks the C packages carried in .device/*.deb (cJSON, libunistring, libjpeg)
# into a local prefix, configures a GUI-less, BLAS-less CUDA release build, runs the `gpu`
# test suite and `setok bench ops|llm|unet|vision --device cuda` (LLaMA-7B shape, SD-1.5 U-Net
# with CFG batch 2 and the VAE decode at 512 x 512, CLIP ViT-L/14-336), and prints a table
# last.
#
#   tests/gpu/run-on-gpu-machine.sh [OUT_DIR]     (default: $OUT, else ./gpu-out)
#
# OUT_DIR receives eight files: summary.txt (the table), build.log, gpu-tests.log, bench.log
# and bench-{ops,llm,unet,vision}.json. DEADLINE (seconds, default 390) bounds the whole run:
# benchmarks are cut short or skipped so that the summary is always written. GPU_ARCH
# (default: meson's gpu_arch) picks the SASS targets. Without a GPU it stops after the build
# with "no GPU" and exit status 77.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-${OUT:-$PWD/gpu-out}}
DEADLINE=${DEADLINE:-390}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
START=$SECONDS
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
left() { echo $((DEADLINE - (SECONDS - START))); }

# --- environment ---
export PATH="$PATH:/usr/local/cuda/bin"
say "== machine"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 |
    sed 's/^/gpu: /' | tee -a "$SUMMARY"
else
  say "gpu: nvidia-smi not found"
fi
say "nvcc: $(nvcc --version 2>/dev/null | tail -1)"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
say "meson $(meson --version), $(nproc) cores, commit $commit"

# --- the carried C packages, unpacked into a local prefix (never into /) ---
PREFIX="$PWD/.device/root"
if ls .device/*.deb >/dev/null 2>&1; then
  rm -rf "$PREFIX"
  for f in .device/*.deb; do dpkg -x "$f" "$PREFIX" || { say "cannot unpack $f"; exit 1; }; done
  # Debian's .pc files name /usr/lib; point them at the prefix. Headers come through
  # C_INCLUDE_PATH, searched like system headers (no warnings from them), before /usr/include.
  lib="$PREFIX/usr/lib/x86_64-linux-gnu"
  sed -i "s|^libdir=/usr|libdir=$PREFIX/usr|" "$lib"/pkgconfig/*.pc
  export PKG_CONFIG_PATH="$lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  inc="$PREFIX/usr/include:$PREFIX/usr/include/x86_64-linux-gnu"
  export C_INCLUDE_PATH="$inc${C_INCLUDE_PATH:+:$C_INCLUDE_PATH}"
  export LIBRARY_PATH="$lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
  export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  say "packages: $(cd .device && ls *.deb | tr '\n' ' ')-> $PREFIX"
else
  say "packages: none in .device/ (using the system's)"
fi

# --- build (a build folder kept from an earlier run is reused) ---
BUILD=build-gpu
OPTS=(-Dgui=disabled -Dblas=disabled -Dcuda=enabled -Dbuildtype=release)
[ -n "${GPU_ARCH:-}" ] && OPTS+=("-Dgpu_arch=$GPU_ARCH")
{
  if [ -f "$BUILD/build.ninja" ]; then
    meson configure "$BUILD" "${OPTS[@]}"
    # meson does not record nvcc's header dependencies: rebuild the CUDA objects when a
    # header they may include changed since the last link
    if [ -n "$(find engine -newer "$BUILD/engine/libsetok.so" \( -name '*.h' -o -name '*.cuh' \) \
               2>/dev/null | head -1)" ]; then
      touch engine/cuda/*.cu
    fi
  else
    meson setup "$BUILD" "${OPTS[@]}"
  fi
} >"$OUT/build.log" 2>&1 ||
  { tail -30 "$OUT/build.log"; say "FAIL: meson setup (build.log)"; exit 1; }
t0=$SECONDS
ninja -C "$BUILD" -j "$(nproc)" >>"$OUT/build.log" 2>&1 ||
  { tail -40 "$OUT/build.log"; say "FAIL: build (build.log)"; exit 1; }
say "build: ok in $((SECONDS - t0)) s, $(grep -c 'Compiling Cuda' "$OUT/build.log") CUDA objects"
SETOK="$BUILD/src/setok"

# Resident memory (KiB) of a command, written to bench.log with its output.
rss() {
  python3 - "$@" <<'EOF' >>"$OUT/bench.log" 2>&1
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print("$", " ".join(sys.argv[1:]), "-> exit", r.returncode)
print(r.stdout + r.stderr, end="")
print("max RSS %d KiB" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
EOF
}
: >"$OUT/bench.log"
rss "$SETOK" --version
version=$("$SETOK" --version 2>&1)
say "$(echo "$version" | grep '^cuda:')"
say "RSS of setok --version: $(grep -m1 'max RSS' "$OUT/bench.log" | awk '{print $3}') KiB"
if ! echo "$version" | grep -q '^cuda: runtime'; then
  say "no GPU: the build is done; stopping before the GPU suite and the benchmarks"
  exit 77
fi
rss "$SETOK" tokens data/samples/scene-14.png --device cuda
say "RSS of setok tokens --device cuda: $(grep 'max RSS' "$OUT/bench.log" | tail -1 |
  awk '{print $3}') KiB"

# --- the gpu suite ---
t0=$SECONDS
timeout $(( $(left) - 60 > 60 ? $(left) - 60 : 60 )) \
  meson test -C "$BUILD" --suite gpu --num-processes 4 --print-errorlogs >"$OUT/gpu-tests.log" 2>&1
gpu_rc=$?
cat "$BUILD/meson-logs/testlog.txt" >>"$OUT/gpu-tests.log" 2>/dev/null
say "gpu suite: exit $gpu_rc in $((SECONDS - t0)) s; $(grep -E '^(Ok|Fail|Skipped|Timeout):' \
  "$OUT/gpu-tests.log" | head -4 | tr -s ' ' | tr '\n' ' ')"

# --- benchmarks, each bounded by what is left ---
bench() { # suite, seconds it may take at most
  local s=$1 budget=$2 l
  l=$(( $(left) - 30 ))
  [ "$l" -lt "$budget" ] && budget=$l
  if [ "$budget" -lt 20 ]; then
    echo "== bench $s skipped: out of time" >>"$OUT/bench.log"
    return
  fi
  echo "== bench $s (at most $budget s)" >>"$OUT/bench.log"
  timeout "$budget" "$SETOK" bench "$s" --device cuda --min-time 0.2 --json \
    >"$OUT/bench-$s.json" 2>>"$OUT/bench.log"
  echo "exit $?" >>"$OUT/bench.log"
}
bench llm 200 # in order of the targets' weight: what is cut short for time comes last
bench unet 120
bench vision 90
bench ops 90

# --- the table ---
{
  python3 tests/gpu/summary.py "$OUT"
  echo "== done in $((SECONDS - START)) s; gpu suite exit $gpu_rc"
} 2>&1 | tee -a "$SUMMARY"
exit $gpu_rc
