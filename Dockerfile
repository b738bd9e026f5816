# Tollgate: build with the dev dependencies, run with the production ones only.
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The CLI (apps/cli), the SDK (libs/sdk) and the verifier (packages/verifier) are workspaces: npm ci
# needs their package.json to link them.
COPY apps/cli/package.json ./apps/cli/package.json
COPY libs/sdk/package.json ./libs/sdk/package.json
COPY packages/verifier/package.json ./packages/verifier/package.json
# --ignore-scripts: the root `prepare` (a build) runs below, once the sources are here.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY apps ./apps
COPY libs ./libs
COPY migrations ./migrations
# `npm run build` compiles the verifier package, and the demo (apps/demo) imports it.
COPY packages ./packages
RUN npm run build && npm prune --omit=dev

FROM node:24-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    TOLLGATE_DATA_DIR=/var/lib/tollgate
WORKDIR /app
RUN mkdir -p /var/lib/tollgate && chown node:node /var/lib/tollgate
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER node
EXPOSE 8080
CMD ["node", "dist/apps/broker/main.js"]
