#!/usr/bin/env bash
# Prepare this checkout for `python -m bench.gpu` on a GPU machine that has Python 3.12, CUDA
# PyTorch and nothing else of ours (no network there): download, here, the wheels it lacks into
# .whl/ and the GL loader packages into .gl/ (both ignored by git). Then run on that machine, from
# the repository root, with .whl and .gl carried along:
#
#   for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
#   export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
#   PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 python3 -m bench.gpu --budget 500 --out "$OUT/gpu"
#
# (--budget: a lent machine gives one command 10 minutes; the report is rewritten after every part,
# so even a run stopped at the limit brings back what it finished.)
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
grep -qx '/.gl/' .git/info/exclude 2>/dev/null || echo /.gl/ >> .git/info/exclude
mkdir -p .whl .gl
# versions CI proves (.ci/constraints.txt), for CPython 3.12 on x86-64 Linux
pins=$(grep -iE '^(slangtorch|moderngl|glcontext|pygltflib|pypng|pytorch-msssim|glfw|pyglm|dataclasses-json|deprecated|marshmallow|typing-inspect|bc7enc-py|texture2ddecoder)==' .ci/constraints.txt)
# dataclasses-json (pygltflib's) needs marshmallow, which the GPU image lacks; this is the version
# the CI venv resolves
pins="$pins marshmallow==3.26.2"
platforms=""
for n in 1 2014 2_17 2_27 2_28 2_34 2_35; do
  case $n in 1|2014) platforms+=" --platform manylinux${n}_x86_64";; *) platforms+=" --platform manylinux_${n}_x86_64";; esac
done
for pin in $pins; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp $platforms --platform any -d .whl "$pin"
done
mkdir -p /tmp/amd64/partial
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
apt-get $o update -qq
(cd .gl && apt-get $o download -qq libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
du -sh .whl .gl
