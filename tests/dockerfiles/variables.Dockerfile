# Written for defbuilder's tests: Docker's variable substitution, where Docker does it.
ARG REGISTRY=docker.io
ARG TAG
FROM ${REGISTRY}/library/ubuntu:${TAG:-24.04}
ARG VERSION=1.2.3
ARG PREFIX=/opt/tool
ARG PATH="/root/miniconda3/bin:${PATH}"
ENV TOOL_HOME=${PREFIX}/${VERSION} \
    PATH=${PREFIX}/bin:$PATH \
    GREETING="it's \$HOME, not $(whoami)" \
    EMPTY= \
    SUFFIX=${UNSET_IN_DOCKERFILE:-fallback}
ENV ALIAS=$TOOL_HOME
WORKDIR $TOOL_HOME
COPY --chown=1000:1000 bin/ $PREFIX/bin/
RUN cd / && export LEAK=1
RUN echo "$PWD $LEAK" > /tmp/where
LABEL version=$VERSION description="tool ${VERSION:+v$VERSION}"
USER 1000
EXPOSE 8080/tcp
CMD tool --version
