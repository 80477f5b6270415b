# syntax=docker/dockerfile:1
#
# The promoflow binary in a minimal image. Every stage runs this image with a
# different command (see docker-compose.yml):
#
#   docker build -t promoflow .
#   docker run --rm promoflow help
#   docker run --rm -v $PWD/deploy/promoflow.compose.yaml:/etc/promoflow/promoflow.yaml:ro \
#       promoflow run --only coupon --config /etc/promoflow/promoflow.yaml

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that code changes do not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# topics.yaml and the JSON schemas are embedded in the binary; the image
# needs nothing else.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/promoflow ./cmd/promoflow

# Static binary, CA certificates and tzdata, no shell, running as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/promoflow /usr/local/bin/promoflow
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/promoflow"]
CMD ["help"]
