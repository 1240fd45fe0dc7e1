# tidydesk: one image for every service. Build: docker build -t tidydesk .
# Run a service: docker run tidydesk … with --entrypoint python and `-m tidydesk.<service>`
# (ingest, threading, policy, notify, queue, desk); `docker run tidydesk --help` runs the CLI.
FROM python:3.12-slim AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    TIDYDESK_HOME=/var/lib/tidydesk TIDYDESK_LOG_FORMAT=json \
    TIDYDESK_HEALTH_HOST=0.0.0.0
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /var/lib/tidydesk --create-home tidydesk
USER 10001
WORKDIR /var/lib/tidydesk
# SMTP (ingest), HTTP API (queue), health/readiness: 8090 + place in SERVICES
EXPOSE 2525 8080 8090-8095
ENTRYPOINT ["tidydesk"]
CMD ["--help"]
