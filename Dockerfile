# One image with everything built; docker-compose.yml runs its parts.
FROM debian:bookworm
WORKDIR /src
COPY . .
RUN scripts/install-deps.sh && make all
