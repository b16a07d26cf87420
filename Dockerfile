# syntax=docker/dockerfile:1
# mailserver: a static musl binary in an empty image.
#   docker build -t mailserver .
#   docker run -d -p 110:110 -p 143:143 -p 993:993 -p 995:995 \
#     -v mail:/var/lib/mailserver -v maillogs:/var/log/mailserver \
#     -v ./users:/etc/mailserver/users:ro mailserver

FROM rust:1-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
# The same command .ci/run uses to check the binary is static.
RUN CC_x86_64_unknown_linux_musl=gcc cargo build --release --locked --bin mailserver --target x86_64-unknown-linux-musl \
 && mkdir -p /out/rootfs/var/lib/mailserver /out/rootfs/var/log/mailserver \
 && cp target/x86_64-unknown-linux-musl/release/mailserver /out/mailserver \
 && chown -R 10001:10001 /out/rootfs/var

FROM scratch AS runtime
COPY --from=build /out/mailserver /usr/local/bin/mailserver
COPY --from=build /out/rootfs/ /
COPY etc/container.toml /etc/mailserver/mailserver.toml
COPY etc/container-users /etc/mailserver/users
USER 10001:10001
VOLUME ["/var/lib/mailserver", "/var/log/mailserver"]
EXPOSE 110 143 993 995
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/mailserver", "--config", "/etc/mailserver/mailserver.toml"]
CMD ["run"]
