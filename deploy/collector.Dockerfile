# The spinesense collector (and CLI) as a container image; built by deploy/compose.yaml
# from the repository root: docker build -f deploy/collector.Dockerfile .
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY spinesense ./spinesense
COPY firmware ./firmware
COPY edge ./edge
COPY collector ./collector
COPY analysis ./analysis
RUN pip install --no-cache-dir . && useradd --system --home /var/lib/spinesense spinesense \
    && mkdir -p /var/lib/spinesense && chown spinesense /var/lib/spinesense
USER spinesense
ENTRYPOINT ["spinesense"]
CMD ["collector", "run"]
