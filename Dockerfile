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

RUN pip install -c constraints.txt ".[dask]" \
    && python -c "import torch, cv2, av, h5py, hdf5plugin; cv2.optflow.DualTVL1OpticalFlow_create()"

# Same entry points as on a workstation: `docker run IMAGE preprocess run ...`, `docker run IMAGE train.cocon ...`
ENTRYPOINT ["python", "-m"]
CMD ["preprocess", "--help"]
