#!/usr/bin/env bash
# One short GPU check (at most 9 minutes on a CUDA machine) that settles the GPU rows of the
# benchmarks, each printed beside the CPU figure measured in the same run:
#   1. nnU-Net v2 on STS MR (benchmarks/nnunet_sts.py): plan + preprocess, fold 0 of 5 trained for
#      NNUNET_EPOCHS epochs x 250 iterations on the GPU (3d_fullres, nnUNetTrainer), out-of-fold Dice /
#      HD95 of fold 0's 10-11 held-out cases, iterations/s and peak GPU memory; CPU_ITERS training
#      iterations of fold 1 on the CPU first (the CPU iterations/s);
#   2. the MONAI segmenter (benchmarks/segmentation.py, sts_segmentation.yaml's network) on the
#      same 2 mm MR grids, CPU then GPU: iterations/s, s/case inference, peak GPU memory;
#   3. the deep biomarker network (benchmarks/deep_model.py): CPU, GPU fp32, GPU mixed precision.
# Fails fast (exit 2) with the reason where no GPU is visible or a package is missing.
#
#   bash benchmarks/gpu_check.sh                     # STS NIfTI at ../shared or ./shared/data/sts/nifti
#   STS_ROOT=/data/sts/nifti NNUNET_EPOCHS=3 OUT_DIR=/tmp/gpu bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
die() { echo "gpu_check: $*" >&2; exit 2; }
start=$SECONDS

command -v nvidia-smi >/dev/null 2>&1 || die "nvidia-smi not found: no NVIDIA driver on this machine; run on a CUDA machine"
nvidia-smi -L 2>/dev/null | grep -q "GPU" || die "nvidia-smi lists no GPU (nvidia-smi -L); run on a CUDA machine"
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null || die \
  "torch.cuda.is_available() is False in $($PY -c 'import torch; print("torch", torch.__version__)' 2>&1): install \
the torch build for this machine's CUDA (constraints.txt pins the CPU build), then nnunetv2 and monai"
$PY -c "import nnunetv2, monai" 2>/dev/null || die "nnunetv2 or monai is not importable by $PY: run make setup \
(or pip install nnunetv2 monai) in this environment"

STS=""
for c in "${STS_ROOT:-}" ../shared/data/sts/nifti shared/data/sts/nifti; do
  if [ -n "$c" ] && [ -d "$c" ]; then STS=$c; break; fi
done
[ -n "$STS" ] || die "STS NIfTI layout (STS_*/MR_T1_image.nii.gz) not found: set STS_ROOT"
OUT=${OUT_DIR:-/tmp/acceflow_gpu_check}
THREADS=${THREADS:-$(( $(nproc) < 8 ? $(nproc) : 8 ))}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
# nnU-Net compiles its network with torch.compile on CUDA by default (1-2 min before the first
# iteration): off for this short check, so its iterations/s is a lower bound (NNUNET_COMPILE=t: on)
export nnUNet_compile=${NNUNET_COMPILE:-f}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch, nnunetv2, monai; from importlib.metadata import version as v; \
print('torch', torch.__version__, 'CUDA', torch.version.cuda, '| nnunetv2', v('nnunetv2'), '| monai', monai.__version__)"
status=0

echo "== 1/3 nnU-Net v2, STS MR, fold 0 of 5, ${NNUNET_EPOCHS:-3} epochs x 250 iterations (CPU: ${CPU_ITERS:-3} iterations)"
timeout 390 $PY benchmarks/nnunet_sts.py --sts "$STS" --out "$OUT" --epochs "${NNUNET_EPOCHS:-3}" \
  --cpu-iterations "${CPU_ITERS:-3}" --threads "$THREADS" || { echo "nnU-Net check FAILED (rc $?)"; status=1; }
echo "   (CPU reference, 2 shared cores: MONAI UNet out-of-fold Dice MR 0.45, PET 0.64 - sts_segmentation.yaml)"

echo "== 2/3 MONAI segmenter (benchmarks/segmentation.py), 8 MR cases: CPU, then GPU   [$((SECONDS - start)) s]"
if ls "$OUT"/sts/preprocessed/*__MR >/dev/null 2>&1; then
  timeout 60 $PY benchmarks/segmentation.py --results "$OUT/sts" --modality MR --iterations 10 --device cpu \
    --threads "$THREADS" || { echo "MONAI CPU check FAILED"; status=1; }
  timeout 60 $PY benchmarks/segmentation.py --results "$OUT/sts" --modality MR --iterations 200 --device cuda \
    --threads "$THREADS" || { echo "MONAI GPU check FAILED"; status=1; }
else
  echo "no 2 mm MR grids under $OUT/sts/preprocessed (step 1 failed before writing them)"; status=1
fi

echo "== 3/3 deep biomarker network (benchmarks/deep_model.py): CPU, GPU fp32, GPU AMP   [$((SECONDS - start)) s]"
timeout 60 $PY benchmarks/deep_model.py --network densenet121 --crop 64 --threads "$THREADS" \
  || { echo "deep model check FAILED"; status=1; }
echo "gpu_check: done in $((SECONDS - start)) s (status $status)"
exit $status
