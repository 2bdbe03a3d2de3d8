# One image for the three services; docker-compose.yml picks the entry point of each.
# Build stage: every dependency, the TypeScript compiled to JavaScript (scripts/build.ts).
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

# Runtime: the slim image, production dependencies and the compiled JavaScript only, run by the
# unprivileged `node` user of the base image.
FROM node:20-slim
ENV NODE_ENV=production HOST=0.0.0.0
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# SQLite files and the reconciliation directory (a volume in docker-compose.yml) live under data/.
RUN mkdir -p data/reconciliation && chown -R node:node data
USER node
EXPOSE 50051 8081 50052 8082 50053 8083
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 CMD ["node", "dist/services/healthcheck.js"]
# node (not npm or npx) is PID 1, so SIGTERM reaches the service and it drains before exiting.
CMD ["node", "--max-semi-space-size=32", "dist/services/main.js"]
