//! Stand-ins for the kube-controller-manager loops the operator depends on, and
//! for the kubelet: the garbage collector, the namespace controller and the
//! StatefulSet controller. They act on the store directly (no HTTP, nothing in
//! the request log), as a separate process would, and their writes reach watches
//! like any other write.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::objects::{DeleteOptions, Ownership, Propagation};
use super::ssa::Scope;
use super::store::{Addr, State, finalizers, is_deleting, uid_of};

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

/// How an owner reference resolves.
enum Owner {
    /// Exists (same uid and name, in the dependent's namespace or cluster-scoped).
    Solid,
    /// Exists and is being deleted in the foreground: its dependents go first.
    Waiting,
    /// Does not exist.
    Absent,
}

impl State {
    fn resolve_owner(&self, dependent: &Addr, reference: &Value) -> Owner {
        let Some(uid) = reference["uid"].as_str() else {
            return Owner::Absent;
        };
        let Some(addr) = self.uids.get(uid) else {
            return Owner::Absent;
        };
        let same_place = addr.namespace.is_empty() || addr.namespace == dependent.namespace;
        if !same_place || reference["name"].as_str() != Some(addr.name.as_str()) {
            return Owner::Absent;
        }
        match self.get(addr) {
            Some(owner)
                if is_deleting(owner) && finalizers(owner).iter().any(|f| f == FOREGROUND) =>
            {
                Owner::Waiting
            }
            Some(_) => Owner::Solid,
            None => Owner::Absent,
        }
    }

    fn update_untracked(&mut self, addr: &Addr, next: Value) {
        let scope = Scope::Main {
            status_separate: false,
        };
        let _ = self.update(addr, next, scope, Ownership::Untracked, false);
    }

    /// The garbage collector's decision for one dependent: delete it when every
    /// owner is absent (or waiting for its dependents), drop the references to
    /// absent owners when some owner remains.
    fn collect_dependent(&mut self, addr: &Addr) {
        let Some(obj) = self.get(addr).cloned() else {
            return;
        };
        let Some(refs) = obj["metadata"]["ownerReferences"]
            .as_array()
            .filter(|r| !r.is_empty())
        else {
            return;
        };
        let mut solid = Vec::new();
        let mut waiting = false;
        let mut absent = false;
        for r in refs {
            match self.resolve_owner(addr, r) {
                Owner::Solid => solid.push(r.clone()),
                Owner::Waiting => waiting = true,
                Owner::Absent => absent = true,
            }
        }
        if solid.is_empty() {
            if is_deleting(&obj) {
                return;
            }
            let options = DeleteOptions {
                propagation: Some(if waiting {
                    Propagation::Foreground
                } else {
                    Propagation::Background
                }),
                ..Default::default()
            };
            let _ = self.delete(addr, &options);
            self.after_write(addr);
        } else if absent {
            let mut next = (*obj).clone();
            next["metadata"]["ownerReferences"] = json!(solid);
            self.update_untracked(addr, next);
        }
    }

    /// An owner being deleted with `orphan` or `foregroundDeletion`: orphan its
    /// dependents, or delete them and finish once no blocking dependent is left.
    fn collect_owner(&mut self, addr: &Addr) {
        let Some(obj) = self.get(addr).cloned() else {
            return;
        };
        if !is_deleting(&obj) {
            return;
        }
        let Some(uid) = uid_of(&obj).map(str::to_string) else {
            return;
        };
        let list = finalizers(&obj);
        let dependents: Vec<Addr> = self
            .dependents
            .get(&uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default();
        if list.iter().any(|f| f == ORPHAN) {
            for dep in &dependents {
                if let Some(d) = self.get(dep).cloned() {
                    let mut next = (*d).clone();
                    if let Some(refs) = next["metadata"]["ownerReferences"].as_array_mut() {
                        refs.retain(|r| r["uid"].as_str() != Some(uid.as_str()));
                    }
                    self.update_untracked(dep, next);
                }
            }
            self.remove_finalizer(addr, ORPHAN);
        } else if list.iter().any(|f| f == FOREGROUND) {
            for dep in &dependents {
                self.collect_dependent(dep);
            }
            let blocked = dependents.iter().any(|dep| {
                self.get(dep).is_some_and(|d| {
                    d["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|refs| {
                            refs.iter().any(|r| {
                                r["uid"].as_str() == Some(uid.as_str())
                                    && r["blockOwnerDeletion"] == true
                            })
                        })
                })
            });
            if !blocked {
                self.remove_finalizer(addr, FOREGROUND);
            }
        }
        self.after_write(addr);
    }

    /// The namespace controller: delete everything in a namespace being deleted,
    /// then release the namespace.
    fn finish_namespace(&mut self, namespace: &str) {
        let Some(ns) = self.namespace_object(namespace).cloned() else {
            return;
        };
        if !is_deleting(&ns) {
            return;
        }
        let mut left = 0usize;
        let targets: Vec<Addr> = self
            .served_types()
            .filter(|(_, t)| t.info.namespaced)
            .flat_map(|(ty, t)| {
                t.range(Some(namespace), None)
                    .map(move |((ns, name), _)| Addr {
                        ty,
                        namespace: ns.clone(),
                        name: name.clone(),
                    })
            })
            .collect();
        for addr in targets {
            let deleting = self.get(&addr).is_some_and(|o| is_deleting(o));
            if !deleting {
                let _ = self.delete(&addr, &DeleteOptions::default());
                self.after_write(&addr);
            }
            if self.get(&addr).is_some() {
                left += 1;
            }
        }
        if left == 0
            && let Some(ty) = self.namespace_type()
        {
            let addr = Addr {
                ty,
                namespace: String::new(),
                name: namespace.to_string(),
            };
            let mut next = (*ns).clone();
            next["spec"]["finalizers"] = json!([]);
            self.update_untracked(&addr, next);
        }
    }

    /// Run the garbage collector and the namespace controller until nothing is
    /// left to do. Returns how many objects they looked at.
    pub fn collect_garbage(&mut self) -> usize {
        let mut visited = 0;
        loop {
            if let Some(addr) = self.queues.gc_owners.pop_first() {
                self.collect_owner(&addr);
            } else if let Some(addr) = self.queues.gc_dependents.pop_first() {
                self.collect_dependent(&addr);
            } else if let Some(ns) = self.queues.namespaces.pop_first() {
                self.finish_namespace(&ns);
            } else {
                return visited;
            }
            visited += 1;
        }
    }

    fn type_index(&self, group: &str, resource: &str) -> Option<usize> {
        self.routes
            .get(&(group.to_string(), resource.to_string()))
            .copied()
    }

    /// What the StatefulSet controller and the kubelet would make of this
    /// StatefulSet on a healthy cluster: pods `<name>-0…` of the current template
    /// (recreated when the template changed), claims for its volume claim
    /// templates, and a status with every replica ready and up to date.
    pub fn make_statefulset_ready(&mut self, addr: &Addr) -> bool {
        let Some(sts) = self.get(addr).cloned() else {
            return false;
        };
        if is_deleting(&sts) {
            return false;
        }
        let (Some(pods), Some(claims)) = (
            self.type_index("", "pods"),
            self.type_index("", "persistentvolumeclaims"),
        ) else {
            return false;
        };
        let name = addr.name.clone();
        let ns = addr.namespace.clone();
        let uid = uid_of(&sts).unwrap_or_default().to_string();
        let replicas = sts["spec"]["replicas"].as_u64().unwrap_or(1);
        let template = &sts["spec"]["template"];
        let hash = hex::encode(Sha256::digest(template.to_string().as_bytes()));
        let revision = format!("{name}-{}", &hash[..10]);
        let owner = json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "name": name, "uid": uid,
            "controller": true, "blockOwnerDeletion": true,
        });
        for i in 0..replicas {
            let pod_name = format!("{name}-{i}");
            let pod_addr = Addr {
                ty: pods,
                namespace: ns.clone(),
                name: pod_name.clone(),
            };
            let current = self.get(&pod_addr).is_some_and(|p| {
                p["metadata"]["labels"]["controller-revision-hash"] == revision.as_str()
            });
            if !current {
                if self.get(&pod_addr).is_some() {
                    let _ = self.delete(&pod_addr, &DeleteOptions::default());
                }
                let mut labels = template["metadata"]["labels"].clone();
                if !labels.is_object() {
                    labels = json!({});
                }
                labels["controller-revision-hash"] = json!(revision);
                labels["statefulset.kubernetes.io/pod-name"] = json!(pod_name);
                labels["apps.kubernetes.io/pod-index"] = json!(i.to_string());
                let mut pod = json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": pod_name, "namespace": ns, "labels": labels,
                                 "ownerReferences": [owner]},
                    "spec": template["spec"],
                });
                if template["metadata"]["annotations"].is_object() {
                    pod["metadata"]["annotations"] = template["metadata"]["annotations"].clone();
                }
                if self
                    .create(pods, Some(&ns), pod, Ownership::Untracked, false)
                    .is_err()
                {
                    continue;
                }
            }
            let Some(live) = self.get(&pod_addr).cloned() else {
                continue;
            };
            let mut running = (*live).clone();
            running["status"] = json!({
                "phase": "Running",
                "podIP": format!("10.244.0.{}", 10 + i),
                "conditions": [
                    {"type": "Initialized", "status": "True"},
                    {"type": "Ready", "status": "True"},
                    {"type": "ContainersReady", "status": "True"},
                    {"type": "PodScheduled", "status": "True"},
                ],
            });
            let _ = self.update(
                &pod_addr,
                running,
                Scope::Status,
                Ownership::Untracked,
                false,
            );
            let delete_claims =
                sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete";
            for claim in sts["spec"]["volumeClaimTemplates"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let claim_name = format!(
                    "{}-{pod_name}",
                    claim["metadata"]["name"].as_str().unwrap_or("data")
                );
                let claim_addr = Addr {
                    ty: claims,
                    namespace: ns.clone(),
                    name: claim_name.clone(),
                };
                if self.get(&claim_addr).is_some() {
                    continue;
                }
                let mut pvc = json!({
                    "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": claim_name, "namespace": ns,
                                 "labels": sts["spec"]["selector"]["matchLabels"]},
                    "spec": claim["spec"],
                });
                if delete_claims {
                    pvc["metadata"]["ownerReferences"] = json!([owner]);
                }
                if self
                    .create(claims, Some(&ns), pvc, Ownership::Untracked, false)
                    .is_ok()
                    && let Some(live) = self.get(&claim_addr).cloned()
                {
                    let mut bound = (*live).clone();
                    bound["status"] = json!({"phase": "Bound"});
                    let _ = self.update(
                        &claim_addr,
                        bound,
                        Scope::Status,
                        Ownership::Untracked,
                        false,
                    );
                }
            }
        }
        // Scale down: pods beyond the replica count go.
        let extra: Vec<Addr> = self
            .type_state(pods)
            .map(|t| {
                t.range(Some(&ns), None)
                    .filter(|(_, p)| {
                        p["metadata"]["ownerReferences"][0]["uid"].as_str() == Some(uid.as_str())
                            && p["metadata"]["labels"]["apps.kubernetes.io/pod-index"]
                                .as_str()
                                .and_then(|i| i.parse::<u64>().ok())
                                .is_some_and(|i| i >= replicas)
                    })
                    .map(|((ns, name), _)| Addr {
                        ty: pods,
                        namespace: ns.clone(),
                        name: name.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        for pod in extra {
            let _ = self.delete(&pod, &DeleteOptions::default());
        }
        let mut status = json!({
            "replicas": replicas,
            "availableReplicas": replicas,
            "currentRevision": revision,
            "updateRevision": revision,
            "observedGeneration": sts["metadata"]["generation"],
            "collisionCount": 0,
        });
        if replicas > 0 {
            status["readyReplicas"] = json!(replicas);
            status["currentReplicas"] = json!(replicas);
            status["updatedReplicas"] = json!(replicas);
        }
        let mut next = (*sts).clone();
        next["status"] = status;
        self.update(addr, next, Scope::Status, Ownership::Untracked, false)
            .is_ok()
    }

    /// Run the StatefulSet controller over the StatefulSets written since last time.
    pub fn run_statefulset_controller(&mut self) -> usize {
        let queued: Vec<Addr> = std::mem::take(&mut self.queues.statefulsets)
            .into_iter()
            .collect();
        let mut done = 0;
        for addr in &queued {
            if self.make_statefulset_ready(addr) {
                done += 1;
            }
        }
        // Its own status writes queued them again: nothing more to do for them.
        for addr in &queued {
            self.queues.statefulsets.remove(addr);
        }
        done
    }
}
