"""Hello PyTorch: a pixi environment with CUDA PyTorch, and an embedded GPU check.

Two stages. ``build`` (ghcr.io/prefix-dev/pixi at a pinned version) installs the
``gpu`` environment from pixi.lock with ``--locked`` (without a pixi.lock it solves,
warns, and ``defbuilder build`` hands the solved lock back), prunes what a run-time
image does not need, and writes a static POSIX activation file; ``final``
(nvidia/cuda base by default) receives only the environment, the activation file
and the entrypoint, so the pixi package cache stays behind.

* ``apptainer run hello-pytorch.sif``           runs gpu_check.py (the default command)
* ``apptainer run hello-pytorch.sif python x``  runs ``python x`` in the environment
* ``apptainer exec hello-pytorch.sif python``   sees the environment too (%environment)
* ``apptainer test hello-pytorch.sif``          runs the GPU check (passes on a CPU-only host)
* ``apptainer run --app gpu-check hello-pytorch.sif --json --require-gpu``

Render: ``defbuilder render recipes/hello_pytorch/recipe.py -o recipes/hello_pytorch/app.def``
(build from this directory so the %files paths resolve), or ``defbuilder build``.
"""

from typing import Literal

from defbuilder import App, DefError, Files, Recipe, Script, Stage
from defbuilder.blocks import Entrypoint, PixiEnvironment, cuda_base, pixi_base
from defbuilder.blocks.bases import PIXI_VERSION

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
    # conda-forge's pytorch-gpu pulls cuDNN 9.x; from 9.11 cuDNN has no device code
    # below compute capability 7.5 (NVIDIA's cuDNN 9.11.0 release notes), so ask
    # HTCondor for Turing or newer GPUs.
    "gpus_minimum_capability": "7.5",
}


def recipe(
    cuda: str = "12.9",
    environment: str = "gpu",
    base: Literal["cuda", "pixi"] = "cuda",
    os: Literal["noble", "jammy", "focal"] = "noble",
    require_gpu_in_test: bool = False,
    pixi_version: str = PIXI_VERSION,
    prune: bool | Literal["strict"] = True,
    keep_pixi: bool = False,
    build_digest: str | None = None,
    final_digest: str | None = None,
) -> Recipe:
    """``base``: ``cuda`` (nvidia/cuda:<cuda>-base-<os>) or ``pixi``
    (ghcr.io/prefix-dev/pixi:<pixi_version>-<os>-cuda-<cuda>); ``cuda`` must be a
    release that image's publisher builds for ``os`` (checked, with the nearest ones).
    ``prune``: drop static libraries and docs from the environment (``strict``: also
    headers, which torch.compile needs). ``keep_pixi``: ``pixi run`` works in the image.
    ``build_digest``/``final_digest``: ``sha256:...`` of the two base images, for teams
    whose policy requires digests (``require-digest``); see README.md."""
    if base not in ("cuda", "pixi"):
        raise DefError(f"base must be 'cuda' or 'pixi', not {base!r}")
    if base == "cuda":
        final_base = cuda_base(cuda, os=os, digest=final_digest)
    else:
        final_base = pixi_base(os, version=pixi_version, cuda=cuda, digest=final_digest)
    pixi = PixiEnvironment(
        manifest="pixi.toml",
        lock="pixi.lock",  # beside this file; without it the build solves and warns
        environment=environment,
        workdir="/app",
        cuda=final_base,
        prune=prune,
        keep_pixi=keep_pixi,
    )

    build_base = pixi_base(os, version=pixi_version, digest=build_digest)
    build = Stage(build_base.header(stage="build")) + pixi.build()

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
                  apptainer run --nv hello-pytorch.sif            # GPU check (default command)
                  apptainer run --nv hello-pytorch.sif python -V  # any command, env active
                  apptainer run --nv --app gpu-check hello-pytorch.sif --json --require-gpu
                Exit codes of the check: 0 ok, 3 no GPU (with --require-gpu), 4 mismatch,
                5 a GPU is there but unusable (the reasons are printed).
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
