"""Static checks of the deployment files: docker-compose.yml, the Dockerfile, Prometheus' config and alert
rules, and Grafana's provisioning and dashboard. No Docker, Prometheus or Grafana is needed: the files are
parsed and cross-checked against the code (modules that exist, metrics that are defined, ports and uids
that agree with each other)."""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
GRAFANA_DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources"
GRAFANA_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards"
GRAFANA_DASHBOARDS = DEPLOY / "grafana" / "dashboards"
CADDYFILE = DEPLOY / "caddy" / "Caddyfile"
GATEWAYS = ("gateway-1", "gateway-2")  # the gateway replicas behind the proxy
SOURCE_DIRS = ("shared", "services", "tools")

WORKER_METRICS_PORT = 9100  # METRICS_PORT of the workers and the recorder in docker-compose.yml
GATEWAY_PORT = 8000

# Series that exist without being defined in our code: Prometheus' own per-target series, and what
# prometheus_client's default collectors export (process_* on Linux, python_* everywhere).
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}
CLIENT_DEFAULT_SERIES = {
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_start_time_seconds",
    "process_open_fds",
    "process_max_fds",
    "python_info",
    "python_gc_objects_collected_total",
    "python_gc_objects_uncollectable_total",
    "python_gc_collections_total",
}
TARGET_LABELS = {"job", "instance"}  # attached by Prometheus at scrape time


# ----------------------------------------------------------------------------------------------- helpers


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


@cache
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


@cache
def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(GRAFANA_DASHBOARDS.glob("*.json"))}


def victoria_services() -> dict[str, dict[str, Any]]:
    """Compose services built from this repository (they have a ``build`` section)."""
    return {name: svc for name, svc in compose()["services"].items() if "build" in svc}


def package_of(name: str) -> str:
    """The package a compose service runs: ``gateway-1`` and ``gateway-2`` are replicas of ``gateway``."""
    return re.sub(r"-\d+$", "", name)


def module_of(svc: dict[str, Any]) -> str:
    command = svc.get("command")
    assert isinstance(command, list) and command, f"command must be a list naming a module: {command!r}"
    return command[0]


def module_path(module: str) -> Path | None:
    """The file ``python -m module`` runs, if it exists."""
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base / "__main__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def env_of(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


@cache
def defined_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """Every series name our code exposes -> (metric type, label names), found by parsing the source for
    ``Counter("name", "help", [labels])``-style calls. A Counter's exposed name ends in ``_total``
    (prometheus_client adds it when the name passed does not); a Histogram exposes ``_bucket`` (with ``le``),
    ``_sum`` and ``_count``; a Summary its own name (with ``quantile``), ``_sum`` and ``_count``."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for top in SOURCE_DIRS:
        for path in sorted((ROOT / top).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                kind = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if kind not in {"Counter", "Gauge", "Histogram", "Summary"}:
                    continue
                name = _const_arg(node, 0, "name")
                if not isinstance(name, str):
                    continue
                labels = _const_arg(node, 2, "labelnames") or ()
                labelset = frozenset(str(label) for label in labels)
                for series, extra in _exposed(kind, name):
                    found[series] = (kind, labelset | extra)
    return found


def _const_arg(call: ast.Call, position: int, keyword: str) -> Any:
    node: ast.expr | None = call.args[position] if len(call.args) > position else None
    for kw in call.keywords:
        if kw.arg == keyword:
            node = kw.value
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _exposed(kind: str, name: str) -> list[tuple[str, frozenset[str]]]:
    none: frozenset[str] = frozenset()
    if kind == "Counter":
        return [(name if name.endswith("_total") else f"{name}_total", none)]
    if kind == "Histogram":
        return [(f"{name}_bucket", frozenset({"le"})), (f"{name}_sum", none), (f"{name}_count", none)]
    if kind == "Summary":
        return [(name, frozenset({"quantile"})), (f"{name}_sum", none), (f"{name}_count", none)]
    return [(name, none)]


# --- a small PromQL scanner: enough to list the series and labels an expression uses

PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool",
    "inf", "nan",
}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_IDENT = re.compile(r"(?<![\w:$.])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:]|\s*\()")


def promql_refs(expr: str) -> tuple[set[str], dict[str, set[str]], set[str]]:
    """(series names, label names matched per series, label names used in by/without/on/ignoring clauses)."""
    text = _STRING.sub('""', expr)
    text = _RANGE.sub("", text)
    grouping: set[str] = set()
    for match in _GROUPING.finditer(text):
        grouping |= {label.strip() for label in match.group(2).split(",") if label.strip()}
    text = _GROUPING.sub(" ", text)
    matchers: dict[str, set[str]] = {}
    for match in _SELECTOR.finditer(text):
        if match.group(1):
            matchers.setdefault(match.group(1), set()).update(_MATCHER_LABEL.findall(match.group(2)))
    text = _SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", text)
    names = {name for name in _IDENT.findall(text) if name.lower() not in PROMQL_KEYWORDS}
    return names, matchers, grouping


def test_promql_scanner() -> None:
    names, matchers, grouping = promql_refs(
        'histogram_quantile(0.95, sum by (le, stage) (rate(victoria_turn_stage_seconds_bucket{stage="a b"}'
        '[$__rate_interval]))) > 1.5 and on (stage) absent(up{job=~"$job"}) or vector(0)'
    )
    assert names == {"victoria_turn_stage_seconds_bucket", "up"}
    assert matchers == {"victoria_turn_stage_seconds_bucket": {"stage"}, "up": {"job"}}
    assert grouping == {"le", "stage"}


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, expr) for every PromQL expression in the dashboards, including nested and template panels."""
    out: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]], where: str) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    out.append((f"{where} / {panel.get('title')!r} {target.get('refId')}", target["expr"]))
            walk(panel.get("panels", []), where)

    for name, dash in dashboards().items():
        walk(dash.get("panels", []), name)
        for var in dash.get("templating", {}).get("list", []):
            query = var.get("query")
            query = query.get("query", "") if isinstance(query, dict) else query or ""
            for series in re.findall(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,", query):
                out.append((f"{name} / variable {var.get('name')!r}", series))
    return out


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def all_exprs() -> list[tuple[str, str]]:
    rules = [(f"alerts.yml / {r.get('alert') or r.get('record')}", r["expr"]) for r in alert_rules()]
    return dashboard_exprs() + rules


def provisioned_uid() -> str:
    uids = [
        ds["uid"]
        for path in sorted(GRAFANA_DATASOURCES.glob("*.y*ml"))
        for ds in load_yaml(path).get("datasources", [])
        if ds.get("type") == "prometheus"
    ]
    assert len(uids) == 1, f"expected one provisioned Prometheus datasource, found {uids}"
    return uids[0]


# ----------------------------------------------------------------------------------------------- compose


def test_compose_parses_and_has_the_stack() -> None:
    services = compose()["services"]
    expected = {"nats", "postgres", "migrate", *GATEWAYS, "proxy", "stt_worker", "llm_worker", "tts_worker"}
    expected |= {"call_recorder", "prometheus", "grafana"}
    assert "gateway" not in services, "the gateway runs as gateway-1 and gateway-2 behind the proxy"
    assert expected <= set(services)


def test_dockerfile_runs_modules() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r'^ENTRYPOINT \["python", "-m"\]\s*$', text, re.M)
    default = re.search(r'^CMD \["([\w.]+)"\]\s*$', text, re.M)
    assert default and module_path(default.group(1)), "the default CMD must be a runnable module"
    assert re.search(r"^USER (?!root)\S+", text, re.M), "the runtime image must not run as root"


@pytest.mark.parametrize("name", sorted(victoria_services()))
def test_compose_service_module_exists(name: str) -> None:
    module = module_of(victoria_services()[name])
    path = module_path(module)
    assert path is not None, f"{name}: `python -m {module}` has nothing to run"
    if module.startswith("services."):
        assert path.name == "__main__.py"
        # the compose service is named after its package: Prometheus finds replicas by that DNS name
        assert module == f"services.{package_of(name)}", f"compose service {name!r} runs {module}"


def test_every_service_package_is_deployed() -> None:
    packages = {p.parent.name for p in (ROOT / "services").glob("*/__main__.py")}
    deployed = {module_of(svc) for svc in victoria_services().values()}
    missing = {f"services.{p}" for p in packages} - deployed
    assert not missing, f"services without a compose service: {sorted(missing)}"


def test_compose_env_and_dependencies() -> None:
    services = victoria_services()
    for name, svc in services.items():
        env = env_of(svc)
        assert env["NATS_URL"] == "nats://nats:4222", name
        assert "@postgres:5432/" in env["DATABASE_URL"], name
        assert "container_name" not in svc, f"{name}: container_name prevents --scale"
    keys = ["GROQ_API_KEY", "AZURE_SPEECH_KEY", "AZURE_SPEECH_REGION", "OPENAI_API_KEY", "TWILIO_AUTH_TOKEN"]
    keys += ["TELNYX_API_KEY", "TELNYX_PUBLIC_KEY", "ADMIN_API_KEY", "API_KEYS", "ADMIN_NOTIFICATION_WEBHOOK_URL"]
    for name in GATEWAYS:
        gateway = services[name]
        gateway_env = env_of(gateway)
        for key in keys:
            assert gateway_env.get(key) == f"${{{key}:-}}", f"{name}: {key} must come from the environment"
        assert gateway_env["INSTANCE_ID"] == name, "each replica names itself (live calls, call control)"
        assert gateway["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert gateway["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert gateway["depends_on"]["nats"]["condition"] == "service_healthy"
        assert gateway["healthcheck"]["test"] == ["CMD", "python", "-m", "tools.healthcheck", "gateway"]
        assert "ports" not in gateway, f"{name}: reached through the proxy only"
    for worker in ("stt_worker", "llm_worker", "tts_worker"):
        assert "ports" not in services[worker], f"{worker}: a host port prevents --scale"
        assert "replicas" in services[worker].get("deploy", {}), worker


def caddy_upstreams() -> tuple[list[str], list[str]]:
    """(``reverse_proxy`` upstreams, ``health_uri`` values) in the Caddyfile (comments stripped)."""
    text = "\n".join(line.split("#", 1)[0] for line in CADDYFILE.read_text(encoding="utf-8").splitlines())
    upstreams = [u for m in re.finditer(r"reverse_proxy\s+([^{\n]+)", text) for u in m.group(1).split()]
    return upstreams, re.findall(r"health_uri\s+(\S+)", text)


def test_proxy_terminates_tls_in_front_of_both_gateways() -> None:
    services = compose()["services"]
    proxy = services["proxy"]
    assert str(proxy["image"]).startswith("caddy:")
    assert any(str(p).endswith(":443") for p in proxy["ports"]), "HTTPS (wss:// for Twilio and Telnyx)"
    assert any(str(p).endswith(":80") for p in proxy["ports"]), "port 80: ACME challenges and redirects"
    assert any(str(p).endswith(f":{GATEWAY_PORT}") for p in proxy["ports"]), "plain HTTP for a local try-out"
    mounts = {v.split(":")[0]: v.split(":")[1] for v in proxy["volumes"] if v.startswith("./")}
    assert mounts == {"./deploy/caddy/Caddyfile": "/etc/caddy/Caddyfile"}
    assert {n for n, d in proxy["depends_on"].items() if d["condition"] == "service_healthy"} == set(GATEWAYS)
    assert "VICTORIA_DOMAIN" in env_of(proxy)

    upstreams, health = caddy_upstreams()
    assert upstreams, "the Caddyfile has no reverse_proxy"
    assert set(upstreams) == {f"{name}:{GATEWAY_PORT}" for name in GATEWAYS}
    for upstream in upstreams:
        assert upstream.split(":")[0] in services, f"upstream {upstream} is not a compose service"
    from services.gateway.app import create_app
    from shared.settings import GatewaySettings

    paths = create_app(GatewaySettings()).openapi()["paths"]
    assert health and all("get" in paths.get(uri, {}) for uri in health), "health_uri must be a gateway route"
    text = CADDYFILE.read_text(encoding="utf-8")
    assert "{$VICTORIA_DOMAIN:localhost}" in text, "the domain is configurable, localhost by default"


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(value))
    assert match and any(match.groups()), f"not a compose duration in m/s: {value!r}"
    return int(match[1] or 0) * 60 + int(match[2] or 0)


def _default(env_value: str) -> float:
    match = re.fullmatch(r"\$\{\w+:-([0-9.]+)\}", env_value)
    assert match, env_value
    return float(match[1])


def test_compose_stop_grace_covers_the_drains() -> None:
    """SIGTERM drains (docs/OPERATIONS.md): compose must not SIGKILL a gateway whose live calls are still
    finishing, nor a worker finishing what it holds; and it stops the gateway first (it depends on the
    workers), so its live calls keep their workers while it drains."""
    from shared.settings import GatewaySettings, WorkerSettings

    services = victoria_services()
    for gateway in (services[name] for name in GATEWAYS):
        drain = _default(env_of(gateway)["DRAIN_TIMEOUT_S"])
        assert drain == GatewaySettings.model_fields["drain_timeout_s"].default
        assert _seconds(gateway["stop_grace_period"]) >= drain + 20  # + goodbyes (10 s) + the shutdown itself
    for name in ("stt_worker", "llm_worker", "tts_worker"):
        worker_drain = _default(env_of(services[name])["WORKER_DRAIN_TIMEOUT_S"])
        assert worker_drain == WorkerSettings.model_fields["worker_drain_timeout_s"].default
        assert _seconds(services[name]["stop_grace_period"]) >= worker_drain + 5, name
    assert _seconds(services["call_recorder"]["stop_grace_period"]) >= 10  # the message in hand, then exit
    for gateway in (services[name] for name in GATEWAYS):
        for name in ("stt_worker", "llm_worker", "tts_worker", "call_recorder"):
            assert gateway["depends_on"][name]["condition"] == "service_healthy", name


def one_shot(svc: dict[str, Any]) -> bool:
    """A job that runs to completion (migrate): it has no steady state to probe; dependents wait for its exit."""
    return str(svc.get("restart", "")) == "no"


def test_every_compose_service_has_a_healthcheck() -> None:
    from tools.healthcheck import SERVICES

    services = compose()["services"]
    for name, svc in services.items():
        if one_shot(svc):
            continue
        check = svc.get("healthcheck")
        assert check and check.get("test"), f"{name}: no healthcheck"
        test = check["test"]
        assert isinstance(test, list) and test[0] in {"CMD", "CMD-SHELL"}, f"{name}: {test!r}"
        for key in ("interval", "timeout", "retries"):
            assert key in check, f"{name}: healthcheck without {key}"
        if "build" in svc:  # ours: the one probe module, naming a service it knows
            assert test[1:4] == ["python", "-m", "tools.healthcheck"], f"{name}: {test!r}"
            assert test[4] in SERVICES, f"{name}: tools.healthcheck has no probe {test[4]!r}"
            if name in SERVICES:
                assert test[4] == name, f"{name} probes {test[4]}"


def test_compose_dependencies_wait_for_health() -> None:
    services = compose()["services"]
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: depends_on must name conditions, not just services"
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown {dep}"
            condition = spec.get("condition")
            if one_shot(services[dep]):
                assert condition == "service_completed_successfully", f"{name} -> {dep}: {condition}"
            else:
                assert condition == "service_healthy", f"{name} -> {dep}: {condition}"
    for name in GATEWAYS:
        assert {"stt_worker", "llm_worker", "tts_worker", "call_recorder"} <= set(services[name]["depends_on"])


def test_maintenance_service_backs_up_into_a_volume() -> None:
    services = compose()["services"]
    maint = services["maintenance"]
    assert maint["command"] == ["tools.db", "schedule"]
    env = env_of(maint)
    volume = next(v for v in maint["volumes"] if v.split(":")[1] == env["BACKUP_DIR"])
    assert volume.split(":")[0] in compose()["volumes"], "backups must outlive the container"
    for key in ("RETENTION_DAYS", "BACKUP_KEEP", "MAINTENANCE_INTERVAL_H"):
        assert key in env, key
    # the image makes BACKUP_DIR, owned by its user, so a fresh named volume is writable
    assert env["BACKUP_DIR"] in DOCKERFILE.read_text(encoding="utf-8")


# ----------------------------------------------------------------------------------------------- prometheus


def test_prometheus_scrapes_every_victoria_service() -> None:
    config = load_yaml(PROMETHEUS)
    assert [str(ALERTS.name) in f for f in config["rule_files"]] == [True]
    targets: dict[str, set[str]] = {}
    for job in config["scrape_configs"]:
        hosts = targets.setdefault(job["job_name"], set())
        for sd in job.get("dns_sd_configs", []):
            hosts |= {f"{n}:{sd['port']}" for n in sd["names"]}
        for sc in job.get("static_configs", []):
            hosts |= set(sc["targets"])
    for name, svc in victoria_services().items():
        port = env_of(svc).get("METRICS_PORT", "0")
        if one_shot(svc):
            continue
        job = package_of(name)
        expected = f"{name}:{GATEWAY_PORT}" if job == "gateway" else f"{name}:{port}"
        if job != "gateway":
            assert port == str(WORKER_METRICS_PORT), f"{name}: METRICS_PORT {port}"
        assert expected in targets.get(job, set()), f"job {job!r} must scrape {expected}"
    assert "nats" not in targets, "NATS' monitoring port serves JSON, not Prometheus metrics"


def test_alert_rules_are_well_formed() -> None:
    rules = alert_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in rules:
        assert rule["expr"].strip(), rule["alert"]
        assert rule.get("labels", {}).get("severity") in {"warning", "critical"}, rule["alert"]
        assert rule.get("annotations", {}).get("summary"), rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]


# ----------------------------------------------------------------------------------------------- grafana


def test_grafana_provisioning_points_at_the_mounted_dashboards() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"] if v.startswith("./")}
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    paths = [
        provider["options"]["path"]
        for path in sorted(GRAFANA_PROVIDERS.glob("*.y*ml"))
        for provider in load_yaml(path)["providers"]
    ]
    assert paths == [mounts["./deploy/grafana/dashboards"]]
    prometheus = [ds["url"] for p in GRAFANA_DATASOURCES.glob("*.y*ml") for ds in load_yaml(p)["datasources"]]
    assert prometheus == ["http://prometheus:9090"]


def test_dashboards_use_the_provisioned_datasource() -> None:
    uid = provisioned_uid()
    assert uid == "victoria-prometheus"
    assert "victoria-overview.json" in dashboards()

    def check(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "datasource" and value is not None:
                    assert isinstance(value, dict), f"{where}: datasource by name, not by uid: {value!r}"
                    assert value.get("uid") == uid, f"{where}: datasource uid {value.get('uid')!r}"
                check(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, item in enumerate(node):
                check(item, f"{where}[{i}]")

    for name, dash in dashboards().items():
        check(dash, name)


def test_dashboard_layout() -> None:
    dash = dashboards()["victoria-overview.json"]
    assert dash["uid"] == "victoria-overview"
    assert dash["schemaVersion"] == 39
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert rows == ["Calls", "Latency", "Workers", "Recorder", "Processes", "Telephony", "Agent actions", "Turn-taking"]
    for panel in panels:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]


# ----------------------------------------------------------------------------------------------- metrics


def test_source_scan_finds_the_metrics() -> None:
    metrics = defined_metrics()
    assert metrics["victoria_calls_active"][0] == "Gauge"
    assert metrics["victoria_worker_requests_total"][0] == "Counter"
    assert "le" in metrics["victoria_turn_stage_seconds_bucket"][1]
    assert "stage" in metrics["victoria_turn_stage_seconds_bucket"][1]
    assert "victoria_recorder_pending_messages" in metrics


@pytest.mark.parametrize("where,expr", all_exprs())
def test_expressions_use_defined_metrics_and_labels(where: str, expr: str) -> None:
    metrics = defined_metrics()
    names, matchers, grouping = promql_refs(expr)
    assert names, f"{where}: no metric found in {expr!r}"
    known_labels = set(TARGET_LABELS)
    for name in names:
        if name in PROMETHEUS_SERIES or name in CLIENT_DEFAULT_SERIES:
            continue
        assert name in metrics, f"{where}: {name} is not defined in {', '.join(SOURCE_DIRS)}"
        labels = metrics[name][1] | TARGET_LABELS
        known_labels |= labels
        unknown = matchers.get(name, set()) - labels
        assert not unknown, f"{where}: {name} has no label(s) {sorted(unknown)}"
    if names <= PROMETHEUS_SERIES | CLIENT_DEFAULT_SERIES:
        return  # labels of built-in series are not checked
    unknown = grouping - known_labels
    assert not unknown, f"{where}: grouping by unknown label(s) {sorted(unknown)}"
