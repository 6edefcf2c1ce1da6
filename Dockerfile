# GPU image with the same pins as setup.cfg. On linux/x86_64, PyPI's torch==2.13.0 wheel is the CUDA
# build (its CUDA libraries come as pip packages), so no CUDA base image is needed; run with
# `docker run --gpus all ...` on a host with the NVIDIA container toolkit.
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    HDF5_USE_FILE_LOCKING=FALSE

WORKDIR /opt/cocon
COPY pyproject.toml setup.cfg constraints.txt README.md ./
COPY preprocess ./preprocess
COPY train ./train
COPY data_specs ./data_specs
COPY configs ./configs
COPY scripts ./scripts

RUN pip install -c constraints.txt ".[dask,pose]" \
    && python -c "import torch, cv2, av, h5py, hdf5plugin; cv2.optflow.DualTVL1OpticalFlow_create()"
# The pose/segmentation views: mediapipe (the offline default; --no-deps, or it pulls jax and a second
# OpenCV) and the OpenMMLab stack (mmcv-lite + preprocess/mmcv_shim.py; the models run on the GPU, mmdet
# detectors through the plain-torch NMS and RoIAlign). For detectors needing other ops, or for speed, build
# mmcv 2.1.0 with its CUDA ops in a CUDA devel image instead (recipe in scripts/install_openmmlab.sh).
RUN pip install -c constraints.txt --no-deps mediapipe==0.10.21 \
    && bash scripts/install_openmmlab.sh /usr/local

# Same entry points as on a workstation: `docker run IMAGE preprocess run ...`, `docker run IMAGE train.cocon ...`
ENTRYPOINT ["python", "-m"]
CMD ["preprocess", "--help"]
