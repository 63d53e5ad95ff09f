# syntax=docker/dockerfile:1
# The resbench trial image: the head and worker pods of a RayJob run it (docs/clusters.md).
#   docker build -t registry.example.com/resbench:0.1.0 .
#   docker push registry.example.com/resbench:0.1.0
ARG BASE_IMAGE=pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# wget: the health probes of older KubeRay operators call it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends wget \
 && rm -rf /var/lib/apt/lists/* \
 && python -c 'import sys; assert sys.version_info >= (3, 11), "resbench needs Python >= 3.11: pick another BASE_IMAGE"'

# The renderer's --workdir default; relative --space paths resolve here.
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bench ./bench
COPY launchers ./launchers
COPY search_spaces ./search_spaces
# torch/torchvision come from the base image (kept: they satisfy the pins). A RayJob's head runs
# Ray's dashboard and job server, so ray[default] is added at the version resbench resolved.
RUN pip install . \
 && pip install "ray[default]==$(python -c 'from importlib.metadata import version; print(version("ray"))')" \
 && python -c "import bench, launchers, ray, torch, mlflow; print('torch', torch.__version__, 'ray', ray.__version__, 'cuda', torch.version.cuda)"
