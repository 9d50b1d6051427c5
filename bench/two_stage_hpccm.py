"""The same two-stage recipe in hpccm's DSL, for bench/render_latency.py."""

# ruff: noqa
Stage0 += baseimage(image="ghcr.io/prefix-dev/pixi:noble", _as="build")
Stage0 += copy(src=["pixi.toml", "pixi.lock"], dest="/app/")
Stage0 += shell(
    commands=[
        "export CONDA_OVERRIDE_CUDA=12",
        "cd /app",
        "pixi install --locked --environment gpu",
        "pixi shell-hook --environment gpu -s bash > /app/activate.sh",
    ]
)
Stage1 += baseimage(image="nvidia/cuda:12.9.1-base-ubuntu24.04", _as="final")
Stage1 += copy(_from="build", src=["/app/.pixi/envs/gpu", "/app/activate.sh"], dest="/app/")
Stage1 += copy(src="src/torch_detect_GPU.py", dest="/app/src/torch_detect_GPU.py")
Stage1 += environment(variables={"CONDA_PREFIX": "/app/.pixi/envs/gpu"})
Stage1 += runscript(commands=['python /app/src/torch_detect_GPU.py "$@"'])
Stage1 += label(metadata={"org.opencontainers.image.title": "hello-pytorch"})
