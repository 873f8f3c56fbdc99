"""The decode function of a .ntc file, in every backend, side by side.

    reference.py    PyTorch twin of shaders/ntc_decode_core.slang: the CPU reference and what the
                    trainer differentiates through
    filters.py      PyTorch twin of the sample-mode filters (shaders/ntc_sample.slang)
    cuda.py         the same Slang function as a CUDA kernel (slangtorch), inference only
    gl_resources.py a file's GL objects: the latent texture array, the network's uniform block
    gl_load.py      inference on load: the GLSL decoder renders every texel into GL textures
    gl_sample.py    inference on sample: the per-pixel GLSL decoder in a test harness
    gl_context.py   GL utilities: headless context, program build, raw GL calls, fullscreen pass

Every backend is held to the reference by parity tests (tests/test_gl_parity.py,
tests/test_cuda_decoder.py, tests/test_gl_sample.py).
"""
