# The upstream hello-PyTorch image, Docker style: pixi install in a build stage,
# the environment copied into the final stage, an entrypoint that activates + execs.
FROM ghcr.io/prefix-dev/pixi:noble AS build

WORKDIR /app
COPY pixi.toml pixi.lock ./
RUN pixi install --locked --environment prod
RUN echo "#!/bin/bash" > /app/entrypoint.sh && \
    pixi shell-hook --environment prod -s bash >> /app/entrypoint.sh && \
    echo 'exec "$@"' >> /app/entrypoint.sh

FROM ghcr.io/prefix-dev/pixi:noble AS production

WORKDIR /app
COPY --from=build /app/.pixi/envs/prod /app/.pixi/envs/prod
COPY --from=build --chmod=0755 /app/entrypoint.sh /app/entrypoint.sh
COPY ./src /app/src

EXPOSE 8000
ENTRYPOINT [ "/app/entrypoint.sh" ]
CMD [ "python", "-V" ]
