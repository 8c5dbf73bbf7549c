# examples/http-sqlite as a multi-stage Dockerfile. The build image
# (go-cgo:bench) is the host's Go, gcc, libc and go-sqlite3 packages, made by
# run.sh from `dpkg -L`: what `kiln` uses `from host`.
FROM go-cgo:bench AS build
ENV GO111MODULE=off CGO_ENABLED=1 CGO_LDFLAGS=-lm GOPATH=/usr/share/gocode \
    GOCACHE=/tmp/go-cache PATH=/usr/lib/go-1.19/bin:/usr/bin:/bin
WORKDIR /tmp
WORKDIR /src
COPY src/main.go src/main.go
RUN go build -trimpath -tags 'netgo osusergo' \
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
