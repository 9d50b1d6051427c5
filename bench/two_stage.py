"""A two-stage, hello-pytorch-sized recipe written by hand for bench/render_latency.py."""

from defbuilder import Files, Header, Recipe, Script, Stage

build = Stage(
    Header.docker("ghcr.io/prefix-dev/pixi:noble", stage="build"),
    files=Files([("pixi.toml", "/app/pixi.toml"), ("pixi.lock", "/app/pixi.lock")]),
    post="""
        export CONDA_OVERRIDE_CUDA=12
        cd /app
        pixi install --locked --environment gpu
        pixi shell-hook --environment gpu -s bash > /app/activate.sh
    """,
)
final = Stage(
    Header.docker("nvidia/cuda:12.9.1-base-ubuntu24.04", stage="final"),
    files=[
        Files(["/app/.pixi/envs/gpu", "/app/activate.sh"], from_stage="build"),
        Files([("src/torch_detect_GPU.py", "/app/src/torch_detect_GPU.py")]),
    ],
    environment=". /app/activate.sh",
    runscript=Script('exec python /app/src/torch_detect_GPU.py "$@"'),
    startscript=Script('exec python /app/src/torch_detect_GPU.py "$@"'),
    test="python /app/src/torch_detect_GPU.py",
    labels={"org.opencontainers.image.title": "hello-pytorch"},
)
recipe = Recipe([build, final])
