//! The validation core's cluster questions, answered from what the pass observed:
//! the reconciler validates with the same rules as the webhook without reading a
//! Secret twice. Questions the observation does not cover (StorageClasses, a
//! referenced Secret the stores do not show, e.g. absent or not listed yet) go to the
//! webhook's lookup (caches, bounded GETs).

use crate::validation::{ClusterLookup, Lookup, SecretFacts};

use super::observe::{Observed, PerconaSeen};
use super::watches::OptionalType;

pub struct ObservedLookup<'a, L> {
    pub observed: &'a Observed,
    pub namespace: &'a str,
    pub fallback: &'a L,
}

impl<L: ClusterLookup> ClusterLookup for ObservedLookup<'_, L> {
    async fn storage_class(&self, name: &str) -> Lookup<()> {
        self.fallback.storage_class(name).await
    }

    async fn secret(&self, namespace: &str, name: &str) -> Lookup<SecretFacts> {
        if namespace == self.namespace
            && let Some(seen) = self.observed.secrets.get(name)
            && let Some(data) = seen.data.as_ref()
        {
            return Lookup::Found(SecretFacts {
                value_lengths: data.iter().map(|(k, v)| (k.clone(), v.len())).collect(),
                secret_type: seen.secret_type.clone(),
            });
        }
        self.fallback.secret(namespace, name).await
    }

    async fn percona_crd(&self) -> Lookup<()> {
        match self.observed.percona {
            PerconaSeen::TypeAbsent => Lookup::NotFound,
            PerconaSeen::Absent | PerconaSeen::Present { .. } => Lookup::Found(()),
        }
    }

    async fn service_monitor_crd(&self) -> Lookup<()> {
        match self.observed.service_monitor {
            Ok(_) => Lookup::Found(()),
            Err(OptionalType::Absent) => Lookup::NotFound,
            Err(_) => Lookup::Unknown("the ServiceMonitor watch has not listed yet".into()),
        }
    }
}
