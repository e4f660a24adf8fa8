#!/usr/bin/env bash
# bench/bench_gpu.py on a lent GPU machine that has no network: pack here, run there.
#
# The GPU machine's image has Python 3.12 with torch (CUDA), numpy, scipy, onnxruntime, httpx,
# huggingface-hub, sentencepiece, scikit-learn, pandas ..., but not the service's own
# packages (funasr, gradio, fastapi, av, ...). Their wheels are over the 64 MiB a call may
# carry (av 36 MB and gradio 31 MB zipped), so `pack` installs them for CPython 3.12 into one
# folder, leaves out what no benchmark loads (gradio's browser bundle and Node server, silero's
# other exports), and writes it as bench/out/gpu-site.tar.xz (bench/out/ is git-ignored).
#
#   here (network):   bash bench/gpu_check.sh pack
#   there (the GPU):  bash bench/gpu_check.sh run [bench_gpu.py flags, e.g. --quick]
#       with carry ["bench/out/gpu-site.tar.xz"]; the log and the app's log land in $OUT.
#
# The package set was found by running the CPU smoke check of bench_gpu.py in a clean
# environment holding only the GPU image's packages and these (PY_VERSION=3.11 SITE_TAR=...
# packs for this machine's Python, to try `run` here with `--device cpu`).
set -euo pipefail
cd "$(dirname "$0")/.."

SITE_TAR=${SITE_TAR:-bench/out/gpu-site.tar.xz}
PY_VERSION=${PY_VERSION:-3.12}  # the GPU image's Python (another only to test `run` here)
PACKAGES=(
    av==18.1.0 fastapi==0.165.0 fastapi_offline==1.7.7 starlette==1.10.0 uvicorn==0.54.0
    python-multipart==0.0.34 pydantic==2.14.3 pydantic_core==2.50.4 pydantic-settings==2.16.3
    annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0
    python-dotenv==1.2.4 opentelemetry-api==1.45.3 gradio==6.31.0 gradio_client==2.7.2
    groovy==0.1.2 safehttpx==0.1.7 semantic-version==2.10.0 tomlkit==0.14.0 orjson==3.13.0
    brotli==1.2.1 pydub==0.25.1 pytz==2026.6 hf-gradio==0.4.1 httpx2==2.17.0
    httpcore2==2.17.0 truststore==0.10.5 funasr==1.4.16 kaldiio==2.18.1
    kaldi_native_fbank==1.23.0 torch-complex==0.4.4 hydra-core==1.3.8 omegaconf==2.3.1
    jaconv==0.5.0 soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 silero-vad==6.2.3
    redis==8.1.0 websockets==17.4 sniffio==1.3.1 librosa==0.11.0 RapidFuzz==3.14.6
)
SDIST_ONLY=(antlr4-python3-runtime==4.9.3)  # omegaconf's parser; PyPI has no wheel of it
PLATFORMS=(manylinux_2_35_x86_64 manylinux_2_34_x86_64 manylinux_2_31_x86_64
           manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64
           manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64)

pack() {
    local python=${PYTHON:-.venv/bin/python} work
    work=$(mktemp -d)
    trap "rm -rf '$work'" EXIT
    local target=(--python-version "$PY_VERSION" --implementation cp --only-binary=:all: --no-deps)
    for platform in "${PLATFORMS[@]}"; do target+=(--platform "$platform"); done
    "$python" -m pip download -q "${target[@]}" -d "$work/wheels" "${PACKAGES[@]}"
    "$python" -m pip wheel -q --no-deps -w "$work/wheels" "${SDIST_ONLY[@]}"  # pure Python
    "$python" -m pip install -q "${target[@]}" --no-compile --no-index \
        --find-links "$work/wheels" --target "$work/site" "${PACKAGES[@]}" "${SDIST_ONLY[@]}"
    # Served to browsers only (the benchmark never loads the web page); the folders stay.
    rm -rf "$work"/site/gradio/templates/frontend/{assets,static}/* \
        "$work"/site/gradio/templates/node "$work"/site/gradio/media_assets/{audio,videos}
    # silero: the service's ONNX VAD and funasr's TorchScript one (the reference row).
    find "$work/site/silero_vad/data" -type f -not -name silero_vad.jit \
        -not -name silero_vad.onnx -not -name silero_vad_16k_sequence.onnx -delete
    rm -rf "$work/site/bin"
    mkdir -p "$(dirname "$SITE_TAR")"
    tar -C "$work/site" -cf - . | xz -9 -T2 >"$SITE_TAR"
    du -h "$SITE_TAR"
}

run() {
    local out=${OUT:-bench/out}
    mkdir -p /tmp/site "$out"
    tar -xJf "$SITE_TAR" -C /tmp/site
    export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 GRADIO_ANALYTICS_ENABLED=False \
        HF_HUB_OFFLINE=1
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv || true
    set +e
    python3 -m bench.bench_gpu "$@" 2>&1 | tee "$out/bench_gpu.txt"
    local status=${PIPESTATUS[0]}
    set -e
    local log
    log=$(ls -t bench/out/app-*.log 2>/dev/null | head -1)  # this run's app
    [ -z "$log" ] || cp "$log" "$out/" 2>/dev/null || true
    return "$status"
}

case "${1:-}" in
    pack) pack ;;
    run) shift; run "$@" ;;
    *) echo "usage: bash bench/gpu_check.sh pack | run [bench_gpu.py flags]" >&2; exit 2 ;;
esac
