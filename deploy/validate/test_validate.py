#!/usr/bin/env python3
"""Negative tests of check.py: each case breaks a copy of the rendered manifests or of the
dashboard in one way and asserts that check.py exits non-zero with a FAIL line naming the
right check, subject and reason. A first case checks that the unbroken files pass.

Run through test_validate.sh (renders the overlays, provides the venv). Prints one line per
case and `validate-negative: N passed, M failed`.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import yaml

HERE = Path(__file__).resolve().parent


def find(docs: list[dict], kind: str, name: str) -> dict:
    for d in docs:
        if d.get("kind") == kind and d["metadata"]["name"] == name:
            return d
    raise LookupError(f"{kind}/{name} not in the render")


def container(docs: list[dict], kind: str, name: str) -> dict:
    return find(docs, kind, name)["spec"]["template"]["spec"]["containers"][0]


def rename(d: dict, old: str, new: str) -> None:
    d[new] = d.pop(old)


# Each mutation edits the docs (list of resources) or the dashboard (dict) in place.
def sts_misspelled(docs, dash):
    rename(container(docs, "StatefulSet", "fitstream-profiler"), "imagePullPolicy", "imagePulPolicy")


def deployment_misspelled(docs, dash):
    sts = find(docs, "StatefulSet", "fitstream-profiler")
    dep = copy.deepcopy(sts)
    dep["kind"] = "Deployment"
    dep["metadata"]["name"] = "fitstream-profiler-deployment"
    for k in ("serviceName", "podManagementPolicy", "updateStrategy"):
        dep["spec"].pop(k, None)
    dep["spec"]["replica"] = 2  # misspelled replicas
    docs.append(dep)


def wrong_kind(docs, dash):
    find(docs, "StatefulSet", "fitstream-planner")["kind"] = "StatefullSet"


def wrong_api_version(docs, dash):
    find(docs, "StatefulSet", "fitstream-segmenter")["apiVersion"] = "apps/v1beta3"


def wrong_crd_version(docs, dash):
    find(docs, "KafkaTopic", "iob.clickstream.v1")["apiVersion"] = "kafka.strimzi.io/v1beta3"


def no_readiness(docs, dash):
    del container(docs, "StatefulSet", "fitstream-planner")["readinessProbe"]


def no_liveness(docs, dash):
    del container(docs, "StatefulSet", "fitstream-segmenter")["livenessProbe"]


def probe_wrong_port(docs, dash):
    container(docs, "StatefulSet", "fitstream-profiler")["readinessProbe"]["httpGet"]["port"] = "http"


def topic_misspelled(docs, dash):
    rename(find(docs, "KafkaTopic", "iob.purchases.v1")["spec"], "partitions", "partition")


def topic_bad_config(docs, dash):
    cfg = find(docs, "KafkaTopic", "iob.dead-letter.v1")["spec"]["config"]
    cfg["retention.msec"] = cfg.pop("retention.ms")


def topic_metadata_misspelled(docs, dash):
    rename(find(docs, "KafkaTopic", "iob.segment-models.v1")["metadata"], "labels", "lables")


def user_bad_operation(docs, dash):
    find(docs, "KafkaUser", "fitstream-planner")["spec"]["authorization"]["acls"][0]["operations"] = ["Raed"]


def user_misspelled(docs, dash):
    rename(find(docs, "KafkaUser", "fitstream-profiler")["spec"]["authorization"]["acls"][0], "operations", "operation")


def scaledobject_misspelled(docs, dash):
    rename(find(docs, "ScaledObject", "fitstream-planner")["spec"], "maxReplicaCount", "maxReplicasCount")


def scaledobject_over_partitions(docs, dash):
    find(docs, "ScaledObject", "fitstream-profiler")["spec"]["maxReplicaCount"] = 24


def scaledobject_replicas_conflict(docs, dash):
    find(docs, "StatefulSet", "fitstream-planner")["spec"]["replicas"] = 3


def scaledobject_wrong_group(docs, dash):
    find(docs, "ScaledObject", "fitstream-planner")["spec"]["triggers"][0]["metadata"]["consumerGroup"] = "planner"


def servicemonitor_misspelled(docs, dash):
    rename(find(docs, "ServiceMonitor", "fitstream")["spec"]["endpoints"][0], "interval", "intervall")


def rule_unknown_metric(docs, dash):
    rule = find(docs, "PrometheusRule", "fitstream")["spec"]["groups"][0]["rules"][0]
    rule["expr"] = "sum(fitstream_consumer_lag) > 1000"


def rule_without_severity(docs, dash):
    rule = find(docs, "PrometheusRule", "fitstream")["spec"]["groups"][0]["rules"][1]
    del rule["labels"]["severity"]


def rule_misspelled(docs, dash):
    rename(find(docs, "PrometheusRule", "fitstream")["spec"]["groups"][0]["rules"][2], "for", "fro")


def pdb_misspelled(docs, dash):
    rename(find(docs, "PodDisruptionBudget", "fitstream-profiler")["spec"], "maxUnavailable", "maxUnavailabe")


def not_read_only(docs, dash):
    container(docs, "StatefulSet", "fitstream-profiler")["securityContext"]["readOnlyRootFilesystem"] = False


def password_not_from_secret(docs, dash):
    env = container(docs, "StatefulSet", "fitstream-segmenter")["env"]
    for e in env:
        if e["name"] == "FITSTREAM__KAFKA__PROPERTIES__SASL_PASSWORD":
            e.pop("valueFrom")
            e["value"] = "hunter2"


def dashboard_unknown_metric(docs, dash):
    dash["panels"][-1]["targets"][0]["expr"] = "sum(rate(fitstream_records_processed_total[5m]))"


def dashboard_counter_bucket(docs, dash):
    dash["panels"][2]["targets"][0]["expr"] = "sum(rate(fitstream_records_in_total_bucket[5m]))"


def dashboard_template_unknown_metric(docs, dash):
    for v in dash["templating"]["list"]:
        if v["name"] == "job":
            v["query"]["query"] = v["definition"] = "label_values(fitstream_up, job)"


def compose_misspelled(docs, dash, compose):
    rename(compose["services"]["profiler"], "stop_grace_period", "stop_grace_periode")


def compose_wrong_command(docs, dash, compose):
    compose["services"]["planner"]["command"] = ["run", "planer"]


def compose_missing_file(docs, dash, compose):
    compose["configs"]["plants-toml"]["file"] = "./plant.toml"


def routing_copy_differs(docs, dash, compose, routing):
    routing.append("# edited in k8s/ only\n")


Mutation = Callable[..., None]

# name, overlay, mutation, check, subject fragment, reason pattern
def api_target_port_renamed(docs, dash):
    find(docs, "Service", "fitstream-profiler-api")["spec"]["ports"][0]["targetPort"] = "http"


def policy_port_renamed(docs, dash):
    find(docs, "NetworkPolicy", "fitstream-profiler-api")["spec"]["ingress"][0]["ports"][0]["port"] = "lookup"


CASES: list[tuple[str, str, Mutation | None, str, str, str]] = [
    ("unbroken dev render passes", "dev", None, "", "", ""),
    ("unbroken prod render passes", "prod", None, "", "", ""),
    ("misspelled field in a StatefulSet", "dev", sts_misspelled, "schema", "StatefulSet/fitstream-profiler", r"imagePulPolicy"),
    ("misspelled field in a Deployment", "dev", deployment_misspelled, "schema", "Deployment/fitstream-profiler-deployment", r"replica\b"),
    ("wrong kind", "dev", wrong_kind, "schema", "StatefullSet/fitstream-planner", r"unknown kind"),
    ("wrong apiVersion of a core kind", "dev", wrong_api_version, "schema", "StatefulSet/fitstream-segmenter", r"unknown kind/apiVersion"),
    ("wrong apiVersion of a CRD kind", "dev", wrong_crd_version, "schema", "KafkaTopic/iob.clickstream.v1", r"not served"),
    ("missing readiness probe", "dev", no_readiness, "probes", "StatefulSet/fitstream-planner", r"no readinessProbe"),
    ("missing liveness probe", "dev", no_liveness, "probes", "StatefulSet/fitstream-segmenter", r"no livenessProbe"),
    ("probe on an undeclared port", "dev", probe_wrong_port, "probes", "StatefulSet/fitstream-profiler", r"'http'"),
    ("Service targetPort no pod declares", "dev", api_target_port_renamed, "ports", "Service/fitstream-profiler-api", r"'http'"),
    ("NetworkPolicy port no pod declares", "prod", policy_port_renamed, "ports", "NetworkPolicy/fitstream-profiler-api", r"'lookup'"),
    ("misspelled field in a KafkaTopic", "dev", topic_misspelled, "schema", "KafkaTopic/iob.purchases.v1", r"partition\b"),
    ("unknown KafkaTopic config key", "dev", topic_bad_config, "strimzi", "KafkaTopic/iob.dead-letter.v1", r"retention\.msec"),
    ("misspelled metadata field in a KafkaTopic", "dev", topic_metadata_misspelled, "schema", "KafkaTopic/iob.segment-models.v1", r"lables"),
    ("unknown ACL operation in a KafkaUser", "dev", user_bad_operation, "schema", "KafkaUser/fitstream-planner", r"Raed"),
    ("misspelled field in a KafkaUser ACL", "dev", user_misspelled, "schema", "KafkaUser/fitstream-profiler", r"operation"),
    ("misspelled field in a ScaledObject", "prod", scaledobject_misspelled, "schema", "ScaledObject/fitstream-planner", r"maxReplicasCount"),
    ("ScaledObject beyond the partitions", "prod", scaledobject_over_partitions, "keda", "ScaledObject/fitstream-profiler", r"exceeds the 12 partitions"),
    ("KEDA target with spec.replicas", "prod", scaledobject_replicas_conflict, "keda", "ScaledObject/fitstream-planner", r"spec\.replicas"),
    ("KEDA consumerGroup not the group id", "prod", scaledobject_wrong_group, "keda", "ScaledObject/fitstream-planner", r"fitstream-planner"),
    ("misspelled field in a ServiceMonitor", "prod", servicemonitor_misspelled, "schema", "ServiceMonitor/fitstream", r"intervall"),
    ("alert on a metric that does not exist", "prod", rule_unknown_metric, "rules", "PrometheusRule/fitstream", r"fitstream_consumer_lag\b"),
    ("alert without a severity", "dev", rule_without_severity, "rules", "PrometheusRule/fitstream", r"FitstreamDeadLetterRate: no severity"),
    ("misspelled field in a PrometheusRule", "dev", rule_misspelled, "schema", "PrometheusRule/fitstream", r"fro"),
    ("misspelled field in a PodDisruptionBudget", "prod", pdb_misspelled, "schema", "PodDisruptionBudget/fitstream-profiler", r"maxUnavailabe"),
    ("writable root file system", "dev", not_read_only, "security", "StatefulSet/fitstream-profiler", r"readOnlyRootFilesystem"),
    ("SASL password not from the KafkaUser Secret", "dev", password_not_from_secret, "credentials", "StatefulSet/fitstream-segmenter", r"secretKeyRef"),
    ("dashboard query on a non-existent metric", "dev", dashboard_unknown_metric, "dashboard", "fitstream-dashboard.json", r"fitstream_records_processed_total"),
    ("dashboard _bucket of a counter", "dev", dashboard_counter_bucket, "dashboard", "fitstream-dashboard.json", r"fitstream_records_in_total_bucket"),
    ("dashboard variable on a non-existent metric", "dev", dashboard_template_unknown_metric, "dashboard", "fitstream-dashboard.json", r"fitstream_up"),
    ("misspelled field in compose.yaml", "dev", compose_misspelled, "compose-schema", "compose.yaml", r"stop_grace_periode"),
    ("compose service running the wrong command", "dev", compose_wrong_command, "compose", "compose.yaml", r"planer"),
    ("compose config file that does not exist", "dev", compose_missing_file, "compose", "compose.yaml", r"plant\.toml"),
    ("routing copy in k8s/ differs from deploy/plants.toml", "dev", routing_copy_differs, "copy", "plants.toml", r"differs"),
]


def run_case(args, rendered: dict[str, list], dashboard: dict, compose: dict, case) -> list[str]:
    name, overlay, mutate, check, subject, reason = case
    docs = copy.deepcopy(rendered[overlay])
    dash = copy.deepcopy(dashboard)
    comp = copy.deepcopy(compose)
    routing = [args.routing_original.read_text()]
    if mutate:
        extra = [comp, routing][: mutate.__code__.co_argcount - 2]
        mutate(docs, dash, *extra)
    with tempfile.TemporaryDirectory() as tmp:
        m = Path(tmp) / f"{overlay}.yaml"
        m.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        d = Path(tmp) / "fitstream-dashboard.json"
        d.write_text(json.dumps(dash))
        # The compose copy sits in a folder that links the files the original names.
        c = Path(tmp) / "compose" / "compose.yaml"
        c.parent.mkdir()
        c.write_text(yaml.safe_dump(comp, sort_keys=False))
        for section in ("configs", "secrets"):
            for entry in (compose.get(section) or {}).values():
                if isinstance(entry, dict) and "file" in entry:
                    link = c.parent / entry["file"]
                    link.parent.mkdir(parents=True, exist_ok=True)
                    link.symlink_to((args.compose.parent / entry["file"]).resolve())
        r = Path(tmp) / "plants.toml"
        r.write_text("".join(routing))
        out = subprocess.run(
            [sys.executable, str(HERE / "check.py"), "--k8s-version", args.k8s_version,
             "--crds", str(args.crds), "--metrics", str(args.metrics),
             "--manifests", f"{overlay}={m}", "--dashboard", str(d),
             "--compose", str(c), "--compose-schema", str(args.compose_schema),
             "--copy", f"{r}={args.routing_original}"],
            capture_output=True, text=True, timeout=120)
    lines = out.stdout.splitlines()
    fails = [line for line in lines if line.startswith("FAIL ")]
    if mutate is None:
        problems = [] if out.returncode == 0 and not fails else [f"exit {out.returncode}", *fails[:5], out.stderr[-500:]]
        return problems
    problems = []
    if out.returncode != 1:
        problems.append(f"check.py exited {out.returncode}, expected 1 {out.stderr[-500:]}")
    hit = [f for f in fails if f.startswith(f"FAIL {check} ") and subject in f and re.search(reason, f)]
    if not hit:
        problems.append(f"no FAIL line for check {check!r}, subject {subject!r}, reason /{reason}/; got: {fails[:5]}")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rendered", action="append", required=True, metavar="NAME=FILE")
    ap.add_argument("--dashboard", type=Path, required=True)
    ap.add_argument("--metrics", type=Path, required=True)
    ap.add_argument("--crds", type=Path, required=True)
    ap.add_argument("--compose", type=Path, required=True)
    ap.add_argument("--compose-schema", type=Path, required=True)
    ap.add_argument("--routing-original", type=Path, required=True, help="deploy/plants.toml")
    ap.add_argument("--k8s-version", default="1.32.0")
    ap.add_argument("--jobs", type=int, default=2, help="cases run at once (each is a check.py process)")
    args = ap.parse_args()
    rendered = {}
    for spec in args.rendered:
        name, _, file = spec.partition("=")
        rendered[name] = [d for d in yaml.safe_load_all(Path(file).read_text()) if d]
    dashboard = json.loads(args.dashboard.read_text())
    compose = yaml.safe_load(args.compose.read_text())
    def attempt(case) -> list[str]:
        try:
            return run_case(args, rendered, dashboard, compose, case)
        except Exception as e:  # a mutation that no longer applies is a failure too
            return [f"{type(e).__name__}: {e}"]

    passed = failed = 0
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(attempt, CASES))
    for case, problems in zip(CASES, results):
        if problems:
            failed += 1
            print(f"FAIL {case[0]}")
            for p in problems:
                print(f"       {p}")
        else:
            passed += 1
            print(f"ok   {case[0]}")
    print(f"validate-negative: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
