# Written for defbuilder's tests: a pixi environment chosen with an ARG.
FROM ghcr.io/prefix-dev/pixi:0.40.0 AS build
ARG ENVIRONMENT=prod
WORKDIR /app
COPY pixi.toml pixi.lock ./
RUN pixi install --locked -e ${ENVIRONMENT}
RUN pixi shell-hook -e $ENVIRONMENT -s bash > /shell-hook \
    && echo 'exec "$@"' >> /shell-hook

FROM ubuntu:24.04
COPY --from=build /app/.pixi/envs/prod /app/.pixi/envs/prod
COPY --from=build --chmod=0755 /shell-hook /shell-hook
WORKDIR /app
ENTRYPOINT ["/bin/bash", "/shell-hook"]
CMD ["python"]
