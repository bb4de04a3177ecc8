# shopfloor: collector (`shopfloor run`) and gateway service (`shopfloor serve`) in one image.
# Used by deploy/helm/shopfloor. Build: docker build -t registry.example.com/shopfloor/shopfloor:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY config ./config
COPY connectors ./connectors
COPY edge ./edge
COPY metrics ./metrics
COPY gateway ./gateway
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[all]'

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp
RUN groupadd --system --gid 10001 shopfloor \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/shopfloor --no-create-home shopfloor \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/shopfloor
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels 'shopfloor[all]' && rm -rf /wheels
USER 10001:10001
WORKDIR /var/lib/shopfloor
VOLUME ["/var/lib/shopfloor"]
EXPOSE 8080
ENTRYPOINT ["shopfloor"]
CMD ["serve", "-c", "/etc/shopfloor/site.yaml", "--host", "0.0.0.0", "--port", "8080"]
