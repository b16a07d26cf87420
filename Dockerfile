# syntax=docker/dockerfile:1
# mailserver (SPEC §9): the static (glibc, crt-static) binary in an empty image, running as uid 10001.
#
#   docker build -t mailserver .
#   docker run -d --name mailserver -p 110:110 -p 143:143 -p 993:993 -p 995:995 \
#     -v mail:/var/lib/mailserver -v maillogs:/var/log/mailserver \
#     -v "$PWD/users:/etc/mailserver/users:ro" mailserver
#
# Ports below 1024 as a non-root user: Docker 20.10+ already sets
# net.ipv4.ip_unprivileged_port_start=0 in a container's own network namespace; with Podman
# add `--sysctl net.ipv4.ip_unprivileged_port_start=0` (README "Container"). The image's
# config sets limits.shutdown_grace_secs = 8, inside `docker stop`'s default 10 s timeout.
#
# Without a registry (no base image can be pulled), build the binary with the command below
# on the host, lay it out as this stage leaves /out/, and let that directory stand in for the
# stage: `podman build --build-context build=DIR --target runtime .` (tests/container/run.sh).

FROM docker.io/library/rust:1-bookworm AS build
WORKDIR /src
# .dockerignore keeps target/, .git/ and tests/ out of the context.
COPY . .
# The same command .ci/run uses for the static binary: glibc with crt-static (see README).
RUN RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --bin mailserver --target x86_64-unknown-linux-gnu \
 && mkdir -p /out/rootfs/var/lib/mailserver /out/rootfs/var/log/mailserver \
 && cp target/x86_64-unknown-linux-gnu/release/mailserver /out/mailserver

FROM scratch AS runtime
# /out/ of the build stage: the binary, and the two (empty) volume directories. --chown makes
# them the service user's, so named volumes start out writable by it (Docker and Podman copy
# the image directory's owner into a new named volume).
COPY --from=build /out/mailserver /usr/local/bin/mailserver
COPY --from=build --chown=10001:10001 /out/rootfs/ /
COPY etc/container.toml /etc/mailserver/mailserver.toml
COPY etc/container-users /etc/mailserver/users
ENV MAILSERVER_CONFIG=/etc/mailserver/mailserver.toml
USER 10001:10001
# Mail (and the generated TLS pair in tls/), and the protocol logs (KB Q182504 L*.log files).
VOLUME ["/var/lib/mailserver", "/var/log/mailserver"]
# POP3 (STLS), IMAP (STARTTLS), IMAPS, POP3S; 9110 /metrics /healthz /readyz once [metrics] listens.
EXPOSE 110 143 993 995 9110
# SIGTERM: stop accepting, close sessions, flush the protocol logs, exit 0 (SPEC §9).
STOPSIGNAL SIGTERM
# Foreground daemon; `docker run IMAGE check-config` or `reg query` run those instead.
# The admin socket is /var/lib/mailserver/admin.sock (data_dir's default, mode 0600):
#   docker exec mailserver mailserver who   (also kick, mailbox status, quota get)
ENTRYPOINT ["/usr/local/bin/mailserver"]
CMD ["run"]
