# syntax=docker/dockerfile:1
#
# One image for all three DualNova programs; the command picks the program:
#   python -m inference_service   (the default)
#   python -m gateway
#   python -m bedrock_emulator --host 0.0.0.0 --port 8787
#   dualnova health | chat        (probes and the CLI)
#
# Listen addresses are not baked in: the services default to loopback, so a
# container must set INFERENCE_LISTEN=0.0.0.0:50051 / GATEWAY_LISTEN=0.0.0.0:50052
# (compose.yaml does). No HEALTHCHECK here either, because it depends on the
# program and its port; compose.yaml (or the orchestrator) runs
# `dualnova health --addr 127.0.0.1:PORT`.

ARG PYTHON_IMAGE=python:3.11-slim

# --- wheels: every dependency and the project itself, built once -------------
FROM ${PYTHON_IMAGE} AS wheels
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src

# Dependencies first, read from pyproject.toml (runtime only, never the dev
# extra), so editing the code does not rebuild them.
# Pinned by constraints.txt, so a rebuild months later gets the versions that were tested.
COPY pyproject.toml README.md constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && pip wheel --wheel-dir /wheels --requirement requirements.txt --constraint constraints.txt

COPY dualnova ./dualnova
COPY inference_service ./inference_service
COPY gateway ./gateway
COPY bedrock_emulator ./bedrock_emulator
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- runtime: the slim base, the installed wheels and nothing else -----------
FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# The wheels are bind-mounted for the install only, so they never form a layer.
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --root-user-action=ignore --no-index --find-links=/wheels /wheels/dualnova-*.whl \
 && useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin dualnova

# Numeric, so Kubernetes' runAsNonRoot can verify it. Real AWS credentials can
# be mounted read-only at /home/dualnova/.aws (or come from a task/pod role).
USER 10001:10001
WORKDIR /home/dualnova

EXPOSE 50051 50052
CMD ["python", "-m", "inference_service"]
