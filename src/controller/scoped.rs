//! One watch stream over several namespaces, delivered as a single cluster-wide
//! list-watch would be, so that one reflector store can hold them all.
//!
//! Feeding one store from one watch per namespace directly is wrong: a re-list of
//! one namespace ends with `InitDone`, which replaces the whole store, and would
//! drop every other namespace's objects. Here:
//! - the first list of every namespace is collected, and handed on as one list
//!   (`Init`, every object, `InitDone`) once every namespace has listed: the store
//!   becomes ready with all of them, never with a part;
//! - afterwards, a namespace that lists again (its watch expired or failed) is turned
//!   into what changed: `Apply` for each object it listed, `Delete` for each object
//!   of that namespace the store holds and the list did not return (read from the
//!   store the events feed, so no second copy of the objects is kept);
//! - `Apply` and `Delete` events and errors pass through.

use std::collections::BTreeMap;
use std::fmt::Debug;

use futures::stream::{self, BoxStream, Stream, StreamExt};
use kube::runtime::reflector::{Lookup, Store};
use kube::runtime::watcher::{self, Event};

/// Merge `streams` (one per namespace, in the order of `namespaces`) into one.
/// `known` is the store the merged stream feeds.
pub fn merge<K, S>(
    namespaces: Vec<String>,
    streams: Vec<S>,
    known: Store<K>,
) -> BoxStream<'static, watcher::Result<Event<K>>>
where
    K: Lookup + Clone + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
    S: Stream<Item = watcher::Result<Event<K>>> + Send + 'static,
{
    let tagged = streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| s.map(move |event| (i, event)).boxed());
    let mut merger = Merger::new(namespaces, known);
    stream::select_all(tagged)
        .flat_map(move |(i, event)| {
            let out = match event {
                Ok(event) => merger.on(i, event).into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            stream::iter(out)
        })
        .boxed()
}

/// Where one namespace's watch is.
enum Phase<K> {
    /// Listing for the first time (or again before every namespace had listed):
    /// the objects so far, by name.
    FirstList(BTreeMap<String, K>),
    /// Listed for the first time; waiting for the other namespaces. Its watch goes
    /// on, and its events update the list kept here.
    Listed(BTreeMap<String, K>),
    /// Every namespace has listed: events go to the store as they come.
    Live,
    /// Listing again: the objects so far, by name.
    Relisting(BTreeMap<String, K>),
}

struct Merger<K: Lookup + Clone + 'static>
where
    K::DynamicType: Eq + std::hash::Hash,
{
    namespaces: Vec<String>,
    phases: Vec<Phase<K>>,
    known: Store<K>,
}

impl<K> Merger<K>
where
    K: Lookup + Clone,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    fn new(namespaces: Vec<String>, known: Store<K>) -> Self {
        let phases = namespaces
            .iter()
            .map(|_| Phase::FirstList(BTreeMap::new()))
            .collect();
        Merger {
            namespaces,
            phases,
            known,
        }
    }

    /// The events to hand on for `event` of namespace `i`.
    fn on(&mut self, i: usize, event: Event<K>) -> Vec<Event<K>> {
        let Some(phase) = self.phases.get_mut(i) else {
            return Vec::new();
        };
        match (phase, event) {
            // A list starts (again): what an earlier attempt found is dropped.
            (phase @ (Phase::FirstList(_) | Phase::Listed(_)), Event::Init) => {
                *phase = Phase::FirstList(BTreeMap::new());
                Vec::new()
            }
            (phase @ Phase::Live, Event::Init) | (phase @ Phase::Relisting(_), Event::Init) => {
                *phase = Phase::Relisting(BTreeMap::new());
                Vec::new()
            }
            (
                Phase::FirstList(objects) | Phase::Listed(objects) | Phase::Relisting(objects),
                Event::InitApply(o) | Event::Apply(o),
            ) => {
                objects.insert(name(&o), o);
                Vec::new()
            }
            (Phase::FirstList(objects) | Phase::Listed(objects), Event::Delete(o)) => {
                objects.remove(&name(&o));
                Vec::new()
            }
            (phase @ Phase::FirstList(_), Event::InitDone) => {
                if let Phase::FirstList(objects) = std::mem::replace(phase, Phase::Live) {
                    *phase = Phase::Listed(objects);
                }
                self.all_listed()
            }
            (phase @ Phase::Relisting(_), Event::InitDone) => {
                let Phase::Relisting(objects) = std::mem::replace(phase, Phase::Live) else {
                    return Vec::new();
                };
                self.changes(i, objects)
            }
            (Phase::Live, event @ (Event::Apply(_) | Event::Delete(_))) => vec![event],
            // A watcher lists before anything else; nothing else can come here.
            (_, _) => Vec::new(),
        }
    }

    /// Once every namespace has listed: one list of them all.
    fn all_listed(&mut self) -> Vec<Event<K>> {
        if !self.phases.iter().all(|p| matches!(p, Phase::Listed(_))) {
            return Vec::new();
        }
        let mut out = vec![Event::Init];
        for phase in &mut self.phases {
            if let Phase::Listed(objects) = std::mem::replace(phase, Phase::Live) {
                out.extend(objects.into_values().map(Event::InitApply));
            }
        }
        out.push(Event::InitDone);
        out
    }

    /// A re-list of namespace `i` as changes to the store.
    fn changes(&self, i: usize, listed: BTreeMap<String, K>) -> Vec<Event<K>> {
        let namespace = self.namespaces.get(i).map(String::as_str);
        let gone: Vec<Event<K>> = self
            .known
            .state()
            .into_iter()
            .filter(|o| {
                Lookup::namespace(&**o).as_deref() == namespace && !listed.contains_key(&name(&**o))
            })
            .map(|o| Event::Delete((*o).clone()))
            .collect();
        listed.into_values().map(Event::Apply).chain(gone).collect()
    }
}

/// The object's name (unique within its namespace).
fn name<K: Lookup>(o: &K) -> String {
    Lookup::name(o).map(|n| n.into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;
    use kube::runtime::reflector;

    fn cm(ns: &str, name: &str, v: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                resource_version: Some(v.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn key(o: &ConfigMap) -> String {
        let m = &o.metadata;
        format!(
            "{}/{}",
            m.namespace.as_deref().unwrap_or_default(),
            m.name.as_deref().unwrap_or_default()
        )
    }

    fn describe(events: &[Event<ConfigMap>]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Event::Init => "Init".to_string(),
                Event::InitDone => "InitDone".to_string(),
                Event::InitApply(o) => format!("InitApply {}", key(o)),
                Event::Apply(o) => format!("Apply {}", key(o)),
                Event::Delete(o) => format!("Delete {}", key(o)),
            })
            .collect()
    }

    /// A merger and the store it feeds, fed event by event.
    struct Fixture {
        merger: Merger<ConfigMap>,
        writer: reflector::store::Writer<ConfigMap>,
    }

    impl Fixture {
        fn new() -> Self {
            let writer = reflector::store::Writer::default();
            let merger = Merger::new(vec!["a".into(), "b".into()], writer.as_reader());
            Fixture { merger, writer }
        }

        fn feed(&mut self, i: usize, event: Event<ConfigMap>) -> Vec<String> {
            let out = self.merger.on(i, event);
            for e in &out {
                self.writer.apply_watcher_event(e);
            }
            describe(&out)
        }

        fn stored(&self) -> Vec<String> {
            let mut names: Vec<String> = self
                .writer
                .as_reader()
                .state()
                .iter()
                .map(|o| key(o))
                .collect();
            names.sort();
            names
        }
    }

    #[test]
    fn the_store_is_listed_once_every_namespace_has_listed() {
        let mut f = Fixture::new();
        assert!(f.feed(0, Event::Init).is_empty());
        assert!(f.feed(0, Event::InitApply(cm("a", "x", "1"))).is_empty());
        assert!(f.feed(0, Event::InitDone).is_empty(), "b has not listed");
        // a's watch goes on while b lists.
        assert!(f.feed(0, Event::Apply(cm("a", "y", "2"))).is_empty());
        assert!(f.feed(1, Event::Init).is_empty());
        assert!(f.feed(1, Event::InitApply(cm("b", "x", "3"))).is_empty());
        assert_eq!(
            f.feed(1, Event::InitDone),
            [
                "Init",
                "InitApply a/x",
                "InitApply a/y",
                "InitApply b/x",
                "InitDone"
            ]
        );
        assert_eq!(f.stored(), ["a/x", "a/y", "b/x"]);
        assert_eq!(f.feed(1, Event::Apply(cm("b", "z", "4"))), ["Apply b/z"]);
        assert_eq!(f.feed(0, Event::Delete(cm("a", "x", "5"))), ["Delete a/x"]);
        assert_eq!(f.stored(), ["a/y", "b/x", "b/z"]);
    }

    #[test]
    fn a_first_list_that_starts_again_forgets_what_it_found() {
        let mut f = Fixture::new();
        f.feed(0, Event::Init);
        f.feed(0, Event::InitApply(cm("a", "gone", "1")));
        // The list failed part-way and starts again; "gone" was deleted meanwhile.
        f.feed(0, Event::Init);
        f.feed(0, Event::InitApply(cm("a", "x", "2")));
        f.feed(0, Event::InitDone);
        f.feed(1, Event::Init);
        f.feed(1, Event::InitDone);
        assert_eq!(f.stored(), ["a/x"]);
    }

    #[test]
    fn a_relist_of_one_namespace_keeps_the_others_and_deletes_what_went() {
        let mut f = Fixture::new();
        for (i, ns) in [(0, "a"), (1, "b")] {
            f.feed(i, Event::Init);
            f.feed(i, Event::InitApply(cm(ns, "x", "1")));
            f.feed(i, Event::InitApply(cm(ns, "y", "1")));
            f.feed(i, Event::InitDone);
        }
        assert_eq!(f.stored(), ["a/x", "a/y", "b/x", "b/y"]);
        // a's watch expired; while it was down a/y was deleted and a/z created.
        assert!(f.feed(0, Event::Init).is_empty());
        assert!(f.feed(0, Event::InitApply(cm("a", "x", "2"))).is_empty());
        assert!(f.feed(0, Event::InitApply(cm("a", "z", "2"))).is_empty());
        // b's events still pass while a re-lists.
        assert_eq!(f.feed(1, Event::Apply(cm("b", "x", "3"))), ["Apply b/x"]);
        assert_eq!(
            f.feed(0, Event::InitDone),
            ["Apply a/x", "Apply a/z", "Delete a/y"]
        );
        assert_eq!(f.stored(), ["a/x", "a/z", "b/x", "b/y"]);
    }

    #[tokio::test]
    async fn merged_streams_pass_errors_through() {
        let writer = reflector::store::Writer::<ConfigMap>::default();
        let a = stream::iter(vec![
            Ok(Event::Init),
            Err(watcher::Error::NoResourceVersion),
            Ok(Event::InitDone),
        ]);
        let b = stream::iter(vec![Ok(Event::Init), Ok(Event::InitDone)]);
        let out: Vec<_> = merge(
            vec!["a".into(), "b".into()],
            vec![a.boxed(), b.boxed()],
            writer.as_reader(),
        )
        .collect()
        .await;
        assert_eq!(out.iter().filter(|e| e.is_err()).count(), 1);
        let events: Vec<Event<ConfigMap>> = out.into_iter().filter_map(Result::ok).collect();
        assert_eq!(describe(&events), ["Init", "InitDone"]);
    }
}
