# georeg serve in a container: the HTTP API and every trigger in one process, next to a registry.
# Settings come from the environment (see README, "Running next to a registry"); nothing is baked in.
#   docker build -t georeg .
#   docker run --env-file georeg.env -p 7071:7071 georeg            # serve
#   docker run --env-file georeg.env georeg doctor                  # check the setup
# (Not built on this project's machines: they have no Docker engine.)

FROM node:20-slim AS build
WORKDIR /app
# The whole context (see .dockerignore): npm ci needs every package.json a workspace may add.
COPY . .
RUN npm ci --no-audit --no-fund \
 && npm run build \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json /app/host.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER node
EXPOSE 7071
# The compiled CLI: no TypeScript loader at run time. serve exits 0 on SIGTERM after its jobs in
# flight finish (at most --drain-timeout, 25 s: keep Kubernetes' terminationGracePeriodSeconds above it).
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["serve", "--host", "0.0.0.0", "--port", "7071"]
