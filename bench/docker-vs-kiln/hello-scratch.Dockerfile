# examples/hello-scratch as a multi-stage Dockerfile, built FROM the same
# toolchain image kiln makes (`kiln export go.golang`, loaded as kiln-golang:1.19).
FROM kiln-golang:1.19 AS build
ENV CGO_ENABLED=0 GOCACHE=/tmp/go-cache GOPATH=/tmp/go
WORKDIR /tmp
WORKDIR /src
COPY hello.go .
RUN go build -trimpath -ldflags='-s -w' -o /out/goapp hello.go

FROM scratch
COPY --from=build /out/goapp /app/goapp
WORKDIR /app
ENTRYPOINT ["/app/goapp"]
