"""Hello PyTorch: a pixi environment with CUDA PyTorch, and an embedded GPU check.

Two stages. ``build`` (ghcr.io/prefix-dev/pixi) installs the ``gpu`` environment
from pixi.lock with ``--locked`` and writes a static POSIX activation file;
``final`` (nvidia/cuda base by default) receives only the environment, the
activation file and the entrypoint, so the pixi package cache stays behind.

* ``apptainer run app.sif``           runs gpu_check.py (the default command)
* ``apptainer run app.sif python x``  runs ``python x`` in the environment
* ``apptainer exec app.sif python``   sees the environment too (%environment)
* ``apptainer test app.sif``          runs the GPU check (passes on a CPU-only host)
* ``apptainer run --app gpu-check app.sif --json --require-gpu``

Render: ``defbuilder render recipes/hello_pytorch/recipe.py > app.def``
(build from this directory so the %files paths resolve).
"""

from typing import Literal

from defbuilder import App, DefError, Files, Recipe, Script, Stage
from defbuilder.blocks import Entrypoint, PixiEnvironment, cuda_base, pixi_base

CHECK = "/app/gpu_check.py"

#: Defaults for `defbuilder condor recipes/hello_pytorch/recipe.py --image ...`
#: (CHTC GPU Lab; see docs/chtc.md). The wrapper sources the activation file and
#: runs the GPU check before the command given as job arguments.
job = {
    "name": "hello_pytorch",
    "executable": "hello_pytorch.sh",
    "activate": "/app/activate.sh",
    "gpu_check": ["python", CHECK, "--require-gpu"],
    "job_duration_category": "Medium",
}


def recipe(
    cuda: str = "12.9",
    environment: str = "gpu",
    base: Literal["cuda", "pixi"] = "cuda",
    os: Literal["noble", "jammy", "focal"] = "noble",
    require_gpu_in_test: bool = False,
) -> Recipe:
    """``base``: ``cuda`` (nvidia/cuda:<cuda>-base-<os>) or ``pixi``
    (ghcr.io/prefix-dev/pixi:<version>-<os>-cuda-<cuda>); ``cuda`` must be a release
    that image's publisher builds for ``os`` (checked, with the nearest ones)."""
    if base not in ("cuda", "pixi"):
        raise DefError(f"base must be 'cuda' or 'pixi', not {base!r}")
    final_base = cuda_base(cuda, os=os) if base == "cuda" else pixi_base(os, cuda=cuda)
    pixi = PixiEnvironment(
        manifest="pixi.toml",
        lock="pixi.lock",
        environment=environment,
        workdir="/app",
        cuda=final_base,
    )

    build = Stage(pixi_base(os).header(stage="build")) + pixi.build()

    test_cmd = f"exec python {CHECK}" + (" --require-gpu" if require_gpu_in_test else "")
    final = (
        Stage(
            final_base.header(stage="final"),
            files=Files([("gpu_check.py", CHECK)]),
            test=Script(test_cmd),
            labels={
                "org.opencontainers.image.title": "hello-pytorch",
                "org.opencontainers.image.description": "CUDA PyTorch in a pixi environment",
            },
            help=f"""
                Hello PyTorch with an embedded GPU check.
                  apptainer run --nv app.sif            # GPU check (default command)
                  apptainer run --nv app.sif python -V  # any command, env active
                  apptainer run --nv --app gpu-check app.sif --json --require-gpu
                Exit codes of the check: 0 ok, 3 no GPU (with --require-gpu), 4 mismatch.
                CUDA {final_base.cuda}, pixi environment '{environment}' at {pixi.prefix}.
            """,
            apps=[
                App(
                    "gpu-check",
                    run=f'exec python {CHECK} "$@"',
                    help="GPU check; --json for machine-readable output",
                    test=f"exec python {CHECK}",
                )
            ],
        )
        + pixi.final(from_stage="build")
        + Entrypoint([pixi.entrypoint_path], cmd=["python", CHECK])
    )
    return Recipe([build, final])
