"""The simulated registry: which images exist, and what their containers do when they run.

A pull of an image (or tag) not listed here fails as a real pull of a missing image does
(``ErrImagePull``, then ``ImagePullBackOff``). Listed: a few public images the course and
learners use, and ``kepler-station/*``, the course's story registry. What a container does is
read from the image and its command, as a kubelet would see it happen:

- a server image (nginx, podinfo) keeps running and listens on its ports;
- busybox's default command (``sh`` with no terminal) exits at once, so under
  ``restartPolicy: Always`` it ends in ``CrashLoopBackOff``; a command that keeps running
  (``sleep``, a ``while true`` loop, ``tail -f``, ``httpd``) runs; ``exit N`` with N > 0 fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class Image:
    repository: str  # fully qualified, e.g. docker.io/library/nginx
    tags: frozenset[str]
    listens: tuple[int, ...] = ()  # ports its default process listens on
    serves: bool = False  # its default process keeps running
    cpu_m: int = 1  # idle CPU use in millicores (the HPA's simulated metrics)
    memory_mi: int = 8
    log: str = ""


def _img(repo: str, tags: str, **kw: Any) -> Image:
    return Image(repo, frozenset(tags.split()), **kw)


REGISTRY: tuple[Image, ...] = (
    _img("docker.io/library/busybox", "1.36 1.36.1 1.37 1.37.0 stable latest musl glibc"),
    _img("docker.io/library/nginx", "1.25 1.26 1.27 1.27.3 1.27-alpine alpine stable latest",
         listens=(80,), serves=True, cpu_m=1, memory_mi=4,
         log="/docker-entrypoint.sh: Configuration complete; ready for start up"),
    _img("docker.io/library/alpine", "3.19 3.20 3.21 latest"),
    _img("ghcr.io/stefanprodan/podinfo", "6.5.0 6.6.0 6.7.0 6.7.1 6.8.0 latest",
         listens=(9898,), serves=True, cpu_m=2, memory_mi=12,
         log='{"level":"info","msg":"Starting podinfo","version":"{tag}"}\n'
             '{"level":"info","msg":"Starting HTTP Server.","addr":":9898"}'),
    _img("registry.k8s.io/pause", "3.9 3.10", serves=True),
    _img("kepler-station/atmospheric-processor", "2.1 2.2", listens=(8080,), serves=True,
         cpu_m=5, memory_mi=32, log="atmospheric processor online on :8080"),
    _img("kepler-station/signal-processor", "3.1 3.2", listens=(8080,), serves=True,
         cpu_m=5, memory_mi=32, log="signal processor listening on :8080"),
    _img("kepler-station/guidance-calculator", "1.4 1.5", listens=(8081,), serves=True,
         cpu_m=5, memory_mi=32, log="guidance calculator listening on :8081"),
    _img("kepler-station/data-recovery", "1.0", serves=True, log="vault recovery ready"),
)
_BY_REPO = {i.repository: i for i in REGISTRY}


def normalise(ref: str) -> tuple[str, str]:
    """``busybox:1.36`` → (``docker.io/library/busybox``, ``1.36``); digests count as tags."""
    name, tag = ref, "latest"
    if "@" in name:
        name, tag = name.split("@", 1)
    elif ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif not ("." in first or ":" in first or first == "localhost" or first == "kepler-station"):
        name = f"docker.io/{name}"
    return name, tag


def lookup(ref: str) -> Image | None:
    """The image if the registry has it (repository and tag), else ``None``."""
    repo, tag = normalise(ref)
    image = _BY_REPO.get(repo)
    return image if image is not None and tag in image.tags else None


def pull_error(ref: str) -> str:
    """The message containerd gives for a pull that cannot succeed."""
    repo, tag = normalise(ref)
    if repo in _BY_REPO:
        return (f'rpc error: code = NotFound desc = failed to pull and unpack image "{repo}:{tag}": '
                f'failed to resolve reference "{repo}:{tag}": {repo}:{tag}: not found')
    return (f'failed to pull and unpack image "{repo}:{tag}": failed to resolve reference '
            f'"{repo}:{tag}": pull access denied, repository does not exist or may require '
            "authorization: server message: insufficient_scope: authorization failed")


def _expand(text: str, env: dict[str, str]) -> str:
    text = text.strip().strip("'\"")
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), text)


@dataclass(frozen=True)
class Behaviour:
    runs: bool  # keeps running
    exit_code: int  # when it does not
    listens: frozenset[int]
    cpu_m: int
    memory_mi: int
    log: str


_RUNS = re.compile(r"\bsleep\b|while\s+true|\btail\s+-f\b|\bhttpd\b|\bnc\s+-l|sleep\s+infinity")
_EXIT = re.compile(r"\bexit\s+([1-9]\d*)\b|(?:^|[;&|]\s*)false\s*$")
_PORT = re.compile(r"(?:httpd|nc)\b[^;&|]*?-p\s+(\d+)")


def behaviour(container: Obj) -> Behaviour:
    image = lookup(str(container.get("image", "")))
    assert image is not None, "only pulled images run"
    command = " ".join(str(x) for x in (container.get("command") or []) +
                       (container.get("args") or []))
    _, tag = normalise(str(container.get("image")))
    log = image.log.replace("{tag}", tag)
    if not command:
        return Behaviour(image.serves, 0, frozenset(image.listens), image.cpu_m,
                         image.memory_mi, log)
    listens = {int(p) for p in _PORT.findall(command)}
    env = {e.get("name"): str(e.get("value", "")) for e in container.get("env") or []}
    echoes = "\n".join(_expand(m, env) for m in re.findall(r"^\s*echo\s+([^\n;]+)$", command, re.M)
                       if "$(" not in m and "$file" not in m)
    if (m := _EXIT.search(command)) and not _RUNS.search(command[: m.start()]):
        return Behaviour(False, int(m.group(1) or 1), frozenset(), 1, 1, echoes)
    runs = bool(_RUNS.search(command))
    return Behaviour(runs, 0, frozenset(listens), 1, 2, echoes)
