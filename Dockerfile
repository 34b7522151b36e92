# One Dockerfile, three images:
#   docker build --target worker  -t atodene-worker .   (the default target)
#   docker build --target console -t atodene-console .
#   docker build --target sandbox -t atodene-sandbox .
# Both run on Alpine, whose busybox wget serves the healthchecks of docker-compose.yml, as a
# non-root user. Nothing is fetched at run time.

ARG GO_VERSION=1.26
ARG ALPINE_VERSION=3.22

FROM golang:${GO_VERSION}-alpine AS build
WORKDIR /src
ENV CGO_ENABLED=0
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# -buildvcs=false: .git is not in the build context (.dockerignore), and the image has no git.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -buildvcs=false -ldflags="-s -w" -o /out/ ./cmd/atodene-sandbox ./cmd/publisher ./cmd/console && \
    go build -trimpath -buildvcs=false -ldflags="-s -w" -tags noembedded -o /out/ ./cmd/worker

FROM alpine:${ALPINE_VERSION} AS runtime
# The worker is built with -tags noembedded: without the in-process servers, the sandbox and the
# demo (-embedded), which a production worker has no use for.
RUN adduser -D -H -u 10001 atodene && install -d -o atodene -g atodene /var/lib/atodene
WORKDIR /var/lib/atodene
USER atodene

FROM runtime AS sandbox
COPY --from=build /out/atodene-sandbox /usr/local/bin/atodene-sandbox
EXPOSE 8089
ENTRYPOINT ["atodene-sandbox"]
# The flag's default, 127.0.0.1:8089, is unreachable from outside the container.
CMD ["-addr", "0.0.0.0:8089"]

FROM runtime AS console
COPY --from=build /out/console /usr/local/bin/console
# The flag's default, 127.0.0.1:8090, is unreachable from outside the container: the console is
# meant to be reached through an authenticating or TLS-terminating proxy.
ENV ATODENE_CONSOLE_HTTP_ADDR=0.0.0.0:8090
EXPOSE 8090
ENTRYPOINT ["console"]

FROM runtime AS worker
COPY --from=build /out/worker /usr/local/bin/worker
# The operators' tool, for `docker compose exec worker publisher dlq ls` and the like.
COPY --from=build /out/publisher /usr/local/bin/publisher
# The setting's default, 127.0.0.1:9090, would hide /metrics, /healthz and /readyz.
ENV ATODENE_WORKER_HTTP_ADDR=0.0.0.0:9090
EXPOSE 9090
ENTRYPOINT ["worker"]
