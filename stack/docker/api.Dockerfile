# The runtime of techno-os-api (and of console-log, which needs only the standard library) where a registry is
# reachable: Python 3.11 plus prometheus_client. The application code is not copied in: the compose file mounts
# stack/app read-only, so the container always runs the code the seal judges.
#   docker build -t techno-os-api:f9.10 -f stack/docker/api.Dockerfile stack/docker
FROM python:3.11.10-slim-bookworm
RUN pip install --no-cache-dir "prometheus-client==0.21.0"
USER 65534:65534
