"""The Docker deployment agrees with its cluster config.

Nothing is built or run here (no Docker engine needed): docker-compose.yml is
parsed with PyYAML, configs/compose-4.toml with dex.config.load_cluster, and
the Dockerfile is read line by line; then every place where two of them must
name the same thing (service name and node id and host, ports, data volume,
database URL, config path) is compared.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from dex.config import SECRET_ENV, ClusterConfig, load_cluster

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
CONFIG_FILE = ROOT / "configs" / "compose-4.toml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CONFIG_IN_IMAGE = "configs/compose-4.toml"
POSTGRES_SERVICE = "postgres"
# ${VAR}, ${VAR:?msg} or ${VAR?msg}: compose fills it in from the environment.
REQUIRED_ENV_REF = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?\?[^}]*)\}$")
ANY_ENV_REF = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}$")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


# ------------------------------------------------------------------ loading


@pytest.fixture(scope="module")
def compose() -> dict:
    assert COMPOSE_FILE.exists(), f"{COMPOSE_FILE} is missing"
    doc = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict), f"{COMPOSE_FILE}: no services mapping"
    return doc


@pytest.fixture(scope="module")
def cfg() -> ClusterConfig:
    # DATABASE_URL in the environment would override the file's database_url;
    # the test is about the file.
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DATABASE_URL", raising=False)
        mp.delenv(SECRET_ENV, raising=False)
        return load_cluster(CONFIG_FILE)


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    assert DOCKERFILE.exists(), f"{DOCKERFILE} is missing"
    return _dockerfile_instructions(DOCKERFILE.read_text())


def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, args = full.partition(" ")
            out.append((keyword.upper(), args.strip()))
    if pending.strip():
        keyword, _, args = pending.strip().partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def _args(instruction_args: str) -> list[str]:
    """Exec form (JSON array) or shell form, as a list of words."""
    if instruction_args.startswith("["):
        return json.loads(instruction_args)
    return shlex.split(instruction_args)


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.partition("=") for item in env)
        return {k: v for k, _, v in pairs}
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


def _ports(service: dict) -> list[tuple[str | None, int | None, int]]:
    """(host_ip, published, target) for each published port."""
    out = []
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            published = p.get("published")
            out.append((p.get("host_ip"), int(published) if published is not None else None, int(p["target"])))
            continue
        spec = str(p).split("/", 1)[0]
        if spec.startswith("["):  # [::1]:8101:8100
            host_ip, _, rest = spec[1:].partition("]:")
            published, _, target = rest.partition(":")
            out.append((host_ip, int(published), int(target)))
            continue
        parts = spec.split(":")
        if len(parts) == 1:
            out.append((None, None, int(parts[0])))
        elif len(parts) == 2:
            out.append((None, int(parts[0]), int(parts[1])))
        else:
            out.append((":".join(parts[:-2]), int(parts[-2]), int(parts[-1])))
    return out


def _volume_mounts(service: dict) -> list[tuple[str, str]]:
    """(source, target) for each volume mount."""
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            out.append((v.get("source", ""), v["target"]))
        else:
            parts = str(v).split(":")
            if len(parts) == 1:
                out.append(("", parts[0]))
            else:
                out.append((parts[0], parts[1]))
    return out


def _node_services(compose: dict, cfg: ClusterConfig) -> dict[str, dict]:
    return {n.id: compose["services"].get(n.id) for n in cfg.nodes}


# ---------------------------------------------------------------- the nodes


def test_every_config_node_has_a_service_of_the_same_name(compose, cfg):
    services = compose["services"]
    for node in cfg.nodes:
        assert node.id in services, (
            f"node {node.id} is in {CONFIG_FILE.name} but docker-compose.yml has no service {node.id!r} "
            f"(services: {', '.join(services)})"
        )


def test_no_extra_node_services(compose, cfg):
    ids = {n.id for n in cfg.nodes}
    for name, service in compose["services"].items():
        env = _environment(service)
        if "DEX_NODE_ID" in env:
            assert env["DEX_NODE_ID"] in ids, (
                f"service {name} runs node {env['DEX_NODE_ID']!r}, which {CONFIG_FILE.name} does not define "
                f"(nodes: {', '.join(sorted(ids))})"
            )


def test_each_service_runs_the_node_it_is_named_after(compose, cfg):
    for node_id, service in _node_services(compose, cfg).items():
        env = _environment(service)
        assert env.get("DEX_NODE_ID") == node_id, (
            f"service {node_id}: DEX_NODE_ID is {env.get('DEX_NODE_ID')!r}, expected {node_id!r}"
        )


def test_raft_and_api_hosts_are_the_service_names(cfg):
    for node in cfg.nodes:
        assert node.raft_host == node.id, (
            f"node {node.id}: raft host is {node.raft_host!r} in {CONFIG_FILE.name}, but peers reach the "
            f"container by its service name {node.id!r}"
        )
        assert node.api_host == node.id, (
            f"node {node.id}: api host is {node.api_host!r} in {CONFIG_FILE.name}, but peers reach the "
            f"container by its service name {node.id!r}"
        )


def test_published_port_reaches_the_api_port_on_loopback_only(compose, cfg):
    seen: dict[int, str] = {}
    for node in cfg.nodes:
        ports = _ports(compose["services"][node.id])
        api = [p for p in ports if p[2] == node.api_port]
        assert api, (
            f"service {node.id} publishes {ports or 'nothing'}, none to the node's api port {node.api_port} "
            f"from {CONFIG_FILE.name}"
        )
        for host_ip, published, target in ports:
            assert host_ip in LOOPBACK, (
                f"service {node.id} publishes container port {target} on {host_ip or 'every interface'}; "
                f"publish it on 127.0.0.1 only (\"127.0.0.1:{published}:{target}\")"
            )
            assert published is not None, f"service {node.id}: port {target} has no fixed host port"
            assert published not in seen, f"host port {published} is published by both {seen[published]} and {node.id}"
            seen[published] = node.id


def test_raft_ports_are_not_published(compose, cfg):
    for node in cfg.nodes:
        for host_ip, published, target in _ports(compose["services"][node.id]):
            assert target != node.raft_port, (
                f"service {node.id} publishes its Raft port {node.raft_port} on the host "
                f"({host_ip or '*'}:{published}); Raft must stay on the compose network"
            )


def test_faucet_is_off(cfg):
    assert cfg.faucet is False, f"{CONFIG_FILE.name} enables the faucet; it must be off by default"


# ------------------------------------------------------------------- secret


def test_cluster_secret_is_never_a_literal(compose, cfg):
    top_secrets = compose.get("secrets") or {}
    for node in cfg.nodes:
        service = compose["services"][node.id]
        env = _environment(service)
        if SECRET_ENV in env:
            value = env[SECRET_ENV]
            m = REQUIRED_ENV_REF.match(value)
            assert m, (
                f"service {node.id}: {SECRET_ENV} must be a required reference such as "
                f"'${{{SECRET_ENV}:?...}}', not a literal value"
            )
        else:
            names = [s if isinstance(s, str) else s.get("source") for s in service.get("secrets") or []]
            assert names, f"service {node.id} gets the cluster secret neither from {SECRET_ENV} nor from a compose secret"
            targets = {
                (s.get("target") if isinstance(s, dict) and s.get("target") else f"/run/secrets/{n}")
                for s, n in zip(service["secrets"], names, strict=True)
            }
            assert str(cfg.secret_file) in targets, (
                f"service {node.id} mounts secrets at {sorted(targets)}, but {CONFIG_FILE.name} reads "
                f"secret_file {cfg.secret_file}"
            )
            for n in names:
                assert n in top_secrets, f"service {node.id} uses secret {n!r}, which is not declared at the top level"
                assert "content" not in top_secrets[n], f"secret {n!r} is written into docker-compose.yml"
    # Belt and braces: nothing in the file looks like a secret given a value.
    for name, service in compose["services"].items():
        for key, value in _environment(service).items():
            if "SECRET" in key.upper():
                assert ANY_ENV_REF.match(value), f"service {name}: {key} has a literal value in docker-compose.yml"


def test_secret_file_is_where_compose_secrets_are_mounted(cfg):
    assert str(cfg.secret_file).startswith("/run/secrets/"), (
        f"{CONFIG_FILE.name}: secret_file is {cfg.secret_file}, expected a path under /run/secrets/"
    )


# ----------------------------------------------------------------- postgres


def test_database_url_points_at_the_postgres_service(compose, cfg):
    services = compose["services"]
    assert POSTGRES_SERVICE in services, f"docker-compose.yml has no {POSTGRES_SERVICE!r} service"
    pg_env = _environment(services[POSTGRES_SERVICE])
    pg_user = pg_env.get("POSTGRES_USER", "postgres")
    pg_password = pg_env.get("POSTGRES_PASSWORD")
    pg_db = pg_env.get("POSTGRES_DB", pg_user)
    assert cfg.database_url, f"{CONFIG_FILE.name} has no database_url"
    for node in cfg.nodes:
        service = services[node.id]
        url = _environment(service).get("DATABASE_URL")
        assert url, f"service {node.id} sets no DATABASE_URL"
        parts = urlsplit(url)
        assert parts.scheme.startswith("postgresql"), f"service {node.id}: DATABASE_URL {url!r} is not a PostgreSQL URL"
        assert parts.hostname == POSTGRES_SERVICE, (
            f"service {node.id}: DATABASE_URL host is {parts.hostname!r}, expected the service {POSTGRES_SERVICE!r}"
        )
        assert parts.port in (None, 5432), f"service {node.id}: DATABASE_URL port {parts.port} is not PostgreSQL's 5432"
        assert parts.username == pg_user, (
            f"service {node.id}: DATABASE_URL user {parts.username!r} but postgres POSTGRES_USER is {pg_user!r}"
        )
        assert parts.password == pg_password, (
            f"service {node.id}: DATABASE_URL password differs from the postgres service's POSTGRES_PASSWORD"
        )
        assert parts.path.lstrip("/") == pg_db, (
            f"service {node.id}: DATABASE_URL database {parts.path.lstrip('/')!r} but postgres POSTGRES_DB is {pg_db!r}"
        )
        assert url == cfg.database_url, (
            f"service {node.id}: DATABASE_URL {url!r} differs from database_url {cfg.database_url!r} in {CONFIG_FILE.name}"
        )
        depends = service.get("depends_on") or {}
        condition = depends.get(POSTGRES_SERVICE, {}).get("condition") if isinstance(depends, dict) else None
        assert condition == "service_healthy", (
            f"service {node.id} must depend on {POSTGRES_SERVICE} with condition service_healthy (has {depends!r})"
        )
    assert "healthcheck" in services[POSTGRES_SERVICE], f"service {POSTGRES_SERVICE} has no healthcheck"


# -------------------------------------------------------------- data volume


def test_each_node_keeps_data_dir_on_its_own_named_volume(compose, cfg):
    declared = compose.get("volumes") or {}
    used: dict[str, str] = {}
    for node in cfg.nodes:
        mounts = _volume_mounts(compose["services"][node.id])
        sources = [src for src, target in mounts if target.rstrip("/") == str(cfg.data_dir)]
        assert sources, (
            f"service {node.id} mounts {[t for _, t in mounts] or 'nothing'}, not data_dir {cfg.data_dir} "
            f"from {CONFIG_FILE.name}"
        )
        src = sources[0]
        assert src in declared, (
            f"service {node.id} mounts {src!r} on {cfg.data_dir}, which is not a named volume declared at the top level"
        )
        assert src not in used, f"services {used.get(src)} and {node.id} share the data volume {src!r}"
        used[src] = node.id


# --------------------------------------------------------------- Dockerfile


def test_services_build_this_dockerfile(compose, cfg):
    for node in cfg.nodes:
        build = compose["services"][node.id].get("build")
        assert build is not None, f"service {node.id} is not built from the Dockerfile"
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        path = (COMPOSE_FILE.parent / context / dockerfile).resolve()
        assert path == DOCKERFILE, f"service {node.id} builds {path}, expected {DOCKERFILE}"


def test_dockerfile_exposes_the_config_ports(dockerfile, cfg):
    exposed = set()
    for keyword, args in dockerfile:
        if keyword == "EXPOSE":
            exposed.update(int(p.split("/")[0]) for p in args.split())
    for node in cfg.nodes:
        for what, port in (("raft", node.raft_port), ("api", node.api_port)):
            assert port in exposed, (
                f"node {node.id}'s {what} port {port} ({CONFIG_FILE.name}) is not EXPOSEd by the Dockerfile "
                f"(EXPOSE {sorted(exposed)})"
            )


def test_dockerfile_cmd_runs_the_compose_config(dockerfile):
    cmds = [args for keyword, args in dockerfile if keyword == "CMD"]
    assert cmds, "the Dockerfile has no CMD"
    cmd = " ".join(_args(cmds[-1]))
    assert CONFIG_IN_IMAGE in cmd, f"the Dockerfile CMD does not run {CONFIG_IN_IMAGE}: {cmd!r}"
    assert "DEX_NODE_ID" in cmd, f"the Dockerfile CMD does not take the node id from DEX_NODE_ID: {cmd!r}"
    assert "dex node" in cmd, f"the Dockerfile CMD does not run `dex node`: {cmd!r}"


def test_dockerfile_runs_as_non_root(dockerfile):
    users = [args for keyword, args in dockerfile if keyword == "USER"]
    assert users, "the Dockerfile has no USER: the node would run as root"
    assert users[-1].split(":")[0] not in ("root", "0"), f"the Dockerfile's last USER is {users[-1]!r}"


def test_dockerfile_healthcheck_asks_where_the_node_listens(dockerfile, cfg):
    checks = [args for keyword, args in dockerfile if keyword == "HEALTHCHECK"]
    assert checks, "the Dockerfile has no HEALTHCHECK"
    check = checks[-1]
    assert "/healthz" in check, f"the HEALTHCHECK does not GET /healthz: {check!r}"
    # The node binds its API to its api host (the service name), not to the
    # container's loopback: a check against 127.0.0.1 would always fail.
    if not all(n.api_host in (*LOOPBACK, "0.0.0.0") for n in cfg.nodes):
        for loop in LOOPBACK:
            assert f"//{loop}:" not in check, (
                f"the HEALTHCHECK calls {loop}, but nodes bind their API to their api host "
                f"({', '.join(sorted({n.api_host for n in cfg.nodes}))}), not to loopback"
            )


def _stages(dockerfile) -> list[list[tuple[str, str]]]:
    """The Dockerfile's build stages, each a list of its instructions, FROM first."""
    stages: list[list[tuple[str, str]]] = []
    for keyword, args in dockerfile:
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, args))
    return stages


def test_the_image_runs_the_compiled_engine(dockerfile):
    """A stage with a C compiler and OpenSSL's headers builds dex's wheel from
    what setup.py needs (the compiled engine, docs/ENGINE.md), and the image
    that runs installs that wheel and refuses to build if the engine in it is
    not the compiled one. (Checked by hand without Docker: `pip wheel --no-deps .`
    from exactly these files, installed into a fresh venv, runs "compiled".)"""
    stages = _stages(dockerfile)
    builders = [
        st for st in stages
        if any(k == "RUN" and "pip wheel" in a for k, a in st)
    ]
    assert builders, "no Dockerfile stage builds dex's wheel (pip wheel): the image would not compile the engine"
    wheel = builders[0]
    name = wheel[0][1].split()[-1] if " AS " in wheel[0][1].upper() else None
    assert name, "the wheel stage has no name for the image to copy from"
    installs = " ".join(a for k, a in wheel if k == "RUN" and "apt-get install" in a)
    for package in ("gcc", "libssl-dev"):
        assert package in installs.split(), f"the wheel stage does not install {package}"
    copied = set()
    for k, a in wheel:
        if k == "COPY" and not a.startswith("--from"):
            copied.update(_args(a)[:-1])
    for needed in ("pyproject.toml", "setup.py", "README.md", "dex"):
        assert needed in copied, f"the wheel stage does not copy {needed}: setup.py needs it"
    final = stages[-1]
    assert any(k == "COPY" and a.startswith(f"--from={name} ") for k, a in final), "the image does not copy the wheel"
    runs = " ".join(a for k, a in final if k == "RUN")
    assert "pip install" in runs and ".whl" in runs, "the image does not install the wheel"
    assert "IMPLEMENTATION == 'compiled'" in runs, "the image does not check that it runs the compiled engine"


def test_dockerignore_keeps_secrets_and_local_state_out(cfg):
    assert DOCKERIGNORE.exists(), f"{DOCKERIGNORE} is missing"
    patterns = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")}
    for needed in ("var", ".venv", ".git", ".env"):
        assert needed in patterns, f".dockerignore does not exclude {needed}/ from the build context"
    for needed in ("dex", "configs", "pyproject.toml", "setup.py", "README.md", "cluster", "web"):
        assert needed not in patterns, f".dockerignore excludes {needed}, which the image needs"
    for local_build in ("dex/engine/_compiled/*.so", "dex/engine/_compiled/_stamp.py"):
        assert local_build in patterns, f".dockerignore lets a local build ({local_build}) into the image's context"


def test_each_nodes_public_url_is_its_published_port(compose, cfg):
    for node in cfg.nodes:
        published = [p for p in _ports(compose["services"][node.id]) if p[2] == node.api_port]
        assert published, node.id
        host_ip, port, _ = published[0]
        assert node.public_url == f"http://{host_ip}:{port}", (
            f"{node.id}: public_url {node.public_url!r}; the dashboard from a host browser needs the published port"
        )


def test_the_faucet_is_a_documented_environment_switch(compose):
    env = compose["x-node-env"] if "x-node-env" in compose else compose["services"]["n1"]["environment"]
    assert env["DEX_FAUCET"] == "${DEX_FAUCET:-false}"


def test_the_readme_runs_compose_as_the_compose_file_says(compose):
    header = [line[1:].strip() for line in COMPOSE_FILE.read_text().splitlines() if line.startswith("#   ")]
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Containers"):]
    block = section[section.index("```sh") + len("```sh"):section.index("```", section.index("```sh") + 5)]
    assert [line.strip() for line in block.strip().splitlines()] == header[:3]
