#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one script (CI has no GPU; run it where one is lent):
#   1. the tests marked `cuda` (bf16 forward against the CPU, bf16 training steps);
#   2. the network's speed and peak GPU memory (benchmarks/model_speed.py --device cuda);
#   3. `tlt-tracker demo --method tlt` and a timed `tlt-tracker track` of the demo pair on the GPU, per method
#      (the whole call: reading, registration, pair field, network, refinement).
# Usage, from the repository root: bash benchmarks/gpu_checks.sh [OUTDIR]  (default: $OUT, else gpu_checks_out)
# Needs python3 with torch (CUDA), numpy, scipy, tqdm and SimpleITK importable; the repository goes on PYTHONPATH.
set -uo pipefail
out=${1:-${OUT:-gpu_checks_out}}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
TIMEFORMAT='%R s'
status=0
{ nvidia-smi -L; python3 -c "import torch, SimpleITK as s; print('torch', torch.__version__, 'cuda',
torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '-', 'SimpleITK', s.Version_VersionString())"
  nproc; } 2>&1 | tee "$out/machine.txt"
echo "== 1. tests marked cuda"
timeout 300 python3 -m pytest -q -m cuda -p no:cacheprovider -rs Testing/test_model.py Testing/test_training.py 2>&1 \
  | tee "$out/pytest_cuda.txt" || status=1
echo "== 2. network speed on the GPU"
timeout 240 python3 benchmarks/model_speed.py --device cuda --json "$out/model_speed.json" 2>&1 \
  | tee "$out/model_speed.txt" || status=1
echo "== 3. demo and track with the network on the GPU"
demo=$(mktemp -d)
timeout 300 python3 -m TLTTrackerLib.cli demo --out "$demo" --method tlt 2>&1 | tee "$out/demo_tlt.txt" || status=1
for method in tlt tlt+refine auto; do
  for run in 1 2; do
    echo "track --method $method --device cuda, run $run:"
    { time timeout 300 python3 -m TLTTrackerLib.cli -q track "$demo/baseline.nii.gz" "$demo/followup.nii.gz" \
        --lesions "$demo/lesions.json" --method "$method" --device cuda --out "$demo/r_${method}_$run.json"; } 2>&1 \
      || status=1
  done
done > "$out/track_cuda.txt" 2>&1  # not piped: a pipeline's subshell would lose status=1
cat "$out/track_cuda.txt"
python3 - "$demo" "$out/track_points.txt" <<'EOF' || status=1
import json, sys
from pathlib import Path
import numpy as np
demo, dest = Path(sys.argv[1]), Path(sys.argv[2])
truth = {x["id"]: np.array(x["center"], float) for x in json.loads((demo / "followup_truth.json").read_text())["lesions"]}
lines = []
for f in sorted(demo.glob("r_*_1.json")):
    res = json.loads(f.read_text())
    lines.append(f"{f.stem}: timing_s {res['timing_s']}")
    for les in res["lesions"]:
        err = np.linalg.norm(np.array(les["followup_center"], float) - truth[les["id"]])
        lines.append(f"  {les['id']} error {err:.2f} mm confidence {les['confidence']} flags {les['flags']}")
dest.write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
echo "gpu checks: $([ $status = 0 ] && echo all ran || echo SOME FAILED)"
exit $status
