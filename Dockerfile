# One image for the three services; docker-compose.yml picks the entry point of each.
FROM node:20
WORKDIR /app
COPY package.json package-lock.json ./
# tsx runs the TypeScript directly, so the development dependencies are part of the image.
RUN npm ci --no-audit --no-fund
COPY . .
ENV HOST=0.0.0.0
EXPOSE 50051 8081 50052 8082 50053 8083
# node (not npm or npx) is PID 1, so SIGTERM reaches the service and it drains before exiting.
CMD ["node", "--import", "tsx", "services/main.ts"]
