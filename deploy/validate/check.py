#!/usr/bin/env python3
"""Offline checks of fitstream's rendered Kubernetes manifests and Grafana dashboard.

Run through deploy/validate/validate.sh, which renders every overlay with `kubectl kustomize`
and calls this with the venv that has kubernetes-validate. One line per check:

    ok   <check> <subject>
    FAIL <check> <subject>: <why>

and a last line `validate: N passed, M failed`. Exit status 1 on any failure, 2 on bad usage.

Checks
  schema        core kinds against the Kubernetes OpenAPI schemas of kubernetes-validate in
                strict mode (unknown fields fail); Strimzi, KEDA and Prometheus Operator kinds
                against the CRD schemas in crds/, made strict: every object schema that lists
                properties rejects other fields unless the CRD says
                x-kubernetes-preserve-unknown-fields; metadata against the strict ObjectMeta.
                A kind/apiVersion that is neither a core kind nor served by a CRD here fails.
  probes        every container of a long-running workload has a liveness and a readiness probe
                (on a declared port).
  security      non-root, read-only root file system, no privilege escalation, capabilities
                dropped, RuntimeDefault seccomp, requests and limits, grace period > 30 s.
  statefulset   serviceName names a headless Service of the same render.
  ports         a Service selects a workload of the render and each named targetPort is a port
                of every workload it selects; a NetworkPolicy's named ingress ports are ports of
                the pods it selects (a renamed port would silently let nothing in).
  credentials   the SASL user of a workload is a KafkaUser of the same render, and its password
                comes from that KafkaUser's Secret (key "password").
  strimzi       KafkaTopic/KafkaUser carry strimzi.io/cluster; KafkaTopic config keys are
                Kafka topic configs (the CRD lets any key through).
  keda          a ScaledObject targets a workload of the render, that workload has no
                spec.replicas, a kafka trigger's consumerGroup is the service's group id and
                maxReplicaCount does not exceed the partitions of the keyed topics.
  compose       deploy/compose.yaml against the Compose specification's JSON schema (unknown
                fields fail), and: profiler, segmenter and planner run as `run <service>`,
                every fitstream container has its config file, runs as 10001 read-only, and
                every config/secret file it names exists.
  copy          k8s/base/config/plants.toml is byte for byte deploy/plants.toml (kustomize reads
                no file from outside k8s/, so the base carries a copy of the routing file).
  rules         a PrometheusRule's rules each have an alert (with severity and summary) or a
                record, an expression, and every fitstream_ metric in it is in metrics.txt.
  metrics-list  deploy/grafana/metrics.txt: one fitstream_ name per line, no duplicates.
  dashboard     the dashboard is Grafana JSON with queries, and every fitstream_ metric in a
                query (panels, rows, templating, annotations) is in metrics.txt (histograms
                through their _bucket/_sum/_count series).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml
from referencing import Registry, Resource

import kubernetes_validate.utils as kv

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod"}
BATCH_KINDS = {"Job", "CronJob"}

# Topic-level configs of Apache Kafka 4.x (org.apache.kafka.common.config.TopicConfig and
# the remote storage ones). Strimzi's CRD accepts any key under spec.config, so a typo such as
# "retention.msec" would otherwise reach the Topic Operator.
KAFKA_TOPIC_CONFIGS = {
    "cleanup.policy", "compression.type", "compression.gzip.level", "compression.lz4.level",
    "compression.zstd.level", "delete.retention.ms", "file.delete.delay.ms", "flush.messages",
    "flush.ms", "follower.replication.throttled.replicas", "index.interval.bytes",
    "leader.replication.throttled.replicas", "local.retention.bytes", "local.retention.ms",
    "max.compaction.lag.ms", "max.message.bytes", "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms", "message.timestamp.type", "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms", "min.insync.replicas", "preallocate", "remote.storage.enable",
    "remote.log.copy.disable", "remote.log.delete.on.disable", "retention.bytes",
    "retention.ms", "segment.bytes", "segment.index.bytes", "segment.jitter.ms", "segment.ms",
    "unclean.leader.election.enable",
}

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# libyaml when the wheel has it (it does on common platforms): 10x faster on the CRD files.
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
METRIC_RE = re.compile(r"\bfitstream_[A-Za-z0-9_]+")


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, name: str, subject: str, errors: Iterable[str]) -> None:
        errors = list(errors)
        if errors:
            self.failed += 1
            for e in errors:
                print(f"FAIL {name} {subject}: {e}")
        else:
            self.passed += 1
            print(f"ok   {name} {subject}")


# ---------------------------------------------------------------------------------- schemas

def _strict(schema: Any) -> Any:
    """An OpenAPI v3 CRD schema turned into a JSON schema that rejects unknown fields."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    s = {k: _strict(v) if k in ("items", "not", "additionalProperties") or k.endswith("Of") else v
         for k, v in schema.items()}
    if "properties" in s:
        s["properties"] = {k: _strict(v) for k, v in s["properties"].items()}
    preserve = s.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in s and "additionalProperties" not in s and not preserve:
        s["additionalProperties"] = False
    if s.get("x-kubernetes-int-or-string") and "anyOf" not in s:
        s.pop("type", None)
        s["type"] = ["integer", "string"]
    if s.get("nullable") is True and isinstance(s.get("type"), str):
        s["type"] = [s["type"], "null"]
    return s


class Crds:
    """CRD schemas by (group, version, kind)."""

    def __init__(self, folder: Path) -> None:
        self.by_gvk: dict[tuple[str, str, str], Any] = {}
        self.kinds: dict[tuple[str, str], list[str]] = {}  # (group, kind) -> served versions
        self.files: list[str] = []
        for path in sorted(folder.glob("*.yaml")):
            for doc in yaml.load_all(path.read_text(), Loader=Loader):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                self.files.append(path.name)
                group = doc["spec"]["group"]
                kind = doc["spec"]["names"]["kind"]
                for v in doc["spec"]["versions"]:
                    if not v.get("served", True):
                        continue
                    schema = copy.deepcopy(v["schema"]["openAPIV3Schema"])
                    # metadata is checked against the strict ObjectMeta instead
                    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                    schema["properties"].pop("status", None)
                    self.by_gvk[(group, v["name"], kind)] = jsonschema.Draft4Validator(_strict(schema))
                    self.kinds.setdefault((group, kind), []).append(v["name"])


class Schemas:
    def __init__(self, k8s_version: str, crds: Crds) -> None:
        self.k8s_version = k8s_version
        self.crds = crds
        version = [v for v in kv.all_versions()
                   if kv.major_minor(v) <= kv.major_minor(k8s_version)][-1]
        defs = kv.schema_contents(f"kubernetes-json-schema/v{version}-local-strict/_definitions.json",
                                  k8s_version)
        registry = Resource.from_contents(defs) @ Registry()
        self.object_meta = jsonschema.Draft202012Validator(
            {"$ref": defs["$id"] + "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
            registry=registry)

    def validate(self, doc: dict) -> list[str]:
        api_version = doc.get("apiVersion")
        kind = doc.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            return ["no apiVersion or kind"]
        group, _, version = api_version.rpartition("/")
        if (group, kind) in self.crds.kinds or (group, version, kind) in self.crds.by_gvk:
            validator = self.crds.by_gvk.get((group, version, kind))
            if validator is None:
                served = ", ".join(f"{group}/{v}" for v in self.crds.kinds[(group, kind)])
                return [f"apiVersion {api_version} is not served for {kind} (CRD serves {served})"]
            errors = [_fmt(e) for e in validator.iter_errors(doc)]
            errors += [_fmt(e, "metadata") for e in self.object_meta.iter_errors(doc.get("metadata", {}))]
            return errors
        try:
            kv.validate(doc, self.k8s_version, strict=True)
        except kv.SchemaNotFoundError:
            known_group = any(g == group for g, _ in self.crds.kinds)
            hint = "" if known_group else " (not a core kind, and no CRD under crds/ defines it)"
            return [f"unknown kind/apiVersion {kind} {api_version} for Kubernetes "
                    f"{kv.major_minor(self.k8s_version)}{hint}"]
        except kv.ValidationError as e:
            return [_fmt(e)]
        return []


def _fmt(e: jsonschema.ValidationError, prefix: str = "") -> str:
    path = ".".join([prefix] * bool(prefix) + [str(p) for p in e.absolute_path])
    msg = e.message if len(e.message) < 300 else e.message[:300] + "..."
    return f"{path or '<root>'}: {msg}"


# ---------------------------------------------------------------------------- custom checks

def pod_spec(doc: dict) -> dict | None:
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec")
    if kind in WORKLOAD_KINDS or kind in BATCH_KINDS:
        return (spec.get("template") or {}).get("spec")
    return None


def check_probes(doc: dict) -> list[str]:
    errors = []
    for c in (pod_spec(doc) or {}).get("containers") or []:
        ports = {p.get("name") for p in c.get("ports") or [] if p.get("name")}
        for probe in ("livenessProbe", "readinessProbe"):
            p = c.get(probe)
            if not p:
                errors.append(f"container {c.get('name')} has no {probe}")
                continue
            for handler in ("httpGet", "tcpSocket", "grpc"):
                port = (p.get(handler) or {}).get("port")
                if isinstance(port, str) and port not in ports:
                    errors.append(f"container {c.get('name')} {probe} uses port {port!r}, "
                                  f"not a declared port name")
    return errors


def check_security(doc: dict) -> list[str]:
    ps = pod_spec(doc) or {}
    psc = ps.get("securityContext") or {}
    errors = []
    grace = ps.get("terminationGracePeriodSeconds")
    if not isinstance(grace, int) or grace <= 30:
        errors.append(f"terminationGracePeriodSeconds {grace} leaves no room for the 30 s drain")
    for c in (ps.get("containers") or []) + (ps.get("initContainers") or []):
        n = c.get("name")
        sc = c.get("securityContext") or {}

        def eff(key: str) -> Any:
            return sc.get(key, psc.get(key))

        if eff("runAsNonRoot") is not True:
            errors.append(f"container {n}: runAsNonRoot is not true")
        if eff("runAsUser") == 0:
            errors.append(f"container {n}: runAsUser 0")
        if sc.get("readOnlyRootFilesystem") is not True:
            errors.append(f"container {n}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            errors.append(f"container {n}: allowPrivilegeEscalation is not false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            errors.append(f"container {n}: capabilities do not drop ALL")
        if (eff("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            errors.append(f"container {n}: seccompProfile is not RuntimeDefault")
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            missing = [r for r in ("cpu", "memory") if r not in (res.get(part) or {})]
            if missing:
                errors.append(f"container {n}: no {part} for {', '.join(missing)}")
    return errors


def index(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(d.get("kind"), (d.get("metadata") or {}).get("name")): d for d in docs}


def check_statefulset(doc: dict, idx: dict) -> list[str]:
    name = (doc.get("spec") or {}).get("serviceName")
    svc = idx.get(("Service", name))
    if svc is None:
        return [f"serviceName {name!r} is not a Service of this render"]
    if (svc.get("spec") or {}).get("clusterIP") != "None":
        return [f"Service {name} is not headless (clusterIP: None)"]
    return []


def template_labels(doc: dict) -> dict:
    return ((((doc.get("spec") or {}).get("template") or {}).get("metadata") or {})
            .get("labels") or {})


def selected(selector: dict, docs: list[dict]) -> list[dict]:
    """The workloads whose pods carry every label of `selector`."""
    return [d for d in docs if d.get("kind") in WORKLOAD_KINDS
            and all(template_labels(d).get(k) == v for k, v in selector.items())]


def port_names(doc: dict) -> set[str]:
    return {p.get("name") for c in (pod_spec(doc) or {}).get("containers") or []
            for p in c.get("ports") or [] if p.get("name")}


def check_service_ports(doc: dict, docs: list[dict]) -> list[str]:
    spec = doc.get("spec") or {}
    selector = spec.get("selector") or {}
    if not selector:
        return []
    pods = selected(selector, docs)
    if not pods:
        return [f"selects no workload of this render ({selector})"]
    errors = []
    for p in spec.get("ports") or []:
        target = p.get("targetPort")
        if isinstance(target, str):
            for w in pods:
                if target not in port_names(w):
                    errors.append(f"port {p.get('name')}: targetPort {target!r} is not a port of "
                                  f"{(w.get('metadata') or {}).get('name')}")
    return errors


def check_policy_ports(doc: dict, docs: list[dict]) -> list[str]:
    spec = doc.get("spec") or {}
    pods = selected((spec.get("podSelector") or {}).get("matchLabels") or {}, docs)
    declared = set().union(*(port_names(w) for w in pods)) if pods else set()
    errors = []
    for rule in spec.get("ingress") or []:
        for p in rule.get("ports") or []:
            port = p.get("port")
            if isinstance(port, str) and port not in declared:
                errors.append(f"ingress port {port!r} is not a port of the pods it selects")
    return errors


def env_of(container: dict) -> dict[str, dict]:
    return {e.get("name"): e for e in container.get("env") or []}


def check_credentials(doc: dict, idx: dict) -> list[str]:
    errors = []
    for c in (pod_spec(doc) or {}).get("containers") or []:
        env = env_of(c)
        user = env.get("FITSTREAM__KAFKA__PROPERTIES__SASL_USERNAME")
        password = env.get("FITSTREAM__KAFKA__PROPERTIES__SASL_PASSWORD")
        if user is None and password is None:
            continue
        if user is None or password is None:
            errors.append(f"container {c.get('name')}: SASL user and password must both be set")
            continue
        name = user.get("value")
        if ("KafkaUser", name) not in idx:
            errors.append(f"container {c.get('name')}: SASL user {name!r} is not a KafkaUser of this render")
        ref = ((password.get("valueFrom") or {}).get("secretKeyRef")) or {}
        if ref.get("name") != name or ref.get("key") != "password":
            source = (f"secretKeyRef {{name: {ref.get('name')}, key: {ref.get('key')}}}" if ref
                      else "a literal value" if "value" in password else "another source")
            errors.append(f"container {c.get('name')}: password must come from secretKeyRef "
                          f"{{name: {name}, key: password}} (the KafkaUser's Secret), not {source}")
    return errors


def check_strimzi(doc: dict) -> list[str]:
    errors = []
    labels = (doc.get("metadata") or {}).get("labels") or {}
    if not labels.get("strimzi.io/cluster"):
        errors.append("no strimzi.io/cluster label")
    if doc.get("kind") == "KafkaTopic":
        for key in ((doc.get("spec") or {}).get("config") or {}):
            if key not in KAFKA_TOPIC_CONFIGS:
                errors.append(f"spec.config.{key} is not a Kafka topic config")
    return errors


def check_keda(doc: dict, idx: dict, docs: list[dict]) -> list[str]:
    spec = doc.get("spec") or {}
    ref = spec.get("scaleTargetRef") or {}
    kind = ref.get("kind", "Deployment")
    target = idx.get((kind, ref.get("name")))
    errors = []
    if target is None:
        return [f"scaleTargetRef {kind}/{ref.get('name')} is not in this render"]
    if "replicas" in (target.get("spec") or {}):
        errors.append(f"{kind}/{ref.get('name')} sets spec.replicas, which fights KEDA's HPA")
    args = []
    for c in (pod_spec(target) or {}).get("containers") or []:
        args = c.get("args") or []
    service = args[1] if len(args) >= 2 and args[0] == "run" else None
    keyed = [d for d in docs if d.get("kind") == "KafkaTopic"
             and ((d.get("metadata") or {}).get("labels") or {}).get("fitstream.io/partitioning") != "single"]
    partitions = max(((d.get("spec") or {}).get("partitions") or 0 for d in keyed), default=None)
    for t in spec.get("triggers") or []:
        if t.get("type") != "kafka":
            continue
        group = (t.get("metadata") or {}).get("consumerGroup")
        if service and group != f"fitstream-{service}":
            errors.append(f"consumerGroup {group!r} is not the {service}'s group id fitstream-{service}")
    max_replicas = spec.get("maxReplicaCount")
    if partitions is not None and isinstance(max_replicas, int) and max_replicas > partitions:
        errors.append(f"maxReplicaCount {max_replicas} exceeds the {partitions} partitions of the input topics")
    return errors


def render(report: Report, name: str, overlay: Path) -> str | None:
    """`kubectl kustomize` of an overlay, offline."""
    try:
        out = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        report.check("render", str(overlay), [str(e)])
        return None
    report.check("render", str(overlay), [] if out.returncode == 0 else [" ".join(out.stderr.split())])
    return out.stdout if out.returncode == 0 else None


def check_rules(doc: dict, metrics: set[str] | None) -> list[str]:
    errors = []
    groups = (doc.get("spec") or {}).get("groups") or []
    if not groups:
        errors.append("no rule groups")
    for g in groups:
        for r in g.get("rules") or []:
            name = r.get("alert") or r.get("record") or "?"
            expr = str(r.get("expr") or "")
            if not expr.strip():
                errors.append(f"{name}: no expr")
            if r.get("alert"):
                if not (r.get("labels") or {}).get("severity"):
                    errors.append(f"{name}: no severity label")
                if not (r.get("annotations") or {}).get("summary"):
                    errors.append(f"{name}: no summary annotation")
            if metrics is not None:
                for m in sorted({m for m in METRIC_RE.findall(expr) if not allowed(m, metrics)}):
                    errors.append(f"{name}: uses {m}, which is not in the metrics list")
    return errors


def check_manifests(report: Report, env: str, text: str, schemas: Schemas,
                    metrics: set[str] | None = None) -> None:
    try:
        docs = [d for d in yaml.load_all(text, Loader=Loader) if d]
    except yaml.YAMLError as e:
        report.check("yaml", env, [str(e)])
        return
    if not docs:
        report.check("yaml", env, ["no resources"])
        return
    idx = index(docs)
    for d in docs:
        if not isinstance(d, dict):
            report.check("yaml", env, [f"a document is not a mapping: {str(d)[:80]}"])
            continue
        subject = f"{env}/{d.get('kind')}/{(d.get('metadata') or {}).get('name')}"
        report.check("schema", subject, schemas.validate(d))
        kind = d.get("kind")
        if kind in WORKLOAD_KINDS:
            report.check("probes", subject, check_probes(d))
        if kind in WORKLOAD_KINDS or kind in BATCH_KINDS:
            report.check("security", subject, check_security(d))
            report.check("credentials", subject, check_credentials(d, idx))
        if kind == "StatefulSet":
            report.check("statefulset", subject, check_statefulset(d, idx))
        if kind == "Service":
            report.check("ports", subject, check_service_ports(d, docs))
        if kind == "NetworkPolicy":
            report.check("ports", subject, check_policy_ports(d, docs))
        if kind in ("KafkaTopic", "KafkaUser"):
            report.check("strimzi", subject, check_strimzi(d))
        if kind == "ScaledObject":
            report.check("keda", subject, check_keda(d, idx, docs))
        if kind == "PrometheusRule":
            report.check("rules", subject, check_rules(d, metrics))


# ---------------------------------------------------------------------------------- compose

SERVICES = ("profiler", "segmenter", "planner")


def check_compose(report: Report, path: Path, schema_path: Path) -> None:
    try:
        doc = yaml.load(path.read_text(), Loader=Loader)
    except (OSError, yaml.YAMLError) as e:
        report.check("compose", str(path), [str(e)])
        return
    schema = json.loads(schema_path.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    report.check("compose-schema", str(path), [_fmt(e) for e in validator.iter_errors(doc)])

    errors = []
    services = (doc or {}).get("services") or {}
    configs = (doc or {}).get("configs") or {}
    for name in SERVICES:
        svc = services.get(name)
        if svc is None:
            errors.append(f"no service {name}")
        elif svc.get("command") != ["run", name]:
            errors.append(f"service {name} runs {svc.get('command')}, not ['run', '{name}']")
    for name, svc in services.items():
        if "fitstream" not in str(svc.get("image", "")):
            continue
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
        conf = env.get("FITSTREAM_CONFIG")
        targets = {c.get("target") for c in svc.get("configs") or [] if isinstance(c, dict)}
        if not conf or conf not in targets:
            errors.append(f"service {name}: FITSTREAM_CONFIG {conf!r} is not a mounted config")
        if str(svc.get("user", "")).split(":")[0] != "10001":
            errors.append(f"service {name}: user is not 10001")
        if svc.get("read_only") is not True:
            errors.append(f"service {name}: read_only is not true")
    for section in ("configs", "secrets"):
        for name, c in ((doc or {}).get(section) or {}).items():
            if isinstance(c, dict) and "file" in c and not (path.parent / c["file"]).is_file():
                errors.append(f"{section}.{name}: file {c['file']} does not exist (relative to {path.parent})")
    report.check("compose", str(path), errors)


def check_copy(report: Report, copy_path: Path, original: Path) -> None:
    if not original.is_file():
        report.check("copy", str(copy_path), [f"{original} does not exist"])
    elif not copy_path.is_file():
        report.check("copy", str(copy_path), [f"missing; it must be a copy of {original}"])
    elif copy_path.read_bytes() != original.read_bytes():
        report.check("copy", str(copy_path), [f"differs from {original}; copy it again: cp {original} {copy_path}"])
    else:
        report.check("copy", str(copy_path), [])


# -------------------------------------------------------------------------------- dashboard

def load_metrics(report: Report, path: Path) -> set[str]:
    names: list[str] = []
    errors = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if not re.fullmatch(r"fitstream_[a-z0-9_]+", line):
            errors.append(f"line {n}: {line!r} is not a fitstream_ metric name")
        names.append(line)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        errors.append(f"duplicates: {', '.join(dupes)}")
    if not names:
        errors.append("no metric names")
    report.check("metrics-list", str(path), errors)
    return set(names)


def queries(node: Any) -> Iterable[str]:
    """Every PromQL string of a dashboard: targets' expr, templating and annotation queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query", "definition") and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, dict):
                yield from queries(value)
            else:
                yield from queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from queries(item)


def allowed(name: str, metrics: set[str]) -> bool:
    if name in metrics:
        return True
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            if base in metrics and not base.endswith("_total"):
                return True
    return False


def check_dashboard(report: Report, path: Path, metrics: set[str]) -> None:
    try:
        dash = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        report.check("dashboard", str(path), [f"not JSON: {e}"])
        return
    errors = []
    if not isinstance(dash, dict) or not dash.get("title") or not dash.get("uid"):
        errors.append("no title or uid")
    panels = list(_panels(dash.get("panels") or []))
    ids = [p.get("id") for p in panels]
    if len(ids) != len(set(ids)):
        errors.append("panel ids are not unique")
    qs = list(queries(dash))
    if not any(METRIC_RE.search(q) for q in qs):
        errors.append("no query uses a fitstream_ metric")
    unknown = sorted({m for q in qs for m in METRIC_RE.findall(q) if not allowed(m, metrics)})
    for m in unknown:
        errors.append(f"query uses {m}, which is not in the metrics list")
    report.check("dashboard", str(path), errors)


def _panels(panels: list) -> Iterable[dict]:
    for p in panels:
        if isinstance(p, dict):
            yield p
            yield from _panels(p.get("panels") or [])


# ------------------------------------------------------------------------------------- main

def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k8s-version", default="1.32.0")
    ap.add_argument("--crds", type=Path, required=True, help="folder of CRD YAML files")
    ap.add_argument("--overlay", action="append", default=[], metavar="NAME=DIR",
                    help="kustomize overlay to render with kubectl and check (repeatable)")
    ap.add_argument("--manifests", action="append", default=[], metavar="NAME=FILE",
                    help="already rendered manifests to check (repeatable)")
    ap.add_argument("--metrics", type=Path, help="metric names, one per line")
    ap.add_argument("--dashboard", action="append", default=[], type=Path, help="Grafana JSON (repeatable)")
    ap.add_argument("--compose", action="append", default=[], type=Path, help="compose file (repeatable)")
    ap.add_argument("--compose-schema", type=Path, help="the Compose specification's JSON schema")
    ap.add_argument("--copy", action="append", default=[], metavar="COPY=ORIGINAL",
                    help="a file that must stay identical to another (repeatable)")
    ap.add_argument("--summary", default="validate", help="word before the closing count line")
    a = ap.parse_args(argv)
    if a.dashboard and not a.metrics:
        ap.error("--dashboard needs --metrics")
    if a.compose and not a.compose_schema:
        ap.error("--compose needs --compose-schema")

    report = Report()
    crds = Crds(a.crds)
    report.check("crds", str(a.crds), [] if crds.by_gvk else ["no CRD schemas found"])
    schemas = Schemas(a.k8s_version, crds)
    metrics = load_metrics(report, a.metrics) if a.metrics else None
    for spec in a.overlay + a.manifests:
        name, sep, file = spec.partition("=")
        if not sep:
            ap.error(f"--overlay/--manifests want NAME=PATH, got {spec!r}")
        text = render(report, name, Path(file)) if spec in a.overlay else Path(file).read_text()
        if text is not None:
            check_manifests(report, name, text, schemas, metrics)
    for c in a.compose:
        check_compose(report, c, a.compose_schema)
    for spec in a.copy:
        copy_file, sep, original = spec.partition("=")
        if not sep:
            ap.error(f"--copy wants COPY=ORIGINAL, got {spec!r}")
        check_copy(report, Path(copy_file), Path(original))
    if metrics is not None:
        for d in a.dashboard:
            check_dashboard(report, d, metrics)
    print(f"{a.summary}: {report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
