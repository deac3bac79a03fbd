#!/usr/bin/env bash
# Deploy the tri-task network on a Jetson: check the stack, lint the ONNX for this TensorRT, build
# the engine here, time it, run the camera headless and write the report. See docs/JETSON.md.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: apps/jetson_deploy.sh [options] MODEL.onnx [MODEL.int8.onnx]

Run ON the Jetson, with the ONNX files copied from the host (`edge-mtl export`, `edge-mtl calibrate`).

  MODEL.onnx            FP32 ONNX (built as --precision fp16)
  MODEL.int8.onnx       INT8 Q/DQ ONNX (built as --precision int8 or best); optional

options:
  --out DIR             run folder for the engine, timing cache, JSONs and report (default: runs/jetson)
  --precision P         fp16 | int8 | best (default: int8 when an INT8 ONNX is given, else fp16)
  --dla-core N          build FP16 for DLA core N with GPU fallback (Orin NX / Xavier NX; Orin Nano
                        has none); DLA cannot run Q/DQ models
  --source SRC          camera source for the headless run (default: csi://0)
  --frames N            frames for the bench and the camera run (default: 300)
  --data DIR            also evaluate the engine on this dataset folder (edge-mtl eval)
  --skip-camera         no camera run (bench only)
  --trtexec             also time the ONNX with trtexec (--useSpinWait), log in DIR/trtexec_<tag>.log
  --python PY           the Python that sees JetPack's TensorRT (default: python3)
  -h, --help            this text

Writes DIR/model_<precision>.engine (+ .json sidecar), DIR/trt.cache, DIR/bench_trt_<precision>.json,
DIR/camera_trt_<precision>.json, DIR/power.txt and DIR/report.md (edge-mtl report DIR).
EOF
}

die() {
    echo "jetson_deploy: error: $*" >&2
    exit 1
}

say() {
    echo "jetson_deploy: $*" >&2
}

OUT=runs/jetson
PRECISION=
DLA_CORE=
SOURCE=csi://0
FRAMES=300
DATA=
SKIP_CAMERA=0
TRTEXEC=0
PY=python3
POSITIONAL=()

while (($#)); do
    case "$1" in
        --out) OUT=${2:?--out needs a folder}; shift 2 ;;
        --precision) PRECISION=${2:?--precision needs fp16, int8 or best}; shift 2 ;;
        --dla-core) DLA_CORE=${2:?--dla-core needs a core number}; shift 2 ;;
        --source) SOURCE=${2:?--source needs a value}; shift 2 ;;
        --frames) FRAMES=${2:?--frames needs a number}; shift 2 ;;
        --data) DATA=${2:?--data needs a dataset folder}; shift 2 ;;
        --skip-camera) SKIP_CAMERA=1; shift ;;
        --trtexec) TRTEXEC=1; shift ;;
        --python) PY=${2:?--python needs an interpreter}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        --) shift; POSITIONAL+=("$@"); break ;;
        -*) usage >&2; die "unknown option $1" ;;
        *) POSITIONAL+=("$1"); shift ;;
    esac
done

if ((${#POSITIONAL[@]} < 1 || ${#POSITIONAL[@]} > 2)); then
    usage >&2
    die "give MODEL.onnx and optionally MODEL.int8.onnx"
fi
FP32_ONNX=${POSITIONAL[0]}
INT8_ONNX=${POSITIONAL[1]:-}
for f in "$FP32_ONNX" ${INT8_ONNX:+"$INT8_ONNX"}; do
    [[ -f $f ]] || die "ONNX model $f not found (copy it from the host: edge-mtl export / calibrate)"
done
[[ $FRAMES =~ ^[1-9][0-9]*$ ]] || die "--frames must be a positive integer, got $FRAMES"
[[ -z $DLA_CORE || $DLA_CORE =~ ^[0-9]+$ ]] || die "--dla-core must be 0, 1, ..., got $DLA_CORE"
# DLA runs implicit INT8 only (no Q/DQ graphs), so a DLA build defaults to FP16 on the FP32 ONNX.
PRECISION=${PRECISION:-$([[ -n $INT8_ONNX && -z $DLA_CORE ]] && echo int8 || echo fp16)}
[[ -z $DLA_CORE || $PRECISION == fp16 ]] || die "--dla-core builds FP16 here: DLA cannot run the \
Q/DQ model; for INT8 on DLA run \`edge-mtl build-engine model.onnx --precision int8 --dla-core N --calib SET\`"
case "$PRECISION" in
    fp16) ONNX=$FP32_ONNX ;;
    int8 | best)
        [[ -n $INT8_ONNX ]] || die "--precision $PRECISION needs the INT8 Q/DQ ONNX from \`edge-mtl calibrate\`"
        ONNX=$INT8_ONNX ;;
    *) die "--precision must be fp16, int8 or best, got $PRECISION" ;;
esac

# --- 1. the stack: every missing piece is listed before stopping -----------------------------------
missing=()
command -v "$PY" >/dev/null 2>&1 || die "$PY not found (give the interpreter with --python)"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 8))' 2>/dev/null; then
    missing+=("Python 3.8 or newer for the edge_mtl runtime ($PY is $("$PY" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo unknown)): JetPack 5
      ships 3.8, JetPack 6 3.10, see docs/JETSON.md")
fi
if TRT_VERSION=$("$PY" -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null); then
    say "TensorRT $TRT_VERSION"
else
    TRT_VERSION=
    missing+=("TensorRT Python bindings (import tensorrt): they come with JetPack, e.g. sudo apt install
      python3-libnvinfer (or the nvidia-jetpack meta-package); a virtualenv must be created with
      --system-site-packages to see them; check with: $PY -c 'import tensorrt'")
fi
# cuda.bindings.runtime (cuda-python 12.6.1+, 13.x) or cuda.cudart (12.6.0 and older), as edge_mtl.trt.api reads it
if ! "$PY" -c 'import importlib, sys
for name in ("cuda.bindings.runtime", "cuda.cudart"):
    try:
        importlib.import_module(name)
        sys.exit(0)
    except ImportError:
        pass
sys.exit(1)' 2>/dev/null; then
    missing+=("cuda-python (TensorRT device buffers): pip install cuda-python, with the major version
      of your JetPack's CUDA (see /usr/local/cuda/version.json or nvcc --version)")
fi
GST=$("$PY" -c 'import cv2, re; m = re.search(r"GStreamer:\s*(\S+)", cv2.getBuildInformation()); print(m.group(1) if m else "NO")' 2>/dev/null) || GST=none
if [[ $GST == none ]]; then
    missing+=("OpenCV (import cv2): JetPack's OpenCV (sudo apt install nvidia-opencv, or the
      nvidia-jetpack meta-package) is built with GStreamer; pip's opencv-python wheels are not")
elif [[ $GST != YES ]]; then
    needs_gst=0
    if [[ $SOURCE == csi://* || $SOURCE == *'!'* || $SOURCE == rtsp://* ]]; then
        needs_gst=1
    fi
    if ((needs_gst && !SKIP_CAMERA)); then
        missing+=("OpenCV with GStreamer (cv2.getBuildInformation() says GStreamer: $GST), needed for
      $SOURCE: use JetPack's OpenCV, and pip uninstall opencv-python opencv-python-headless if a pip
      wheel shadows it")
    else
        say "warning: this OpenCV has no GStreamer (csi:// and rtsp:// sources will not open)"
    fi
fi
if command -v edge-mtl >/dev/null 2>&1; then
    EDGE=(edge-mtl)
elif "$PY" -c 'import edge_mtl' 2>/dev/null; then
    EDGE=("$PY" -m edge_mtl.cli)
else
    EDGE=()
    missing+=("edge_mtl: pip install --no-deps -e . in a checkout (see docs/JETSON.md for the rest)")
fi
if ((${#missing[@]})); then
    echo "jetson_deploy: missing on this device:" >&2
    for m in "${missing[@]}"; do
        echo "  - $m" >&2
    done
    exit 1
fi

# --- 2. lint for this TensorRT ---------------------------------------------------------------------
case "$TRT_VERSION" in
    8.[5-9]* | 8.[1-9][0-9]*) TARGET=tensorrt-8.5 ;;  # 8.6 parses everything 8.5 does
    10.*) TARGET=tensorrt-10 ;;
    *) die "TensorRT $TRT_VERSION: edge_mtl builds engines with TensorRT 8.5-10.x" ;;
esac
mkdir -p "$OUT"
say "check-onnx $ONNX for $TARGET"
"${EDGE[@]}" check-onnx "$ONNX" --target "$TARGET"
if [[ -n $DLA_CORE ]]; then
    "${EDGE[@]}" check-onnx "$ONNX" --target dla --allow-gpu-fallback
fi

# --- 3. power mode (part of every figure), engine build ------------------------------------------
{
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -n)"
    if [[ -r /etc/nv_tegra_release ]]; then head -n 1 /etc/nv_tegra_release; fi
    if command -v nvpmodel >/dev/null 2>&1; then nvpmodel -q 2>&1 || true; fi
    if command -v jetson_clocks >/dev/null 2>&1; then jetson_clocks --show 2>&1 || true; fi
} >"$OUT/power.txt"
say "power mode and clocks recorded in $OUT/power.txt"

ENGINE=$OUT/model_$PRECISION${DLA_CORE:+_dla$DLA_CORE}.engine
TAG=trt_$PRECISION${DLA_CORE:+_dla$DLA_CORE}
build=(build-engine "$ONNX" --out "$ENGINE" --precision "$PRECISION" --timing-cache "$OUT/trt.cache")
if [[ -n $DLA_CORE ]]; then
    build+=(--dla-core "$DLA_CORE")
fi
say "building $ENGINE (minutes on a Jetson; the timing cache makes rebuilds faster)"
"${EDGE[@]}" "${build[@]}"

# --- 4. measure --------------------------------------------------------------------------------------
"${EDGE[@]}" bench --model "$ENGINE" --backend tensorrt --frames "$FRAMES" --json "$OUT/bench_$TAG.json"
if ((TRTEXEC)); then
    TRTEXEC_BIN=$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)
    [[ -x $TRTEXEC_BIN ]] || die "trtexec not found (JetPack puts it in /usr/src/tensorrt/bin)"
    flags=(--fp16)
    if [[ $PRECISION != fp16 ]]; then
        flags+=(--int8)
    fi
    if [[ -n $DLA_CORE ]]; then
        flags+=("--useDLACore=$DLA_CORE" --allowGPUFallback)
    fi
    say "cross-check: $TRTEXEC_BIN --onnx=$ONNX ${flags[*]} --useSpinWait > $OUT/trtexec_$TAG.log"
    "$TRTEXEC_BIN" "--onnx=$ONNX" "${flags[@]}" --useSpinWait >"$OUT/trtexec_$TAG.log" 2>&1 \
        || die "trtexec failed, see $OUT/trtexec_$TAG.log"
    grep -E "Throughput|Latency|GPU Compute Time" "$OUT/trtexec_$TAG.log" >&2 || true
fi
if [[ -n $DATA ]]; then
    "${EDGE[@]}" eval "$ENGINE" --data "$DATA" --backend tensorrt --json "$OUT/eval_$TAG.json"
fi
if ((!SKIP_CAMERA)); then
    "${EDGE[@]}" camera --source "$SOURCE" --model "$ENGINE" --backend tensorrt --headless \
        --max-frames "$FRAMES" --bench-json "$OUT/camera_$TAG.json"
fi

# --- 5. report ---------------------------------------------------------------------------------------
"${EDGE[@]}" report "$OUT"
say "done: $OUT/report.md"
