#!/usr/bin/env python3
"""Mirror the host's pip configuration into the RUN steps of a buildah build.

usage: pip_mounts.py OUT_DIR      prints one buildah `-v SRC:DST:ro` spec per line

Why: on the CI machines pip reaches its packages only through what the host's pip
configuration says (local index folders, extra index URLs, a CA bundle for the egress
proxy). The Dockerfile must stay a plain `pip install -r requirements.txt`, so instead of
changing it, the build gets the host's configuration where pip looks for a site-wide one:
/etc/xdg/pip/pip.conf. Read from `pip config list` at build time, so no index address is
ever written into the project.

OUT_DIR (mounted at /etc/xdg/pip) receives:
  pip.conf   the host's settings (config files and PIP_* variables, the variables
             winning as they do in pip), with every local path rewritten
  file-N     copies of the files it names (CA bundle, constraints): small, and copying
             them avoids mounting whole host folders such as /etc/ssl
  dir-N/     empty mount points for the local folders it names (file:// indexes,
             find-links folders), each bind-mounted read-only from the host
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from urllib.parse import unquote, urlsplit

MOUNT_POINT = "/etc/xdg/pip"
# settings whose values are paths or URLs; everything else is copied as it is
FILE_KEYS = {"cert", "client-cert", "constraint", "requirement", "build-constraint"}
LOCATION_KEYS = {"index-url", "extra-index-url", "find-links"}


def host_settings() -> dict[str, dict[str, str]]:
    """`pip config list` as {section: {name: value}}; PIP_* variables go to [global]."""
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    sections: dict[str, dict[str, str]] = {}
    from_env: dict[str, str] = {}
    for line in listing.splitlines():  # global.find-links='/opt/wheels', :env:.cert='...'
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = ast.literal_eval(value)
        if key.startswith(":env:."):
            from_env[key.removeprefix(":env:.")] = value
        else:
            section, _, name = key.partition(".")
            sections.setdefault(section, {})[name] = value
    sections.setdefault("global", {}).update(from_env)
    return sections


class Mirror:
    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.files: dict[str, str] = {}  # host file -> path inside the build
        self.dirs: dict[str, str] = {}  # host folder -> mount point inside the build

    def file(self, path: str) -> str:
        if path not in self.files:
            name = f"file-{len(self.files)}"
            shutil.copyfile(path, os.path.join(self.out_dir, name))
            os.chmod(os.path.join(self.out_dir, name), 0o644)
            self.files[path] = f"{MOUNT_POINT}/{name}"
        return self.files[path]

    def folder(self, path: str) -> str:
        path = os.path.abspath(path)
        # A PEP 503 index at .../simple links its files as ../../files/...: mount the
        # parent so those links resolve inside the build too.
        root = os.path.dirname(path) if os.path.basename(path) == "simple" else path
        if root not in self.dirs:
            name = f"dir-{len(self.dirs)}"
            os.mkdir(os.path.join(self.out_dir, name))
            self.dirs[root] = f"{MOUNT_POINT}/{name}"
        return self.dirs[root] + path[len(root) :]

    def value(self, name: str, value: str) -> str:
        words = []
        for word in str(value).split():
            if name in FILE_KEYS and os.path.isfile(word):
                word = self.file(word)
            elif name in LOCATION_KEYS and word.startswith("file:"):
                local = unquote(urlsplit(word).path)
                if os.path.isdir(local):
                    word = "file://" + self.folder(local)
            elif name in LOCATION_KEYS | FILE_KEYS and os.path.isdir(word):
                word = self.folder(word)
            # anything else (a remote index URL) is reached over the host's network
            words.append(word)
        return " ".join(words)


def main() -> None:
    out_dir = os.path.abspath(sys.argv[1])
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    mirror = Mirror(out_dir)
    lines = ["# the host's `pip config list`, for container builds (tools/container/pip_mounts.py)"]
    for section, settings in sorted(host_settings().items(), key=lambda s: s[0] != "global"):
        lines.append(f"[{section}]")
        lines += [
            f"{name} = {mirror.value(name, value)}" for name, value in sorted(settings.items())
        ]
    with open(os.path.join(out_dir, "pip.conf"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{out_dir}:{MOUNT_POINT}:ro")
    for host, inside in mirror.dirs.items():
        print(f"{host}:{inside}:ro")


if __name__ == "__main__":
    main()
