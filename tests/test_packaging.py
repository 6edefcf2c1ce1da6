"""The Dockerfile installs exactly what setup.cfg pins, and nothing else."""

from __future__ import annotations

import configparser
import re

from tests.conftest import ROOT

PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([A-Za-z0-9_.+\-]+)$")


def _setup_pins() -> dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    pins = {}
    lines = cfg["options"]["install_requires"].split("\n")
    for extra in cfg["options.extras_require"].values():
        lines += extra.split("\n")
    for line in filter(None, (x.strip() for x in lines)):
        m = PIN.match(line)
        assert m, f"setup.cfg requirement {line!r} is not pinned with =="
        pins[m.group(1).lower()] = m.group(2)
    return pins


def _dockerfile_installs() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.split("RUN", 1)[1] for line in text.splitlines() if line.strip().startswith("RUN") and "pip install" in line]


def _ci_no_deps_pins() -> dict[str, str]:
    """Packages .ci/run installs with --no-deps outside setup.cfg (mediapipe), with their pins."""
    pins = {}
    for line in (ROOT / ".ci" / "run").read_text().splitlines():
        if "--no-deps" in line:
            for token in line.split():
                m = PIN.match(token)
                if m:
                    pins[m.group(1).lower()] = m.group(2)
    return pins


def test_dockerfile_installs_the_setup_cfg_pins():
    extra = _ci_no_deps_pins()
    assert extra == {"mediapipe": "0.10.21"}
    pins = _setup_pins()
    installs = _dockerfile_installs()
    assert installs, "the Dockerfile installs nothing with pip"
    for cmd in installs:
        for part in cmd.split("&&"):
            if "pip install" not in part:
                continue
            tokens = part.split()
            assert "-c" in tokens and tokens[tokens.index("-c") + 1] == "constraints.txt", part
            if "--no-deps" in tokens:  # the one --no-deps install, exactly as CI does it
                assert [PIN.match(t) and t for t in tokens if PIN.match(t)] == ["mediapipe==0.10.21"], part
                continue
            for token in tokens:
                token = token.strip("\"'")
                m = PIN.match(token)
                if m:  # an explicit pin in the Dockerfile must be setup.cfg's
                    assert pins.get(m.group(1).lower()) == m.group(2), f"Dockerfile pins {token}, setup.cfg does not"
            assert any(t.strip("\"'").startswith(".") for t in tokens), f"{part} does not install this package"


def test_constraints_agree_with_setup_cfg():
    pins = _setup_pins()
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        m = PIN.match(line)
        if m and m.group(1).lower() in pins:
            assert pins[m.group(1).lower()] == m.group(2), f"constraints.txt {line} disagrees with setup.cfg"
    assert pins["torch"] == "2.13.0" and pins["numpy"].startswith("1.")


def test_dockerfile_python_matches_setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    base = re.search(r"^FROM\s+python:(\d+\.\d+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert base and cfg["options"]["python_requires"] == f">={base.group(1)},<3.{int(base.group(1).split('.')[1]) + 1}"


def test_dockerfile_installs_the_pose_and_openmmlab_stack_as_ci_does():
    text = (ROOT / "Dockerfile").read_text()
    assert ".[dask,pose]" in text and "COPY scripts ./scripts" in text
    assert "bash scripts/install_openmmlab.sh /usr/local" in text                 # python:3.11 image: /usr/local/bin
    assert "bash scripts/install_openmmlab.sh .venv" in (ROOT / ".ci" / "run").read_text()
