# migrator in a container: the wheel `make dist` builds, on a slim Python, run as a non-root user.
#
#   make dist && docker build -t registry.example.com/migrator:1 .
#   docker run --rm registry.example.com/migrator:1 --version
#
# No container engine reaches the machine this project is developed on, so this file is not built
# by the tests. tests/test_wheel.py proves the same steps without one: it builds the wheel,
# installs it into a fresh virtual environment, checks the steps below name that wheel and that
# command, and runs `migrator --version` and a migration against the fake from there.
FROM python:3.11-slim

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin migrator

COPY dist/zuora_workflow_migrator-*-py3-none-any.whl /tmp/
RUN python -m pip install --no-cache-dir /tmp/zuora_workflow_migrator-*-py3-none-any.whl \
    && rm /tmp/zuora_workflow_migrator-*-py3-none-any.whl

USER migrator
WORKDIR /home/migrator
# The content-hash cache and doctor's profiles go under $XDG_CACHE_HOME/migrator: mount a volume
# here to keep them between runs (they are an optimisation; losing them costs exports, not data).
ENV XDG_CACHE_HOME=/home/migrator/.cache

ENTRYPOINT ["migrator"]
CMD ["--help"]
