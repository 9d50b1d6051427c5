# syntax=docker/dockerfile:1.4
# Written for defbuilder's tests: RUN and COPY heredocs (Dockerfile syntax 1.4).
FROM debian:bookworm-slim
ARG GREETING=hello
RUN <<EOF
set -e
apt-get update
apt-get install -y --no-install-recommends ca-certificates
EOF
RUN <<EOT bash
  set -euo pipefail
  echo "$GREETING from bash"
EOT
RUN <<'PY'
#!/usr/bin/env python3
print("%s, %d" % ("a script with a shebang", 1))
PY
RUN cat <<CONF > /etc/app.conf
listen = 8080
home = $HOME
CONF
COPY <<NOTE /etc/motd
$GREETING, this file was written by COPY
NOTE
COPY --chmod=0755 <<'SH' /usr/local/bin/hello
#!/bin/sh
echo "$GREETING"
SH
CMD ["hello"]
