# Production image: `ente-gateway serve` under gunicorn as a non-root user.
# Configure with ENTE_GATEWAY_* variables (README); PostgreSQL in production:
#   docker run -e ENTE_GATEWAY_DATABASE_URL=postgresql://user:pw@db/gateway -p 8080:8080 ente-gateway
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY storage ./storage
COPY simulators ./simulators
COPY bench ./bench
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    ENTE_GATEWAY_LOG_FORMAT=json ENTE_GATEWAY_DATA_DIR=/var/lib/ente-gateway
RUN useradd --system --uid 10001 --home /app --shell /usr/sbin/nologin gateway \
    && mkdir -p /var/lib/ente-gateway && chown gateway /var/lib/ente-gateway
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# The contracts are served from the project's own wsdl/ and xsd/ folders, next to the packages.
COPY wsdl /app/wsdl
COPY xsd /app/xsd
ENV ENTE_GATEWAY_CONTRACTS_DIR=/app
USER gateway
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz').status == 200 else 1)"
ENTRYPOINT ["ente-gateway"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
