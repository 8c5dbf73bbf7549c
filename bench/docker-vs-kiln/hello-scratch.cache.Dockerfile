# hello-scratch.Dockerfile with BuildKit's cache mount for Go's build cache:
# what a Docker user who knows cache mounts writes.
FROM kiln-golang:1.19 AS build
ENV CGO_ENABLED=0 GOCACHE=/tmp/go-cache GOPATH=/tmp/go
WORKDIR /tmp
WORKDIR /src
COPY hello.go .
RUN --mount=type=cache,target=/tmp/go-cache \
    go build -trimpath -ldflags='-s -w' -o /out/goapp hello.go

FROM scratch
COPY --from=build /out/goapp /app/goapp
WORKDIR /app
ENTRYPOINT ["/app/goapp"]
