#!/usr/bin/env bash
# Runs the GPU checks on a machine with an NVIDIA GPU and no GLib/GTK: unpacks
# the cJSON packages carried in .device/, builds a GUI-less CUDA release build,
# runs the `gpu` suite, the `reference` suite (its CUDA cases run when a GPU is
# present) and `setok bench ops|vision|cluster|llm|unet`, and
# writes logs and benchmark JSON to $OUT (default: ./gpu-out). Prints a short
# table last.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
if ls .device/*.deb >/dev/null 2>&1; then
  for f in .device/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
export PATH="$PATH:/usr/local/cuda/bin"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"

meson setup build-gpu --wipe -Dgui=disabled -Dcuda=enabled -Dblas=auto \
  -Dbuildtype=release >"$OUT/setup.log" 2>&1 || { tail -30 "$OUT/setup.log"; exit 1; }
ninja -C build-gpu -j "$(nproc)" >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
./build-gpu/src/setok --version | tee "$OUT/version.txt"

meson test -C build-gpu --suite gpu --num-processes 4 --print-errorlogs >"$OUT/gpu-tests.log" 2>&1
gpu_rc=$?
cat build-gpu/meson-logs/testlog.txt >"$OUT/gpu-testlog.txt" 2>/dev/null
meson test -C build-gpu --suite reference --num-processes 4 --print-errorlogs \
  >"$OUT/reference-tests.log" 2>&1
echo "reference suite rc $?" >>"$OUT/reference-tests.log"

./build-gpu/src/setok bench ops --device cuda --dtype f16 --json >"$OUT/bench-cuda-f16.json"
./build-gpu/src/setok bench ops --device cuda --dtype f32 --json >"$OUT/bench-cuda-f32.json"
./build-gpu/src/setok bench ops --device cpu --json >"$OUT/bench-cpu.json"
./build-gpu/src/setok bench vision --device cuda --dtype f16 --json >"$OUT/bench-vision-cuda.json"
./build-gpu/src/setok bench cluster --json >"$OUT/bench-cluster-cpu.json"
./build-gpu/src/setok bench llm --device cuda --dtype f16 --json >"$OUT/bench-llm-cuda.json"
./build-gpu/src/setok bench unet --device cuda --dtype f16 --json >"$OUT/bench-unet-cuda.json"

echo "== gpu suite (rc $gpu_rc) =="
tail -8 "$OUT/gpu-tests.log"
echo "== worst error per op and dtype =="
grep -hE '^(ok|FAIL) ' "$OUT/gpu-testlog.txt" |
  awk '{k=$2" "$3; e=$0; sub(/.*err /,"",e); split(e,a," "); if (!(k in m) || a[1]+0 > m[k]+0) m[k]=a[1]}
       END {for (k in m) print k, m[k]}' | sort
for f in "$OUT"/bench-*.json; do
  echo "== $(basename "$f") =="
  python3 -c 'import json,sys
d=json.load(open(sys.argv[1])); print(d["device"], d["dtype"])
for r in d["results"]:
    rate = ("%.1f GFLOP/s" % r["gflops"] if "gflops" in r else
            "%.1f GB/s" % r["gb_per_s"] if "gb_per_s" in r else
            "%.3f TFLOP/s" % r["tflops"] if "tflops" in r else "")
    direct = " | %s %.1f GFLOP/s" % (r["direct"], r["direct_gflops"]) if "direct" in r else ""
    print("%-10s %-28s %9.3f ms %s%s" % (r.get("op", r.get("model")), r.get("shape", ""),
                                        r["ms"], rate, direct))' "$f"
done
exit $gpu_rc
