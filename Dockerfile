# dlwild on the Ray image of the same Ray version: every node of a launcher or KubeRay cluster runs this.
#
#   CPU: docker build -t dlwild/dlwild:0.1.0 .
#   GPU: docker build -t dlwild/dlwild:0.1.0-gpu \
#          --build-arg BASE_IMAGE=rayproject/ray:2.60.0-py311-gpu \
#          --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
#        (rayproject/ray also publishes -cu12x tags, e.g. 2.60.0-py311-cu128: pick the CUDA version of your
#        nodes' driver and the matching PyTorch wheel index.)
#
# Push both to a registry your cluster can pull from and keep the names: cluster/launcher/*.yaml and
# cluster/kuberay/*.yaml refer to them (cluster/schemas/kuberay.py: IMAGE, GPU_IMAGE).
ARG BASE_IMAGE=rayproject/ray:2.60.0-py311
FROM ${BASE_IMAGE}

# PyTorch's CPU wheel by default (its index serves 2.13.0+cpu, which pip prefers to PyPI's CUDA 2.13.0),
# so the CPU image does not carry several GB of CUDA libraries.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

# Token authentication on every Ray process in the container; the token itself comes from the cluster
# (launcher: file_mounts of ~/.ray/auth_token; KubeRay: authOptions, RAY_AUTH_TOKEN from a Secret).
ENV RAY_AUTH_MODE=token

WORKDIR /home/ray/dlwild
# The dependency pins first, so editing the code does not invalidate the dependency layers.
COPY --chown=ray:users constraints.txt pyproject.toml ./
RUN pip install --no-cache-dir -c constraints.txt --extra-index-url "${TORCH_INDEX}" torch
COPY --chown=ray:users . .
RUN pip install --no-cache-dir -c constraints.txt . \
    && python -c "import cluster, envs, workloads, serving, ray; assert ray.__version__ == '2.60.0', ray.__version__"
