"""Assertions shared by the e2e scenarios (install, upgrade, rollback, uninstall)."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field

from tests.e2e.kube import (
    CHART,
    NEVER_READY_IMAGE,
    RELEASE,
    VALUES_DIR,
    Cluster,
    Obj,
    hook_events,
    ident,
    is_hook,
    is_kept,
    resource_arg,
    wait_flag,
    wait_until,
)

DEPLOYMENT = "Deployment.v1.apps"
JOB = "Job.v1.batch"
REPLICASET = "ReplicaSet.v1.apps"
INSTANCE_SELECTOR = f"app.kubernetes.io/instance={RELEASE}"
# The config change used by the upgrade scenarios: a ConfigMap key the pods read, set to a
# value no values file uses.
CONFIG_KEY = "RATE_LIMIT_PER_MINUTE"
CONFIG_VALUE = "1234"
CONFIG_CHANGE = ["--set", f"config.rateLimitPerMinute={CONFIG_VALUE}"]
BROKEN_IMAGE = [
    "--set",
    f"image.repository={NEVER_READY_IMAGE.rsplit(':', 1)[0]}",
    "--set",
    f"image.tag={NEVER_READY_IMAGE.rsplit(':', 1)[1]}",
    "--set",
    "image.digest=",
]
# kwok pods are ready within seconds, so a hang fails well before pytest-timeout; a real
# cluster (docs/e2e.md) sets MEMSTACK_E2E_HELM_TIMEOUT higher.
TIMEOUT = os.environ.get("MEMSTACK_E2E_HELM_TIMEOUT", "150s")


@dataclass
class Release:
    """What one scenario learned so far about its release (shared by its ordered steps)."""

    values: str
    helm: int
    namespace: str
    rendered: list[Obj] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    job_uids: dict[int, str] = field(default_factory=dict)
    templates: dict[int, dict[str, Obj]] = field(default_factory=dict)
    configs: dict[int, dict[str, str]] = field(default_factory=dict)
    scaled: dict[str, int] = field(default_factory=dict)

    @property
    def values_args(self) -> list[str]:
        path = VALUES_DIR / f"{self.values}.yaml"
        assert path.is_file(), f"{path} is missing"
        return ["-f", str(path)]

    def require(self, step: str) -> None:
        # A failed earlier step makes the later ones fail too (never skip silently).
        assert step in self.done, f"step '{step}' did not pass for {self.values}/helm{self.helm}"


# --- rendered objects -------------------------------------------------------------------
def release_objects(rendered: list[Obj]) -> list[Obj]:
    return [o for o in rendered if not is_hook(o)]


def of_kind(rendered: list[Obj], kind: str) -> list[Obj]:
    return [o for o in release_objects(rendered) if o["kind"] == kind]


def names(objs: list[Obj]) -> list[str]:
    return [str(o["metadata"]["name"]) for o in objs]


def hooks_for(rendered: list[Obj], event: str, kind: str | None = None) -> list[Obj]:
    return [
        o for o in rendered if is_hook(o) and event in hook_events(o) and (kind is None or o["kind"] == kind)
    ]


def hook_weight(obj: Obj) -> int:
    return int((obj["metadata"].get("annotations") or {}).get("helm.sh/hook-weight", "0"))


def hpa_min_by_target(rendered: list[Obj]) -> dict[str, int]:
    out: dict[str, int] = {}
    for hpa in of_kind(rendered, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        if ref["kind"] == "Deployment":
            out[str(ref["name"])] = int(hpa["spec"].get("minReplicas", 1))
    return out


def obj_namespace(obj: Obj, namespace: str) -> str:
    return str(obj["metadata"].get("namespace") or namespace)


def pod_specs(rendered: list[Obj]) -> list[Obj]:
    return [o["spec"]["template"]["spec"] for o in rendered if o["kind"] in {"Deployment", "Job"}]


def ensure_prerequisites(cluster: Cluster, rel: Release) -> None:
    """What an operator provides before installing with a values file (docs/e2e.md): other
    namespaces the values target, PriorityClasses and existing Secrets the pods reference.
    Secrets get placeholder values (no container reads them here)."""
    for ns in sorted({obj_namespace(o, rel.namespace) for o in rel.rendered} - {rel.namespace}):
        if cluster.get("namespace", ns, None) is None:
            cluster.kubectl_run("create", "namespace", ns)
    rendered = {(str(o["kind"]), str(o["metadata"]["name"])) for o in rel.rendered}
    secrets: dict[str, set[str]] = {}
    for spec in pod_specs(rel.rendered):
        pc = spec.get("priorityClassName")
        if (
            pc
            and ("PriorityClass", pc) not in rendered
            and cluster.get("PriorityClass.v1.scheduling.k8s.io", pc, None) is None
        ):
            cluster.kubectl_run(
                "create", "priorityclass", pc, "--value=100000", "--description=e2e prerequisite"
            )
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            for ev in c.get("env") or []:
                ref = (ev.get("valueFrom") or {}).get("secretKeyRef")
                if ref and ("Secret", ref["name"]) not in rendered:
                    secrets.setdefault(str(ref["name"]), set()).add(str(ref["key"]))
    if secrets and cluster.get("namespace", rel.namespace, None) is None:
        cluster.kubectl_run("create", "namespace", rel.namespace)
    for name, keys in sorted(secrets.items()):
        literals = [
            f"--from-literal={k}=e2e-placeholder-{k.lower()}-0123456789abcdef0123456789" for k in sorted(keys)
        ]
        cluster.kubectl_run("-n", rel.namespace, "create", "secret", "generic", name, *literals)


# --- cluster state ----------------------------------------------------------------------
def rv(obj: Obj) -> int:
    # In this cluster resourceVersion is the etcd revision, which orders writes globally.
    return int(obj["metadata"]["resourceVersion"])


def assert_release_objects_exist(cluster: Cluster, rel: Release) -> None:
    missing: list[str] = []
    for obj in release_objects(rel.rendered):
        res, name = ident(obj)
        live = cluster.get(res, name, obj_namespace(obj, rel.namespace))
        if live is None:
            missing.append(f"{res}/{name}")
            continue
        ann = live["metadata"].get("annotations") or {}
        assert ann.get("meta.helm.sh/release-name") == RELEASE, (
            f"{res}/{name} not owned by the release: {ann}"
        )
        if obj["kind"] == "ConfigMap":
            assert (live.get("data") or {}) == (obj.get("data") or {}), (
                f"ConfigMap {name} differs from helm template"
            )
    assert not missing, f"objects of `helm template` missing from the cluster: {missing}"


def rollout_done(cluster: Cluster, namespace: str, name: str) -> Obj | None:
    d = cluster.must_get(DEPLOYMENT, name, namespace)
    want = int(d["spec"].get("replicas", 1))
    st = d.get("status") or {}
    done = (
        int(st.get("observedGeneration", 0)) >= int(d["metadata"]["generation"])
        and int(st.get("replicas", 0)) == want
        and int(st.get("updatedReplicas", 0)) == want
        and int(st.get("readyReplicas", 0)) == want
        and int(st.get("availableReplicas", 0)) == want
    )
    return d if done else None


def wait_deployments_ready(cluster: Cluster, rel: Release, timeout: float = 180) -> dict[str, Obj]:
    """Every Deployment fully rolled out and ready; with an HPA, at least at minReplicas."""
    mins = hpa_min_by_target(rel.rendered)
    out: dict[str, Obj] = {}
    for name in names(of_kind(rel.rendered, "Deployment")):
        floor = max(mins.get(name, 1), rel.scaled.get(name, 0))

        def ready(n: str = name, lo: int = floor) -> Obj | None:
            d = rollout_done(cluster, rel.namespace, n)
            return d if d is not None and int(d["spec"]["replicas"]) >= lo else None

        out[name] = wait_until(f"Deployment {name} ready with >= {floor} replicas", ready, timeout=timeout)
    return out


def owner_kind(obj: Obj) -> str:
    refs = obj["metadata"].get("ownerReferences") or []
    return str(refs[0].get("kind", "")) if refs else ""


def owned_by(items: list[Obj], uid: str) -> list[Obj]:
    return [i for i in items if any(r.get("uid") == uid for r in i["metadata"].get("ownerReferences") or [])]


def replica_sets(cluster: Cluster, namespace: str, deployment: Obj) -> list[Obj]:
    return owned_by(cluster.list_objects(REPLICASET, namespace), str(deployment["metadata"]["uid"]))


def events_for(cluster: Cluster, namespace: str, kind: str, name: str, reason: str) -> list[Obj]:
    return sorted(
        (
            e
            for e in cluster.events(namespace)
            if e["involvedObject"].get("kind") == kind
            and e["involvedObject"].get("name") == name
            and e.get("reason") == reason
        ),
        key=rv,
    )


def migration_job(rel: Release, event: str) -> Obj:
    jobs = hooks_for(rel.rendered, event, "Job")
    assert len(jobs) == 1, f"expected one {event} hook Job in the chart, got {names(jobs)}"
    return jobs[0]


def assert_hook_inputs_are_earlier_hooks(rel: Release, job: Obj, event: str) -> None:
    """kwok runs no container, so a hook reading a ConfigMap/Secret that does not exist yet
    would still 'succeed' here. Check statically what a kubelet would need: every ConfigMap,
    Secret or ServiceAccount of this release the hook pod uses is itself a lower-weight hook of
    the same event (the release's own objects are only created after the pre-* hooks)."""
    spec = job["spec"]["template"]["spec"]
    refs: set[tuple[str, str]] = set()
    refs.add(("ServiceAccount", str(spec.get("serviceAccountName") or "default")))
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        for ef in c.get("envFrom") or []:
            if "configMapRef" in ef:
                refs.add(("ConfigMap", ef["configMapRef"]["name"]))
            if "secretRef" in ef:
                refs.add(("Secret", ef["secretRef"]["name"]))
        for ev in c.get("env") or []:
            vf = ev.get("valueFrom") or {}
            if "configMapKeyRef" in vf:
                refs.add(("ConfigMap", vf["configMapKeyRef"]["name"]))
            if "secretKeyRef" in vf:
                refs.add(("Secret", vf["secretKeyRef"]["name"]))
    for vol in spec.get("volumes") or []:
        if "configMap" in vol:
            refs.add(("ConfigMap", vol["configMap"]["name"]))
        if "secret" in vol:
            refs.add(("Secret", vol["secret"]["secretName"]))
    by_ref = {(str(o["kind"]), str(o["metadata"]["name"])): o for o in rel.rendered}
    assert len(refs) > 1, "the migration Job reads no configuration at all"
    for ref in sorted(refs):
        obj = by_ref.get(ref)
        if obj is None:
            continue  # operator-provided (an existing Secret, the default ServiceAccount)
        problem = (
            f"hook Job {job['metadata']['name']} reads {ref[0]}/{ref[1]}, which is not a {event} hook: "
            "it does not exist yet when the hook runs"
        )
        assert is_hook(obj), problem
        assert event in hook_events(obj), problem
        assert hook_weight(obj) < hook_weight(job), (
            f"{ref[0]}/{ref[1]} must have a lower hook weight than the Job"
        )


def assert_hook_ran_before(cluster: Cluster, rel: Release, event: str, new_rs: dict[str, str]) -> str:
    """The migration Job completed before the Deployments' (new) ReplicaSets were scaled up.

    new_rs maps Deployment name -> the ReplicaSet this install/upgrade created. Returns the Job uid.
    """
    job_tpl = migration_job(rel, event)
    assert_hook_inputs_are_earlier_hooks(rel, job_tpl, event)
    name = str(job_tpl["metadata"]["name"])
    completed_all = events_for(cluster, rel.namespace, "Job", name, "Completed")
    assert completed_all, f"no 'Completed' event for hook Job {name}: the migration hook did not run"
    job = cluster.get(JOB, name, rel.namespace)
    if job is None:
        # Only a hook-succeeded delete policy may remove it; then the newest event is this run's.
        policy = (job_tpl["metadata"].get("annotations") or {}).get("helm.sh/hook-delete-policy", "")
        assert "hook-succeeded" in policy, (
            f"hook Job {name} disappeared although its delete policy is {policy!r}"
        )
        uid = str(completed_all[-1]["involvedObject"]["uid"])
        finished = str(completed_all[-1].get("lastTimestamp") or completed_all[-1]["firstTimestamp"])
    else:
        st = job.get("status") or {}
        assert int(st.get("succeeded", 0)) >= 1, f"hook Job {name} did not succeed: {st}"
        uid = str(job["metadata"]["uid"])
        finished = str(st["completionTime"])
    completed = [e for e in completed_all if e["involvedObject"].get("uid") == uid]
    assert completed, f"no 'Completed' event for hook Job {name} ({uid})"
    done_rv = rv(completed[0])
    for dep, rs in new_rs.items():
        scaled = [
            e
            for e in events_for(cluster, rel.namespace, "Deployment", dep, "ScalingReplicaSet")
            if rs in e["message"]
        ]
        assert scaled, f"no ScalingReplicaSet event for {dep} -> {rs}"
        assert done_rv < rv(scaled[0]), (
            f"hook Job {name} completed (rv {done_rv}) after {dep} scaled up {rs} (rv {rv(scaled[0])})"
        )
        d = cluster.must_get(REPLICASET, rs, rel.namespace)
        assert finished <= str(d["metadata"]["creationTimestamp"]), (
            f"hook Job {name} completed at {finished}, after ReplicaSet {rs} was created"
        )
    return uid


def current_rs(cluster: Cluster, namespace: str, deployment: Obj) -> Obj:
    """The ReplicaSet whose pod template matches the Deployment's current revision."""
    revision = (deployment["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
    for rs in replica_sets(cluster, namespace, deployment):
        if (rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision") == revision:
            return rs
    raise AssertionError(f"no ReplicaSet of revision {revision} for {deployment['metadata']['name']}")


def snapshot(cluster: Cluster, rel: Release, revision: int) -> None:
    rel.templates[revision] = {
        n: copy.deepcopy(cluster.must_get(DEPLOYMENT, n, rel.namespace)["spec"]["template"])
        for n in names(of_kind(rel.rendered, "Deployment"))
    }
    cms = of_kind(rel.rendered, "ConfigMap")
    rel.configs[revision] = {}
    for cm in cms:
        live = cluster.must_get("ConfigMap", str(cm["metadata"]["name"]), obj_namespace(cm, rel.namespace))
        for k, v in (live.get("data") or {}).items():
            rel.configs[revision][f"{cm['metadata']['name']}/{k}"] = v


def history_statuses(cluster: Cluster, rel: Release) -> list[tuple[int, str]]:
    return [(int(h["revision"]), str(h["status"])) for h in cluster.history(rel.helm, rel.namespace)]


# --- scenario steps -----------------------------------------------------------------------
def install(cluster: Cluster, rel: Release, helm: int | None = None) -> None:
    h = helm or rel.helm
    assert cluster.get("namespace", rel.namespace, None) is None, f"namespace {rel.namespace} already exists"
    rel.rendered = cluster.template(h, rel.namespace, rel.values_args)
    assert of_kind(rel.rendered, "Deployment"), "helm template rendered no Deployment"
    # Fail fast, with the reason, on a hook that cannot start on a first install.
    assert_hook_inputs_are_earlier_hooks(rel, migration_job(rel, "pre-install"), "pre-install")
    ensure_prerequisites(cluster, rel)
    res = cluster.helm(
        h,
        "install",
        RELEASE,
        str(CHART),
        "-n",
        rel.namespace,
        "--create-namespace",
        *rel.values_args,
        wait_flag(h),
        "--timeout",
        TIMEOUT,
        check=False,
    )
    if res.returncode != 0:
        warnings = [
            f"{e['involvedObject'].get('kind')}/{e['involvedObject'].get('name')}: {e.get('message')}"
            for e in cluster.events(rel.namespace)
            if e.get("type") == "Warning"
        ]
        raise AssertionError(f"{res.describe()}\nwarning events: {warnings}")
    assert history_statuses(cluster, rel) == [(1, "deployed")]
    # The manifest Helm stored is exactly what `helm template` renders (same object set).
    stored = {ident(o) for o in cluster.manifest(h, rel.namespace)}
    assert stored == {ident(o) for o in release_objects(rel.rendered)}, "release manifest != helm template"
    assert_release_objects_exist(cluster, rel)
    deps = wait_deployments_ready(cluster, rel)
    new_rs = {n: str(current_rs(cluster, rel.namespace, d)["metadata"]["name"]) for n, d in deps.items()}
    rel.job_uids[1] = assert_hook_ran_before(cluster, rel, "pre-install", new_rs)
    snapshot(cluster, rel, 1)
    # Hook-only helpers (the migration ConfigMap/Secret) are gone once the hooks succeeded.
    for obj in hooks_for(rel.rendered, "pre-install"):
        policy = (obj["metadata"].get("annotations") or {}).get("helm.sh/hook-delete-policy", "")
        if "hook-succeeded" in policy:
            kind, name = ident(obj)
            assert cluster.get(kind, name, rel.namespace) is None, (
                f"hook {kind}/{name} not deleted after success"
            )


def upgrade_config(
    cluster: Cluster, rel: Release, revision: int, helm: int | None = None, extra: list[str] | None = None
) -> None:
    """`helm upgrade` with a config change: new ReplicaSets, the hook re-ran, revision N."""
    h = helm or rel.helm
    before = {
        n: cluster.must_get(DEPLOYMENT, n, rel.namespace) for n in names(of_kind(rel.rendered, "Deployment"))
    }
    old_rs = {
        n: {str(r["metadata"]["name"]) for r in replica_sets(cluster, rel.namespace, d)}
        for n, d in before.items()
    }
    res = cluster.helm(
        h,
        "upgrade",
        RELEASE,
        str(CHART),
        "-n",
        rel.namespace,
        *rel.values_args,
        *CONFIG_CHANGE,
        *(extra or []),
        wait_flag(h),
        "--timeout",
        TIMEOUT,
    )
    assert "conflict" not in (res.stdout + res.stderr).lower(), res.describe()
    hist = history_statuses(cluster, rel)
    assert hist[-1] == (revision, "deployed"), hist
    assert all(s == "superseded" for _, s in hist[:-1]), hist
    rel.rendered = cluster.template(h, rel.namespace, [*rel.values_args, *CONFIG_CHANGE])
    assert_release_objects_exist(cluster, rel)
    cms = [cm for cm in of_kind(rel.rendered, "ConfigMap") if CONFIG_KEY in (cm.get("data") or {})]
    assert cms, f"no ConfigMap carries {CONFIG_KEY}"
    for cm in cms:
        live = cluster.must_get("ConfigMap", str(cm["metadata"]["name"]), rel.namespace)
        assert live["data"][CONFIG_KEY] == CONFIG_VALUE, live["data"]
    deps = wait_deployments_ready(cluster, rel)
    new_rs: dict[str, str] = {}
    for n, d in deps.items():
        old_ann = before[n]["spec"]["template"]["metadata"].get("annotations") or {}
        new_ann = d["spec"]["template"]["metadata"].get("annotations") or {}
        assert old_ann.get("checksum/config") != new_ann.get("checksum/config"), (
            f"{n}: checksum/config unchanged"
        )
        rs = current_rs(cluster, rel.namespace, d)
        rs_name = str(rs["metadata"]["name"])
        assert rs_name not in old_rs[n], f"{n}: no new ReplicaSet after a config change"
        for other in replica_sets(cluster, rel.namespace, d):
            if other["metadata"]["name"] != rs_name:
                assert int(other["spec"].get("replicas", 0)) == 0, f"{n}: old ReplicaSet still scaled"
        new_rs[n] = rs_name
    uid = assert_hook_ran_before(cluster, rel, "pre-upgrade", new_rs)
    assert uid not in rel.job_uids.values(), "the migration hook did not run again on upgrade"
    rel.job_uids[revision] = uid
    snapshot(cluster, rel, revision)


def broken_upgrade_then_rollback(cluster: Cluster, rel: Release, good: int) -> None:
    h = rel.helm
    broken = good + 1
    res = cluster.helm(
        h,
        "upgrade",
        RELEASE,
        str(CHART),
        "-n",
        rel.namespace,
        *rel.values_args,
        *CONFIG_CHANGE,
        *BROKEN_IMAGE,
        wait_flag(h),
        "--timeout",
        "40s",
        check=False,
        timeout=300,
    )
    assert res.returncode != 0, f"an upgrade to a never-ready image succeeded:\n{res.describe()}"
    hist = history_statuses(cluster, rel)
    assert hist[-1] == (broken, "failed"), hist
    # It failed because the new pods never became ready, and the old ones kept serving.
    for n in names(of_kind(rel.rendered, "Deployment")):
        d = cluster.must_get(DEPLOYMENT, n, rel.namespace)
        images = [c["image"] for c in d["spec"]["template"]["spec"]["containers"]]
        assert images == [NEVER_READY_IMAGE] * len(images), f"{n} not upgraded to the broken image: {images}"
        want = int(d["spec"]["replicas"])
        assert int((d.get("status") or {}).get("availableReplicas", 0)) >= want, (
            f"{n}: the broken rollout reduced availability (maxUnavailable must be 0): {d.get('status')}"
        )
        pods = cluster.list_objects("pods", rel.namespace, INSTANCE_SELECTOR)
        stuck = [
            p
            for p in pods
            if p["spec"]["containers"][0]["image"] == NEVER_READY_IMAGE
            and p["metadata"].get("labels", {}).get("app.kubernetes.io/component")
            == d["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/component")
        ]
        assert stuck, f"{n}: no pod with the broken image was created"
        for p in stuck:
            conds = {c["type"]: c["status"] for c in (p.get("status") or {}).get("conditions") or []}
            assert conds.get("Ready") != "True", f"broken pod {p['metadata']['name']} is Ready"

    res = cluster.helm(
        h, "rollback", RELEASE, str(good), "-n", rel.namespace, wait_flag(h), "--timeout", TIMEOUT
    )
    assert "conflict" not in (res.stdout + res.stderr).lower(), res.describe()
    hist = history_statuses(cluster, rel)
    assert hist[-1] == (broken + 1, "deployed"), hist
    deps = wait_deployments_ready(cluster, rel)
    for n, d in deps.items():
        assert d["spec"]["template"] == rel.templates[good][n], (
            f"{n}: pod template differs from revision {good}"
        )
    snapshot(cluster, rel, broken + 1)
    assert rel.configs[broken + 1] == rel.configs[good], (
        "config after rollback differs from the good revision"
    )

    def broken_pods_gone() -> bool:
        pods = [
            p
            for p in cluster.list_objects("pods", rel.namespace, INSTANCE_SELECTOR)
            if owner_kind(p) == "ReplicaSet"
        ]
        return not [p for p in pods if p["spec"]["containers"][0]["image"] == NEVER_READY_IMAGE]

    wait_until("Deployment pods of the broken revision to be deleted", broken_pods_gone, timeout=60)


def uninstall(cluster: Cluster, rel: Release, helm: int | None = None) -> None:
    h = helm or rel.helm
    cluster.helm(h, "uninstall", RELEASE, "-n", rel.namespace, wait_flag(h), "--timeout", TIMEOUT)
    kept = {ident(o) for o in release_objects(rel.rendered) if is_kept(o)}
    for obj in release_objects(rel.rendered):
        res, name = ident(obj)
        live = cluster.get(res, name, obj_namespace(obj, rel.namespace))
        if ident(obj) in kept:
            assert live is not None, f"{res}/{name} is marked keep but was deleted"
        else:
            assert live is None or live["metadata"].get("deletionTimestamp"), (
                f"{res}/{name} survived uninstall"
            )
    types = ",".join(cluster.namespaced_resource_types())
    namespaces = sorted({obj_namespace(o, rel.namespace) for o in rel.rendered})

    def leftovers() -> list[str]:
        out: list[str] = []
        for ns in namespaces:
            res = cluster.kubectl_run("get", types, "-n", ns, "-l", INSTANCE_SELECTOR, "-o", "json")
            for item in json.loads(res.stdout)["items"]:
                key = (resource_arg(item), str(item["metadata"]["name"]))
                if key not in kept:
                    out.append(f"{ns}/{item['kind']}/{item['metadata']['name']}")
        return out

    try:
        wait_until(
            "no object of the release left after uninstall", lambda: not leftovers() or None, timeout=90
        )
    except AssertionError as exc:
        raise AssertionError(f"left behind by `helm uninstall`: {leftovers()}") from exc
