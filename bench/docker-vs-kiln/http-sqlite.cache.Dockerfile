# http-sqlite.Dockerfile with BuildKit's cache mount for Go's build cache:
# what a Docker user who knows cache mounts writes.
FROM go-cgo:bench AS build
ENV GO111MODULE=off CGO_ENABLED=1 CGO_LDFLAGS=-lm GOPATH=/usr/share/gocode \
    GOCACHE=/tmp/go-cache PATH=/usr/lib/go-1.19/bin:/usr/bin:/bin
WORKDIR /tmp
WORKDIR /src
COPY src/main.go src/main.go
RUN --mount=type=cache,target=/tmp/go-cache \
    go build -trimpath -tags 'netgo osusergo' \
        -ldflags '-s -w -linkmode external -extldflags "-static"' -o /out/goapp ./src/main.go \
    && mkdir /out/db && cd /out/db && /out/goapp -init dev.db

FROM scratch
WORKDIR /app
COPY --from=build /out/goapp /app/goapp
COPY --from=build /out/db/dev.db /app/dev.db
COPY templates /app/templates/
ENV PORT=8080
EXPOSE 8080
LABEL maintainer="kiln examples <examples@kiln.invalid>" description="Demo GoLang App"
ENTRYPOINT ["/app/goapp"]
