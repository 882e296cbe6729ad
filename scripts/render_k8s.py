"""Render the kustomize overlays in k8s/ without kubectl, so CI can validate exactly what would be applied.

It understands the subset of kustomize the project uses: ``resources`` (files and directories), ``namespace``,
``labels`` (pairs, metadata only), ``images`` (newName/newTag), and ``patches`` (strategic-merge files, optionally
applied to every resource of a ``target`` kind, and ``$patch: delete``). Lists of named items (containers, ports,
env) merge by ``name``; other lists are replaced, as kustomize does for Ingress rules or HPA metrics.

    python -m scripts.render_k8s [--out var/k8s] [dev uat prod]   # writes <out>/<env>.yaml
"""

import argparse
import copy
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
ENVIRONMENTS = ("dev", "uat", "prod")
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass",
                  "IngressClass", "CustomResourceDefinition"}
UNSUPPORTED = {"components", "patchesStrategicMerge", "patchesJson6902", "configMapGenerator",
               "secretGenerator", "replacements", "commonLabels", "namePrefix", "nameSuffix"}


def load_documents(path):
    with open(path) as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def build(directory):
    """The resources a kustomization directory renders to, in order."""
    directory = Path(directory)
    kustomization = load_documents(directory / "kustomization.yaml")[0]
    unknown = UNSUPPORTED & set(kustomization)
    if unknown:
        raise ValueError(f"{directory}: render_k8s does not support {sorted(unknown)}")
    resources = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        resources.extend(build(path) if path.is_dir() else load_documents(path))
    for patch_entry in kustomization.get("patches", []):
        for patch in load_documents(directory / patch_entry["path"]):
            resources = apply_patch(resources, patch, patch_entry.get("target"))
    for pairs in kustomization.get("labels", []):
        for resource in resources:
            resource.setdefault("metadata", {}).setdefault("labels", {}).update(pairs["pairs"])
    if "namespace" in kustomization:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = kustomization["namespace"]
    for image in kustomization.get("images", []):
        for resource in resources:
            set_image(resource, image)
    return resources


def matches(resource, patch, target):
    if target:
        return all(resource.get(key) == value if key != "name" else resource["metadata"]["name"] == value
                   for key, value in target.items())
    return (resource["kind"] == patch["kind"]
            and resource["metadata"]["name"] == patch["metadata"]["name"])


def apply_patch(resources, patch, target=None):
    hits = [resource for resource in resources if matches(resource, patch, target)]
    if not hits:
        raise ValueError(f"patch {patch['kind']}/{patch['metadata']['name']} matches no resource")
    if patch.get("$patch") == "delete":
        return [resource for resource in resources if not any(resource is hit for hit in hits)]
    body = {key: value for key, value in patch.items() if key not in ("apiVersion", "kind")}
    if target:
        body["metadata"] = {k: v for k, v in body.get("metadata", {}).items() if k != "name"}
    for resource in hits:
        merge(resource, body)
    return resources


def merge(into, patch):
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        elif isinstance(value, list) and isinstance(into.get(key), list) and _named(value) and _named(into[key]):
            by_name = {item["name"]: item for item in into[key]}
            for item in value:
                if item["name"] in by_name:
                    merge(by_name[item["name"]], item)
                else:
                    into[key].append(copy.deepcopy(item))
        else:
            into[key] = copy.deepcopy(value)


def _named(items):
    return all(isinstance(item, dict) and "name" in item for item in items)


def set_image(resource, image):
    spec = resource.get("spec", {})
    pod = spec.get("jobTemplate", {}).get("spec", spec).get("template", {}).get("spec", {})
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        name = container["image"].rsplit(":", 1)[0] if ":" in container["image"].split("/")[-1] \
            else container["image"]
        if name == image["name"]:
            tag = image.get("newTag") or container["image"].split("/")[-1].partition(":")[2] or "latest"
            container["image"] = f"{image.get('newName', name)}:{tag}"


def render(environment):
    return yaml.safe_dump_all(build(K8S / "overlays" / environment), sort_keys=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "var" / "k8s"))
    parser.add_argument("environments", nargs="*", default=list(ENVIRONMENTS))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for environment in args.environments:
        (out / f"{environment}.yaml").write_text("---\n" + render(environment))
        print(out / f"{environment}.yaml", file=sys.stderr)


if __name__ == "__main__":
    main()
