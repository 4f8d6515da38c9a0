# Toshi NGSI-LD broker. Build: docker build -t toshi .   Run: docker run -p 1026:1026 toshi
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY broker broker
COPY adapters adapters
COPY schemas schemas
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 toshi
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER toshi
WORKDIR /home/toshi
# Entities live in /data (mount a volume to keep them); override with TOSHI_STORE=mongodb://...
# Authentication is on: set TOSHI_AUTH__ISSUERS to the towns' OIDC issuers (docs/keycloak.md),
# and make the first operator key with `toshi keys create --operator --name setup`.
ENV TOSHI_STORE=sqlite:////data TOSHI_HOST=0.0.0.0 TOSHI_PORT=1026 TOSHI_AUTH__ENABLED=true
USER root
RUN mkdir /data && chown toshi /data
USER toshi
VOLUME ["/data"]
EXPOSE 1026
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:1026/health', timeout=2).status != 200)"
CMD ["toshi", "serve"]
