"""The chart and NATS config check behind helm/check (run that: it sets up the venv).

Lints helm/keel, renders it with two value sets, checks what each render must contain,
validates every manifest against the Kubernetes JSON schemas (kubernetes-validate, strict:
unknown fields are errors), checks the KEDA ScaledObject (a CRD, in no Kubernetes schema) by
hand, and runs `nats-server -t` on infra/nats/nats-{1,2,3}.conf. Exits 1 on any failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate as kv
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "keel"
RELEASE, NAMESPACE = "keel", "keel-ci"
# The chart's floor (Chart.yaml kubeVersion) and the newest schema kubernetes-validate ships.
KUBE_VERSIONS = ("1.30", "1.37")
LINT_KUBE_VERSION = "v1.30.0"
VALUE_SETS: dict[str, Path | None] = {
    "default": None,
    "production": CHART / "ci" / "production-values.yaml",
}
NATS_CONFIGS = [ROOT / "infra" / "nats" / f"nats-{n}.conf" for n in (1, 2, 3)]
# The variables infra/nats/accounts.conf reads (nats-server refuses to start without them).
NATS_PASSWORD_VARS = [
    "KEEL_NODE_PASSWORD",
    "KEEL_GATEWAY_PASSWORD",
    "KEEL_CHANNEL_ADAPTER_PASSWORD",
    "KEEL_WMS_ADAPTER_PASSWORD",
    "KEEL_SYS_PASSWORD",
]

Obj = dict[str, Any]


class Check:
    """Collects results; a failed assertion is reported and counted, never raised."""

    def __init__(self) -> None:
        self.passed = 0
        self.failures: list[str] = []

    def that(self, ok: bool, what: str) -> bool:
        if ok:
            self.passed += 1
        else:
            self.failures.append(what)
            print(f"  FAIL {what}")
        return ok


def load_values(path: Path | None) -> Obj | None:
    return None if path is None else helm.values_from_yaml(path.read_text())


def render(chart: helm.Chart, values: Obj | None) -> list[tuple[str, Obj]]:
    """(template, object) for every object the chart renders, NOTES.txt left out."""
    objects = []
    for template, text in sorted(chart.render(values, name=RELEASE, namespace=NAMESPACE).items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append((template.split("/", 1)[-1], doc))
    return objects


def env_of(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env", [])}


def probes_hit_named_ports(ctr: Obj) -> bool:
    """Every probe's port is one the container declares (a typo is valid to the schema)."""
    names = {p.get("name") for p in ctr.get("ports", [])}
    probes = [ctr.get(p) for p in ("startupProbe", "livenessProbe", "readinessProbe") if ctr.get(p)]
    return bool(probes) and all(p["httpGet"]["port"] in names for p in probes)


def one(objects: list[Obj], kind: str) -> Obj:
    found = [o for o in objects if o["kind"] == kind]
    return found[0] if len(found) == 1 else {}


def selects(selector: Obj, labels: Obj) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_lint(c: Check, name: str, values: Obj | None) -> None:
    report = helm.lint(
        CHART, values, strict=True, namespace=NAMESPACE, kube_version=LINT_KUBE_VERSION
    )
    by_severity = Counter(m["severity"] for m in report["messages"])
    for m in report["messages"]:
        if m["severity"] >= 2:
            print(f"  lint {name}: {m['path']}: {m['error']}")
    ok = c.that(
        not report["errors"] and by_severity[2] == 0 and by_severity[3] == 0,
        f"lint ({name} values): {report['errors'] or 'warnings or errors above'}",
    )
    if ok:
        infos = "; ".join(m["error"] for m in report["messages"] if m["severity"] < 2)
        print(
            f"lint      {name}: clean (strict, {LINT_KUBE_VERSION})"
            + (f"; info: {infos}" if infos else "")
        )


def check_kubernetes_schemas(c: Check, name: str, objects: list[tuple[str, Obj]]) -> None:
    checked = invalid = 0
    for template, obj in objects:
        if obj.get("apiVersion", "").startswith("keda.sh/"):
            continue  # a CRD: check_scaled_object looks at it
        for version in KUBE_VERSIONS:
            what = f"{name}: {template}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')} @ {version}"
            try:
                kv.validate(obj, version, strict=True)
                c.that(True, what)
            except kv.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                invalid += not c.that(False, f"{what}: {path}: {e.message}")
            except kv.SchemaNotFoundError as e:
                invalid += not c.that(False, f"{what}: {e.message}")
        checked += 1
    print(
        f"validate  {name}: {checked} objects x Kubernetes {', '.join(KUBE_VERSIONS)} (strict): "
        + ("all valid" if not invalid else f"{invalid} invalid (above)")
    )


def check_common(c: Check, name: str, objects: list[Obj]) -> None:
    for o in objects:
        meta = o.get("metadata", {})
        label = f"{name}: {o['kind']}/{meta.get('name')}"
        c.that(meta.get("namespace") == NAMESPACE, f"{label} is in the release namespace")
        labels = meta.get("labels", {})
        c.that(
            labels.get("app.kubernetes.io/instance") == RELEASE
            and labels.get("app.kubernetes.io/managed-by") == "Helm",
            f"{label} has the app.kubernetes.io labels",
        )


def check_node(c: Check, name: str, objects: list[Obj], production: bool) -> None:
    sts = one(objects, "StatefulSet")
    if not c.that(bool(sts), f"{name}: exactly one StatefulSet"):
        return
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    ctr = pod["containers"][0]
    env = env_of(ctr)
    want = {
        "KEEL_ROLE": "node",
        "KEEL_DATA_DIR": "/var/lib/keel",
        "KEEL_HTTP_ADDR": "0.0.0.0:8080",
        "KEEL_SEED_DEMO": "false",
        "KEEL_LOG_FORMAT": "json",
        "OTEL_SERVICE_NAME": "keel-node",
        "KEEL_LEASE_SECS": "10",
        "KEEL_PARTITIONS": "256" if production else "128",
        "KEEL_REPLICAS": "3" if production else "1",
    }
    for k, v in want.items():
        c.that(env.get(k, {}).get("value") == v, f"{name}: node env {k}={v}")
    c.that(
        env.get("KEEL_NODE_ID", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        == "metadata.name",
        f"{name}: node KEEL_NODE_ID is the pod name",
    )
    c.that("KEEL_NATS_URL" in env, f"{name}: node has KEEL_NATS_URL")
    c.that(
        ("KEEL_NATS_CREDS" in env) == production,
        f"{name}: KEEL_NATS_CREDS only with a credentials Secret",
    )
    c.that(
        ("OTEL_EXPORTER_OTLP_ENDPOINT" in env) == production,
        f"{name}: OTEL_EXPORTER_OTLP_ENDPOINT only with otel.endpoint",
    )
    c.that(ctr.get("command") == ["keel"], f"{name}: node command is keel")
    inits = pod.get("initContainers", [])
    c.that(len(inits) == (1 if production else 0), f"{name}: a compaction init container only when enabled")
    for init in inits:
        init_env = env_of(init)
        c.that(init.get("command") == ["keel", "compact"], f"{name}: the init container runs keel compact")
        c.that(
            init_env.get("KEEL_DATA_DIR", {}).get("value") == "/var/lib/keel"
            and {"name": "data", "mountPath": "/var/lib/keel"} in init.get("volumeMounts", []),
            f"{name}: the init container compacts the node's data volume",
        )
        c.that(
            init_env.get("KEEL_STORE_COMPRESSION", {}).get("value") == "true",
            f"{name}: the init container passes compactOnStart.compression",
        )
    c.that(spec.get("podManagementPolicy") == "Parallel", f"{name}: podManagementPolicy Parallel")
    c.that(
        ("replicas" in spec) != production,
        f"{name}: StatefulSet replicas set only when not autoscaled",
    )
    c.that(
        production or spec.get("replicas") == 2,
        f"{name}: two nodes by default (the least that gives fail-over)",
    )
    claims = [t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])]
    mounts = {m["name"]: m["mountPath"] for m in ctr.get("volumeMounts", [])}
    c.that(
        claims == ["data"] and mounts.get("data") == "/var/lib/keel",
        f"{name}: a volume per pod at /var/lib/keel",
    )
    c.that(pod.get("terminationGracePeriodSeconds") == 60, f"{name}: node grace period 60 s")
    c.that(
        ctr.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds") == 5,
        f"{name}: node preStop is a 5 s sleep",
    )
    probes = {
        p: ctr.get(p, {}).get("httpGet", {})
        for p in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    c.that(
        [probes[p].get("path") for p in ("startupProbe", "livenessProbe", "readinessProbe")]
        == ["/healthz", "/healthz", "/readyz"]
        and probes_hit_named_ports(ctr),
        f"{name}: node probes /healthz, /healthz, /readyz on a declared port",
    )
    sc = ctr.get("securityContext", {})
    c.that(
        pod.get("securityContext", {}).get("runAsNonRoot") is True
        and sc.get("readOnlyRootFilesystem") is True
        and sc.get("capabilities", {}).get("drop") == ["ALL"],
        f"{name}: node runs non-root, read-only, no capabilities",
    )
    anti = (
        pod.get("affinity", {})
        .get("podAntiAffinity", {})
        .get("preferredDuringSchedulingIgnoredDuringExecution", [])
    )
    c.that(
        any(t["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname" for t in anti),
        f"{name}: node anti-affinity by hostname",
    )
    ann = spec["template"]["metadata"].get("annotations", {})
    c.that(
        ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/path") == "/metrics",
        f"{name}: node scrape annotations",
    )
    pod_labels = spec["template"]["metadata"]["labels"]
    c.that(
        selects(spec["selector"]["matchLabels"], pod_labels),
        f"{name}: StatefulSet selector matches its pods",
    )
    headless = [
        o
        for o in objects
        if o["kind"] == "Service" and o["metadata"]["name"] == spec.get("serviceName")
    ]
    c.that(
        len(headless) == 1
        and headless[0]["spec"].get("clusterIP") == "None"
        and selects(headless[0]["spec"]["selector"], pod_labels),
        f"{name}: serviceName names a headless Service selecting the nodes",
    )
    pdbs = [
        o
        for o in objects
        if o["kind"] == "PodDisruptionBudget"
        and selects(o["spec"]["selector"]["matchLabels"], pod_labels)
    ]
    c.that(
        len(pdbs) == 1 and pdbs[0]["spec"].get("maxUnavailable") == 1,
        f"{name}: node PDB maxUnavailable 1",
    )
    c.that(
        len(pdbs) == 1 and pdbs[0]["spec"].get("unhealthyPodEvictionPolicy") == "AlwaysAllow",
        f"{name}: the node PDB lets not-ready nodes be evicted",
    )
    if production:
        check_creds_mount(c, f"{name}: node", pod, ctr, "keel-nats-creds")


def check_creds_mount(c: Check, what: str, pod: Obj, ctr: Obj, secret: str) -> None:
    """The credentials Secret is mounted, and KEEL_NATS_CREDS names the file in it."""
    volumes = [v for v in pod.get("volumes", []) if v.get("secret", {}).get("secretName") == secret]
    mounts = {m["name"]: m["mountPath"] for m in ctr.get("volumeMounts", [])}
    creds = env_of(ctr).get("KEEL_NATS_CREDS", {}).get("value", "")
    c.that(
        len(volumes) == 1
        and volumes[0]["name"] in mounts
        and creds == f"{mounts[volumes[0]['name']]}/{volumes[0]['secret']['items'][0]['path']}",
        f"{what}: Secret {secret} is mounted where KEEL_NATS_CREDS points",
    )


def check_gateway(c: Check, name: str, objects: list[Obj], production: bool) -> None:
    dep = one(objects, "Deployment")
    if not c.that(bool(dep), f"{name}: exactly one Deployment"):
        return
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    pod = dep["spec"]["template"]["spec"]
    ctr = pod["containers"][0]
    env = env_of(ctr)
    c.that(
        env.get("KEEL_ROLE", {}).get("value") == "gateway", f"{name}: gateway env KEEL_ROLE=gateway"
    )
    c.that(
        env.get("OTEL_SERVICE_NAME", {}).get("value") == "keel-gateway",
        f"{name}: gateway OTEL_SERVICE_NAME",
    )
    c.that("KEEL_NATS_URL" in env, f"{name}: gateway has KEEL_NATS_URL")
    c.that(
        not any("persistentVolumeClaim" in v for v in pod.get("volumes", [])),
        f"{name}: gateway has no volume",
    )
    c.that(
        ctr.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz"
        and ctr.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz"
        and probes_hit_named_ports(ctr),
        f"{name}: gateway probes /healthz, /readyz on a declared port",
    )
    svcs = [
        o
        for o in objects
        if o["kind"] == "Service"
        and o["spec"].get("clusterIP") != "None"
        and selects(o["spec"]["selector"], pod_labels)
    ]
    c.that(
        len(svcs) == 1
        and svcs[0]["spec"].get("type") == "ClusterIP"
        and svcs[0]["spec"]["ports"][0]["port"] == 80
        and svcs[0]["spec"]["ports"][0]["targetPort"] == "http",
        f"{name}: a ClusterIP Service 80 -> http for the gateway",
    )
    hpas = [
        o
        for o in objects
        if o["kind"] == "HorizontalPodAutoscaler"
        and o["spec"]["scaleTargetRef"]
        == {"apiVersion": "apps/v1", "kind": "Deployment", "name": dep["metadata"]["name"]}
    ]
    c.that(len(hpas) == 1, f"{name}: an HPA targets the gateway Deployment")
    pdbs = [
        o
        for o in objects
        if o["kind"] == "PodDisruptionBudget"
        and selects(o["spec"]["selector"]["matchLabels"], pod_labels)
    ]
    c.that(len(pdbs) == 1, f"{name}: a PDB covers the gateway")
    if production:  # gateway.nats: its own user, over the shared nats values
        check_creds_mount(c, f"{name}: gateway", pod, ctr, "keel-gateway-nats-creds")
    else:
        c.that("KEEL_NATS_CREDS" not in env, f"{name}: gateway has no KEEL_NATS_CREDS by default")


def check_scaled_object(c: Check, name: str, objects: list[Obj], expected: bool) -> None:
    scaled = [o for o in objects if o["kind"] == "ScaledObject"]
    if not expected:
        c.that(not scaled, f"{name}: no ScaledObject unless keda.enabled")
        return
    if not c.that(len(scaled) == 1, f"{name}: exactly one ScaledObject"):
        return
    so = scaled[0]
    spec = so.get("spec", {})
    sts = one(objects, "StatefulSet")
    c.that(
        so.get("apiVersion") == "keda.sh/v1alpha1",
        f"{name}: ScaledObject apiVersion keda.sh/v1alpha1",
    )
    ref = spec.get("scaleTargetRef", {})
    c.that(
        ref.get("kind") == "StatefulSet" and ref.get("name") == sts.get("metadata", {}).get("name"),
        f"{name}: ScaledObject scaleTargetRef names the StatefulSet",
    )
    c.that(
        isinstance(spec.get("minReplicaCount"), int)
        and spec["minReplicaCount"] >= 1
        and spec.get("maxReplicaCount", 0) >= spec["minReplicaCount"],
        f"{name}: ScaledObject 1 <= minReplicaCount <= maxReplicaCount",
    )
    triggers = spec.get("triggers", [])
    prom = [t for t in triggers if t.get("type") == "prometheus"]
    required = {"serverAddress", "query", "threshold"}
    c.that(
        len(prom) == 1
        and required <= set(prom[0].get("metadata", {}))
        and all(isinstance(v, str) and v for v in prom[0]["metadata"].values())
        and "keel_" in prom[0]["metadata"]["query"],
        f"{name}: one prometheus trigger on a Keel metric with string metadata {sorted(required)}",
    )
    # KEDA makes its own HPA for the target; a second one on the StatefulSet would fight it.
    c.that(
        not any(
            o["kind"] == "HorizontalPodAutoscaler"
            and o["spec"]["scaleTargetRef"].get("kind") == "StatefulSet"
            for o in objects
        ),
        f"{name}: no chart HPA on the StatefulSet while KEDA scales it",
    )
    print(
        f"keda      {name}: ScaledObject -> StatefulSet/{ref.get('name')}, {len(prom)} prometheus trigger(s), "
        f"{len(triggers) - len(prom)} other"
    )


def check_value_set(c: Check, chart: helm.Chart, name: str, path: Path | None) -> None:
    values = load_values(path)
    try:
        chart.validate_schema(values)
        c.that(True, f"{name}: values match values.schema.json")
    except helm.HelmError as e:
        c.that(False, f"{name}: values.schema.json: {e}")
    check_lint(c, name, values)
    try:
        rendered = render(chart, values)
    except helm.HelmError as e:
        c.that(False, f"render ({name} values): {e}")
        return
    objects = [o for _, o in rendered]
    kinds = Counter(o["kind"] for o in objects)
    production = name == "production"
    print(
        f"render    {name}: {len(objects)} objects: "
        + ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items()))
    )
    for kind, at_least in [
        ("StatefulSet", 1),
        ("Deployment", 1),
        ("Service", 2),
        ("PodDisruptionBudget", 1),
        ("HorizontalPodAutoscaler", 1),
    ]:
        c.that(kinds[kind] >= at_least, f"{name}: at least {at_least} {kind}")
    check_kubernetes_schemas(c, name, rendered)
    check_common(c, name, objects)
    check_node(c, name, objects, production)
    check_gateway(c, name, objects, production)
    check_scaled_object(c, name, objects, expected=production)


def check_guards(c: Check, chart: helm.Chart) -> None:
    """Values the chart must refuse rather than render something broken."""
    bad: list[tuple[str, Obj]] = [
        ("cluster.partitions 0", {"cluster": {"partitions": 0}}),
        ("empty nats.url", {"nats": {"url": ""}}),
        ("keda.minReplicaCount 0", {"keda": {"enabled": True, "minReplicaCount": 0}}),
    ]
    refused = 0
    for what, values in bad:
        try:
            # render validates against values.schema.json too, as an install does
            chart.render(values, name=RELEASE, namespace=NAMESPACE)
            c.that(False, f"the chart refuses {what}")
        except helm.HelmError:
            refused += c.that(True, f"the chart refuses {what}")
    print(f"guards    {refused}/{len(bad)} bad value sets refused ({', '.join(w for w, _ in bad)})")


def check_nats_configs(c: Check) -> None:
    server = shutil.which("nats-server")
    if server is None:
        print(
            "nats      SKIPPED: nats-server is not on PATH (tests/run installs the pinned 2.15.1)"
        )
        return
    version = subprocess.run(
        [server, "--version"], check=False, capture_output=True, text=True
    ).stdout.strip()
    # Placeholder passwords, for the parse only; the real ones come from the deployment.
    env = {**os.environ, **{v: os.environ.get(v, f"check-{v.lower()}") for v in NATS_PASSWORD_VARS}}
    failed = 0
    for conf in NATS_CONFIGS:
        r = subprocess.run(
            [server, "-t", "-c", str(conf)], check=False, capture_output=True, text=True, env=env
        )
        out = (r.stderr or r.stdout).strip()
        failed += not c.that(
            r.returncode == 0, f"nats-server -t -c {conf.relative_to(ROOT)}: {out}"
        )
    if not failed:
        print(f"nats      {version}: -t passed for {', '.join(p.name for p in NATS_CONFIGS)}")


def main() -> int:
    c = Check()
    with helm.Chart.load(CHART) as chart:
        meta = chart.metadata
        print(
            f"chart     {meta['name']} {meta['version']} (app {meta.get('appVersion')}), "
            f"Helm SDK {helm.helm_sdk_version()} via helm-python-sdk {helm.__version__}, "
            f"kubernetes-validate {kv.__version__}"
        )
        c.that(meta.get("apiVersion") == "v2", "Chart.yaml apiVersion v2")
        for name, path in VALUE_SETS.items():
            check_value_set(c, chart, name, path)
        check_guards(c, chart)
    check_nats_configs(c)
    print("not checked: a real cluster (nothing is applied), the image, NATS at run time")
    print(f"{c.passed} passed, {len(c.failures)} failed")
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
