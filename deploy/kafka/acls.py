#!/usr/bin/env python3
"""Users and ACLs of the local secured broker, from Strimzi KafkaUser resources.

deploy/kafka.sh start --secure runs this to make the broker's SCRAM users and ACLs match
k8s/base/users.yaml (one source of truth for Kubernetes and the local broker). It only reads
YAML and prints; the shell script runs what it prints with the broker's tool classpath.

    acls.py users USERS_YAML
        The SCRAM-SHA-512 user names, one per line.
    acls.py table USERS_YAML
        The ACLs the file asks for, one per line (for people).
    acls.py list --bootstrap HOST:PORT --command-config FILE
        The commands that list what the broker has: `AclCommand --list` and
        `ConfigCommand --describe --entity-type users`.
    acls.py plan USERS_YAML --bootstrap HOST:PORT --command-config FILE --secrets DIR
                 [--listing FILE] [--keep USER]... [--reset USER]...
        The commands that bring the broker to the file. LISTING is the output of the `list`
        commands (none: a broker without ACLs or SCRAM users). ACLs missing from the broker
        are added, ACLs the file does not ask for are removed (also those of principals the
        file does not know: the file is the source of truth). SCRAM users missing from the
        broker, and the --reset ones, get the password of DIR/<user>.scram (a properties
        file `SCRAM-SHA-512=password=...`: no password is on a command line); SCRAM users
        the file does not name are deleted, except --keep.
Commands are printed one per line, their words separated by tabs: the main class
(org.apache.kafka.tools.AclCommand or ConfigCommand) and its arguments; deploy/kafka.sh runs
them in one JVM with deploy/kafka/ToolBatch.java. --shell prints them as shell words instead.

Strimzi semantics (KafkaUser kafka.strimzi.io/v1, spec.authorization.type simple):
  principal     User:<metadata.name> for scram-sha-512 (and when authentication is absent);
                User:CN=<metadata.name> for tls and tls-external (no credential is made here).
  acls[].type   allow (default) or deny.
  resource      type topic | group | transactionalId | cluster; name (not for cluster, whose
                name is kafka-cluster); patternType literal (default) | prefix (Kafka PREFIXED).
  host          default "*".
  operations    Read, Write, Create, Delete, Alter, Describe, ClusterAction, AlterConfigs,
                DescribeConfigs, IdempotentWrite, All (the legacy single `operation` too).
Rules with the same permission, principal, host, pattern type and operations become one
AclCommand (several --topic/--group/... options), to start as few JVMs as possible.
spec.quotas are not applied (a warning says so).
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import yaml

ACL_COMMAND = "org.apache.kafka.tools.AclCommand"
CONFIG_COMMAND = "org.apache.kafka.tools.ConfigCommand"
SCRAM_MECHANISM = "SCRAM-SHA-512"
CLUSTER_NAME = "kafka-cluster"

# Strimzi resource type -> (Kafka ResourceType name, AclCommand option)
RESOURCE_TYPES = {
    "topic": ("TOPIC", "--topic"),
    "group": ("GROUP", "--group"),
    "transactionalId": ("TRANSACTIONAL_ID", "--transactional-id"),
    "cluster": ("CLUSTER", "--cluster"),
}
OPTION_OF = {kafka: opt for kafka, opt in RESOURCE_TYPES.values()}
# Strimzi patternType -> (Kafka PatternType, AclCommand --resource-pattern-type)
PATTERN_TYPES = {"literal": ("LITERAL", "literal"), "prefix": ("PREFIXED", "prefixed")}
PATTERN_OPTION = {kafka: opt for kafka, opt in PATTERN_TYPES.values()}
OPERATIONS = ("Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction",
              "AlterConfigs", "DescribeConfigs", "IdempotentWrite", "All")
# Operations Kafka accepts per resource type (AclCommand refuses the others).
VALID_OPERATIONS = {
    "TOPIC": {"Read", "Write", "Create", "Describe", "Delete", "Alter", "DescribeConfigs",
              "AlterConfigs", "All"},
    "GROUP": {"Read", "Describe", "Delete", "DescribeConfigs", "AlterConfigs", "All"},
    "TRANSACTIONAL_ID": {"Describe", "Write", "All"},
    "CLUSTER": {"Create", "ClusterAction", "DescribeConfigs", "AlterConfigs", "IdempotentWrite",
                "Alter", "Describe", "All"},
}


def kafka_operation(name: str) -> str:
    """PascalCase (Strimzi, AclCommand --operation) -> Kafka's AclOperation (IdempotentWrite ->
    IDEMPOTENT_WRITE), as AclCommand --list prints it."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def pascal_operation(name: str) -> str:
    """IDEMPOTENT_WRITE -> IdempotentWrite (what AclCommand --operation takes)."""
    return "".join(w.capitalize() for w in name.split("_"))


class Acl(NamedTuple):
    """One ACL binding in Kafka's terms (what AclCommand --list prints)."""
    resource_type: str  # TOPIC, GROUP, TRANSACTIONAL_ID, CLUSTER
    name: str
    pattern: str  # LITERAL, PREFIXED
    principal: str  # User:name
    host: str
    operation: str  # READ, IDEMPOTENT_WRITE, ...
    permission: str  # ALLOW, DENY

    def describe(self) -> str:
        return (f"{self.permission:<5} {self.principal} {self.host} {self.operation} "
                f"{self.resource_type}:{self.name} ({self.pattern})")


class User(NamedTuple):
    name: str
    principal: str
    scram: bool  # a SCRAM-SHA-512 credential is wanted


class SpecError(Exception):
    pass


def check_word(value: str, where: str) -> str:
    """Commands are tab-separated lines: no tab or line break in a name."""
    if any(c in value for c in "\t\r\n"):
        raise SpecError(f"{where}: {value!r} has a tab or a line break")
    return value


def warn(msg: str) -> None:
    print(f"acls.py: warning: {msg}", file=sys.stderr)


def load(path: Path) -> tuple[list[User], list[Acl]]:
    """KafkaUsers of a YAML file (other kinds are skipped) -> users and the ACLs they ask for."""
    users: list[User] = []
    acls: list[Acl] = []
    seen: set[str] = set()
    with path.open() as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict) or doc.get("kind") != "KafkaUser":
            continue
        name = (doc.get("metadata") or {}).get("name")
        where = f"{path}: KafkaUser #{i + 1}"
        if not isinstance(name, str) or not name:
            raise SpecError(f"{where}: no metadata.name")
        where = f"{path}: KafkaUser {name}"
        check_word(name, where)
        if name in seen:
            raise SpecError(f"{where}: defined twice")
        seen.add(name)
        spec = doc.get("spec") or {}
        auth = (spec.get("authentication") or {}).get("type")
        if auth == "scram-sha-512":
            user = User(name, f"User:{name}", True)
        elif auth in ("tls", "tls-external"):
            warn(f"{where}: authentication {auth} is not served by the local broker (SCRAM only); "
                 f"its ACLs are made for User:CN={name}")
            user = User(name, f"User:CN={name}", False)
        elif auth is None:
            warn(f"{where}: no authentication; ACLs only, for User:{name}")
            user = User(name, f"User:{name}", False)
        else:
            raise SpecError(f"{where}: unknown authentication type {auth!r}")
        users.append(user)
        if spec.get("quotas"):
            warn(f"{where}: spec.quotas are not applied to the local broker")
        authz = spec.get("authorization")
        if not authz:
            continue  # no ACLs: this user may do nothing (allow.everyone.if.no.acl.found=false)
        if authz.get("type") != "simple":
            raise SpecError(f"{where}: authorization type {authz.get('type')!r} (only simple)")
        for j, rule in enumerate(authz.get("acls") or []):
            acls.extend(rule_acls(rule, user, f"{where} acls[{j}]"))
    return users, acls


def rule_acls(rule: dict, user: User, where: str) -> list[Acl]:
    resource = rule.get("resource") or {}
    rtype = resource.get("type")
    if rtype not in RESOURCE_TYPES:
        raise SpecError(f"{where}: resource type {rtype!r} (one of {', '.join(RESOURCE_TYPES)})")
    kafka_type = RESOURCE_TYPES[rtype][0]
    if rtype == "cluster":
        name, pattern = CLUSTER_NAME, "LITERAL"
    else:
        name = resource.get("name")
        if not isinstance(name, str) or not name:
            raise SpecError(f"{where}: {rtype} without a name")
        check_word(name, where)
        ptype = resource.get("patternType", "literal")
        if ptype not in PATTERN_TYPES:
            raise SpecError(f"{where}: patternType {ptype!r} (literal or prefix)")
        pattern = PATTERN_TYPES[ptype][0]
    permission = rule.get("type", "allow")
    if permission not in ("allow", "deny"):
        raise SpecError(f"{where}: type {permission!r} (allow or deny)")
    host = check_word(str(rule.get("host", "*")), where)
    ops = rule.get("operations")
    if ops is None and "operation" in rule:  # the pre-v1 single operation
        ops = [rule["operation"]]
    if not ops:
        raise SpecError(f"{where}: no operations")
    out = []
    for op in ops:
        if op not in OPERATIONS:
            raise SpecError(f"{where}: unknown operation {op!r}")
        if op not in VALID_OPERATIONS[kafka_type]:
            raise SpecError(f"{where}: operation {op} does not apply to a {rtype}")
        out.append(Acl(kafka_type, name, pattern, user.principal, host, kafka_operation(op),
                       permission.upper()))
    return out


# `Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=a, patternType=LITERAL)`:`
RESOURCE_RE = re.compile(r"^Current ACLs for resource `ResourcePattern\(resourceType=([A-Z_]+), "
                         r"name=(.*), patternType=([A-Z]+)\)`:\s*$")
# `	(principal=User:a, host=*, operation=READ, permissionType=ALLOW)`
ENTRY_RE = re.compile(r"^\s*\(principal=(.*), host=(.*), operation=([A-Z_]+), "
                      r"permissionType=([A-Z]+)\)\s*$")


def parse_acl_listing(text: str) -> set[Acl]:
    """The bindings in `AclCommand --list` output (other lines are skipped)."""
    acls: set[Acl] = set()
    resource = None
    for line in text.splitlines():
        m = RESOURCE_RE.match(line)
        if m:
            resource = m.groups()
            continue
        m = ENTRY_RE.match(line)
        if m:
            if resource is None:
                raise SpecError(f"ACL listing: entry before any resource: {line.strip()}")
            acls.add(Acl(*resource, *m.groups()))
        elif "(principal=" in line:
            raise SpecError(f"ACL listing: an entry of an unknown form: {line.strip()}")
        else:
            resource = None if not line.startswith(("\t", " ")) else resource
    return acls


# `SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-512=iterations=4096`
SCRAM_RE = re.compile(r"^SCRAM credential configs for user-principal '(.*)' are (.*)$")


def parse_scram_listing(text: str) -> set[str]:
    users = set()
    for line in text.splitlines():
        m = SCRAM_RE.match(line.strip())
        if m and SCRAM_MECHANISM in m.group(2):
            users.add(m.group(1))
    return users


def acl_commands(action: str, acls: set[Acl], base: list[str]) -> list[list[str]]:
    """Few AclCommand invocations for a set of bindings: grouped by permission, principal,
    host, pattern type and the set of operations on a resource."""
    ops_of: dict[tuple, set[str]] = defaultdict(set)
    for a in acls:
        ops_of[(a.permission, a.principal, a.host, a.pattern, a.resource_type, a.name)].add(a.operation)
    groups: dict[tuple, list[tuple[str, str]]] = defaultdict(list)
    for (perm, principal, host, pattern, rtype, name), ops in ops_of.items():
        groups[(perm, principal, host, pattern, tuple(sorted(ops)))].append((rtype, name))
    cmds = []
    for (perm, principal, host, pattern, ops), resources in sorted(groups.items()):
        who = "allow" if perm == "ALLOW" else "deny"
        cmd = [ACL_COMMAND, *base, f"--{action}"]
        if action == "remove":
            cmd.append("--force")
        cmd += [f"--{who}-principal", principal, f"--{who}-host", host]
        for op in ops:
            cmd += ["--operation", pascal_operation(op)]
        for rtype, name in sorted(resources):
            opt = OPTION_OF.get(rtype)
            if opt is None:  # e.g. DELEGATION_TOKEN, USER made by hand: AclCommand names
                opt = "--" + rtype.lower().replace("_", "-")
            cmd += [opt] if opt == "--cluster" else [opt, name]
        cmd += ["--resource-pattern-type", PATTERN_OPTION.get(pattern, pattern.lower())]
        cmds.append(cmd)
    return cmds


def list_commands(args: argparse.Namespace) -> list[list[str]]:
    base = ["--bootstrap-server", args.bootstrap, "--command-config", str(args.command_config)]
    return [[ACL_COMMAND, *base, "--list"],
            [CONFIG_COMMAND, *base, "--describe", "--entity-type", "users"]]


def plan(args: argparse.Namespace) -> list[list[str]]:
    users, wanted = load(args.users_yaml)
    listing = args.listing.read_text() if args.listing else ""
    have = parse_acl_listing(listing)
    scram_have = parse_scram_listing(listing)
    base = ["--bootstrap-server", args.bootstrap, "--command-config", str(args.command_config)]
    cmds = []
    scram_users = [u.name for u in users if u.scram]
    for name in scram_users:
        if name not in scram_have or name in args.reset:
            cmds.append([CONFIG_COMMAND, *base, "--alter", "--entity-type", "users",
                         "--entity-name", name, "--add-config-file",
                         str(args.secrets / f"{name}.scram")])
    for name in sorted(scram_have - set(scram_users) - set(args.keep)):
        cmds.append([CONFIG_COMMAND, *base, "--alter", "--entity-type", "users",
                     "--entity-name", name, "--delete-config", SCRAM_MECHANISM])
    wanted_set = set(wanted)
    cmds += acl_commands("remove", have - wanted_set, base)
    cmds += acl_commands("add", wanted_set - have, base)
    return cmds


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("users", "table"):
        sub.add_parser(name).add_argument("users_yaml", type=Path)
    lp = sub.add_parser("list")
    pp = sub.add_parser("plan")
    pp.add_argument("users_yaml", type=Path)
    pp.add_argument("--secrets", required=True, type=Path)
    pp.add_argument("--listing", type=Path)
    pp.add_argument("--keep", action="append", default=[])
    pp.add_argument("--reset", action="append", default=[])
    for q in (lp, pp):
        q.add_argument("--bootstrap", required=True)
        q.add_argument("--command-config", required=True, type=Path)
        q.add_argument("--shell", action="store_true", help="print shell words, not tabs")
    args = p.parse_args(argv)
    try:
        if args.cmd == "users":
            for u in load(args.users_yaml)[0]:
                if u.scram:
                    print(u.name)
        elif args.cmd == "table":
            for a in sorted(set(load(args.users_yaml)[1])):
                print(a.describe())
        else:
            cmds = list_commands(args) if args.cmd == "list" else plan(args)
            for cmd in cmds:
                print(shlex.join(cmd) if args.shell else "\t".join(cmd))
    except (SpecError, OSError, yaml.YAMLError) as e:
        print(f"acls.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
